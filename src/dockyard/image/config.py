"""Image configs (``application/vnd.oci.image.config.v1+json``) as plain dicts.

The config's digest is the image ID, so ``config_json`` writes the exact
bytes BuildKit writes. BuildKit's exporter rewrites the config through a Go
``map[string]json.RawMessage`` (``patchImageConfig``), so top-level keys come
out sorted; the nested objects keep the field order of the Go structs they
were marshalled from, with ``omitempty`` fields dropped when empty:

* ``config``: User, ExposedPorts, Env, Entrypoint, Cmd, Volumes, WorkingDir,
  Labels, StopSignal, ArgsEscaped, then Docker's Healthcheck, OnBuild, Shell
* ``rootfs``: type, diff_ids
* ``history[]``: created, created_by, author, comment, empty_layer
* Go maps (Labels, ExposedPorts, Volumes): keys sorted

Keys the Go types do not know are kept (sorted, after the known ones), where
BuildKit would drop them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from dockyard.image._decode import (
    check_bool,
    check_list,
    check_object_map,
    check_str,
    check_str_list,
    check_str_map,
    expect_object,
    fail,
    load_json,
    require,
)
from dockyard.image._gojson import go_json, sorted_map
from dockyard.image.digest import Digest
from dockyard.image.errors import ImageFormatError

__all__ = [
    "DEFAULT_PATH_ENV",
    "config_json",
    "format_created",
    "new_config",
    "parse_config",
]

# what BuildKit puts in a FROM scratch image (not on Windows)
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_TOP_OMITEMPTY = ("created", "author", "variant", "os.version", "os.features")
_CONFIG_ORDER = (
    "User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
    "Labels", "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell",
)  # fmt: skip
_GO_MAPS = ("ExposedPorts", "Volumes", "Labels")
_HEALTH_ORDER = (
    "Test",
    "Interval",
    "Timeout",
    "StartPeriod",
    "StartInterval",
    "Retries",
)
_HISTORY_ORDER = ("created", "created_by", "author", "comment", "empty_layer")
_ROOTFS_ORDER = ("type", "diff_ids")

_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
_ENV = re.compile(r"[^=]+=.*", re.DOTALL)


def format_created(when: datetime) -> str:
    """Go's RFC3339Nano, as ``time.Time`` marshals (naive times count as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += "." + f"{when.microsecond:06d}".rstrip("0")
    offset = when.utcoffset()
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def new_config(
    architecture: str,
    os: str,
    *,
    variant: str | None = None,
    created: datetime | None = None,
) -> dict[str, Any]:
    """The config of an empty image, as BuildKit starts ``FROM scratch``.

    ``created`` defaults to now; pass a fixed time for reproducible IDs.
    """
    inner: dict[str, Any] = {} if os == "windows" else {"Env": [DEFAULT_PATH_ENV]}
    inner["WorkingDir"] = "/"
    cfg: dict[str, Any] = {
        "architecture": architecture,
        "config": inner,
        "created": format_created(created or datetime.now(UTC)),
        "history": [],
        "os": os,
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    if variant:
        cfg["variant"] = variant
    return cfg


def config_json(cfg: Mapping[str, Any]) -> bytes:
    """The config's bytes as BuildKit writes them; their digest is the image ID."""
    out: dict[str, Any] = {}
    for key in sorted(cfg):
        value = cfg[key]
        if key in _TOP_OMITEMPTY and _is_empty(value):
            continue
        if key == "config" and isinstance(value, Mapping):
            value = _image_config(value)
        elif key == "rootfs" and isinstance(value, Mapping):
            value = _ordered(value, _ROOTFS_ORDER, omitempty=False)
        elif key == "history" and isinstance(value, list):
            value = [
                _ordered(h, _HISTORY_ORDER) if isinstance(h, Mapping) else h
                for h in value
            ]
        out[key] = value
    return go_json(out)


def parse_config(data: bytes | str) -> dict[str, Any]:
    """Decode and check a config; raises ImageFormatError naming the bad field.

    Types are checked as Go's decoder and the OCI schema would (JSON null is
    accepted wherever Go accepts it); unknown keys are kept.
    """
    obj = expect_object(load_json(data, "config"), "config")
    for key in ("architecture", "os"):
        check_str(require(obj, key, "config"), f"config.{key}")
    for key, check in _TOP_CHECKS.items():
        if obj.get(key) is not None:
            check(obj[key], f"config.{key}")
    rootfs = expect_object(require(obj, "rootfs", "config"), "config.rootfs")
    if require(rootfs, "type", "config.rootfs") != "layers":
        raise fail("config.rootfs.type", f'must be "layers", got {rootfs["type"]!r}')
    if rootfs.get("diff_ids") is not None:  # null: BuildKit's image with no layers
        for i, diff_id in enumerate(
            check_list(rootfs["diff_ids"], "config.rootfs.diff_ids")
        ):
            _check_digest(diff_id, f"config.rootfs.diff_ids[{i}]")
    return obj


def _is_empty(value: Any) -> bool:
    """Go's omitempty: nil, false, 0, "" and empty slices/maps."""
    if value is None or value is False:
        return True
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) == 0
    return type(value) is int and value == 0


def _ordered(
    obj: Mapping[str, Any], order: tuple[str, ...], *, omitempty: bool = True
) -> dict[str, Any]:
    out = {
        k: obj[k] for k in order if k in obj and not (omitempty and _is_empty(obj[k]))
    }
    out.update((k, obj[k]) for k in sorted(obj) if k not in out and k not in order)
    return out


def _image_config(inner: Mapping[str, Any]) -> dict[str, Any]:
    out = _ordered(inner, _CONFIG_ORDER)
    for key in _GO_MAPS:
        if isinstance(out.get(key), Mapping):
            out[key] = sorted_map(dict(out[key]))
    if isinstance(out.get("Healthcheck"), Mapping):
        out["Healthcheck"] = _ordered(out["Healthcheck"], _HEALTH_ORDER)
    return out


def _check_time(value: Any, where: str) -> None:
    if not _RFC3339.fullmatch(check_str(value, where)):
        raise fail(where, f"must be an RFC 3339 time, got {value!r}")


def _check_digest(value: Any, where: str) -> None:
    try:
        Digest.parse(check_str(value, where))
    except ImageFormatError as e:
        raise fail(where, str(e)) from None


def _check_env(value: Any, where: str) -> None:
    for i, entry in enumerate(check_str_list(value, where)):
        if not _ENV.fullmatch(entry):
            raise fail(f"{where}[{i}]", f'must be "NAME=value", got {entry!r}')


def _fields(checks: dict[str, Callable[[Any, str], Any]]) -> Callable[[Any, str], None]:
    """A checker for an object whose listed keys, when not null, must pass their check."""

    def check(value: Any, where: str) -> None:
        obj = expect_object(value, where)
        for key, inner in checks.items():
            if obj.get(key) is not None:
                inner(obj[key], f"{where}.{key}")

    return check


def _each(check: Callable[[Any, str], Any]) -> Callable[[Any, str], None]:
    def check_all(value: Any, where: str) -> None:
        for i, item in enumerate(check_list(value, where)):
            check(item, f"{where}[{i}]")

    return check_all


def _check_int(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(where, f"must be an integer, got {value!r}")


_HEALTH_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "Test": check_str_list,
    **{k: _check_int for k in _HEALTH_ORDER[1:]},
}
_CONFIG_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "User": check_str,
    "ExposedPorts": check_object_map,
    "Env": _check_env,
    "Entrypoint": check_str_list,
    "Cmd": check_str_list,
    "Volumes": check_object_map,
    "WorkingDir": check_str,
    "Labels": check_str_map,
    "StopSignal": check_str,
    "ArgsEscaped": check_bool,
    "Healthcheck": _fields(_HEALTH_CHECKS),
    "OnBuild": check_str_list,
    "Shell": check_str_list,
}
_HISTORY_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "created": _check_time,
    "created_by": check_str,
    "author": check_str,
    "comment": check_str,
    "empty_layer": check_bool,
}
_TOP_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "created": _check_time,
    "author": check_str,
    "variant": check_str,
    "os.version": check_str,
    "os.features": check_str_list,
    "config": _fields(_CONFIG_CHECKS),
    "history": _each(_fields(_HISTORY_CHECKS)),
}

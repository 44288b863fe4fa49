"""Image config as BuildKit writes it.

BuildKit marshals the top level of an image config through a map (keys come
out sorted) and the inner `config` through a Go struct (fields in struct
order). Matching both makes our config bytes, and so image ids, line up with
BuildKit's for the same content and timestamps.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform as _platform

from ..dockerfile._gocompat import go_quote, go_quote_list  # noqa: F401  (re-exported)

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HISTORY_COMMENT = "buildkit.dockerfile.v0"

_CONFIG_ORDER = ["User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
                 "Labels", "StopSignal", "Healthcheck", "ArgsEscaped", "OnBuild", "StopTimeout", "Shell"]
_HISTORY_ORDER = ["created", "created_by", "author", "comment", "empty_layer"]
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_arch() -> str:
    return _ARCH.get(_platform.machine(), _platform.machine())


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_epoch(epoch: int) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def empty_image() -> dict:
    return {"architecture": host_arch(), "os": "linux",
            "config": {"Env": [DEFAULT_PATH], "OnBuild": None},
            "rootfs": {"type": "layers", "diff_ids": []}, "history": []}


def _ordered(d: dict, order: list[str]) -> dict:
    out = {k: d[k] for k in order if k in d}
    out.update({k: v for k, v in d.items() if k not in out})
    return out


def _sorted_map(value):
    return {k: value[k] for k in sorted(value)} if isinstance(value, dict) else value


def serialize(image: dict) -> bytes:
    cfg = dict(image.get("config") or {})
    for key in ("ExposedPorts", "Volumes", "Labels"):
        if key in cfg:
            cfg[key] = _sorted_map(cfg[key])
    out = dict(image)
    out["config"] = _ordered(cfg, _CONFIG_ORDER)
    out["history"] = [_ordered(h, _HISTORY_ORDER) for h in image.get("history", [])]
    out = {k: out[k] for k in sorted(out)}
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()


def get_env(env: list[str], key: str) -> str | None:
    for item in env:
        k, _, v = item.partition("=")
        if k == key:
            return v
    return None


def set_env(env: list[str], key: str, value: str) -> list[str]:
    out = []
    found = False
    for item in env:
        if item.partition("=")[0] == key:
            if not found:
                out.append(f"{key}={value}")
                found = True
        else:
            out.append(item)
    if not found:
        out.append(f"{key}={value}")
    return out


def env_map(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        k, _, v = item.partition("=")
        out[k] = v
    return out


# -- Go fmt renderings used in BuildKit's history lines --------------------

def go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def go_rune(n: int) -> str:
    """Go's %q for an int (a rune literal)."""
    ch = chr(n)
    if ch == "'":
        return "'\\''"
    if ch == "\\":
        return "'\\\\'"
    if ch.isprintable():
        return f"'{ch}'"
    if n < 0x100:
        return {7: "'\\a'", 8: "'\\b'", 12: "'\\f'", 10: "'\\n'", 13: "'\\r'", 9: "'\\t'",
                11: "'\\v'"}.get(n, f"'\\x{n:02x}'")
    return f"'\\u{n:04x}'"


def go_duration(ns: int) -> str:
    """Go's time.Duration String() for whole-ish values."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    ns = abs(ns)
    if ns < 1000:
        s = f"{ns}ns"
    elif ns < 1_000_000:
        s = f"{_trim(ns / 1000)}µs"
    elif ns < 1_000_000_000:
        s = f"{_trim(ns / 1_000_000)}ms"
    else:
        secs = ns / 1_000_000_000
        h, rem = divmod(int(secs), 3600)
        m, _ = divmod(rem, 60)
        frac = secs - h * 3600 - m * 60
        s = ""
        if h:
            s += f"{h}h"
        if h or m:
            s += f"{m}m"
        s += f"{_trim(frac)}s"
    return ("-" if neg else "") + s


def _trim(x: float) -> str:
    text = f"{x:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def platform_args(target: str | None = None) -> dict[str, str]:
    """BuildKit's automatic platform ARGs: TARGET* for what is built, BUILD*
    for this machine."""
    from ..image.platform import Platform

    out = {}
    for prefix, plat in (("TARGET", Platform.parse(target) if target else Platform.host()),
                         ("BUILD", Platform.host())):
        variant = plat.variant or ""
        out.update({f"{prefix}PLATFORM": str(plat), f"{prefix}OS": plat.os,
                    f"{prefix}ARCH": plat.architecture, f"{prefix}VARIANT": variant})
    return out


def fill_times(history: list[dict], base_created: str | None) -> str:
    """Give each new metadata entry the time of the next layer (or the last
    one), as BuildKit does; returns the image's creation time."""
    last = None
    for h in history:
        if h.get("created") and not h.get("empty_layer") and h.get("comment") == HISTORY_COMMENT:
            last = h["created"]
    pending: list[dict] = []
    for h in history:
        if h.get("created") is None:
            pending.append(h)
        elif pending and not h.get("empty_layer"):
            for p in pending:
                p["created"] = h["created"]
            pending = []
    fallback = last or base_created or now()
    for p in pending:
        p["created"] = fallback
    return fallback

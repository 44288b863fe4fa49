"""Containers on disk: one directory each under `<store>/containers/<id>/`.

    config.json     the inspect document without State (written once)
    state.json      State (Docker's shape) plus private keys; replaced atomically
    lock            held (flock) by whoever supervises the container
    bundle/         the OCI bundle: config.json, hosts, resolv.conf, hostname
    fs/ work/ merged/   the overlay: upper, work dir, mounted root
    container.log   JSON lines {"log", "stream", "time"} (detached containers)

Names are files `<store>/containers/names/<name>` created with O_EXCL, so two
runs cannot take the same name. The supervisor (the foreground `run` or the
detached monitor) holds an exclusive flock on `lock` for as long as it
watches the container: a container marked running whose lock is free has
lost its supervisor, which `ops.refresh` turns into "exited".
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dockyard.container.errors import (
    ContainerConflict,
    ContainerNotFound,
    InvalidOption,
)

__all__ = [
    "ZERO_TIME",
    "Container",
    "claim_name",
    "container_root",
    "iter_containers",
    "load",
    "new_container",
    "now",
    "release_name",
    "rfc3339",
    "try_lock",
    "write_json",
]

ZERO_TIME = "0001-01-01T00:00:00Z"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_PRIVATE_STATE = ("MonitorPid", "SlirpPid")

# Names for containers started without --name: two short word lists of our own.
_ADJECTIVES = ("brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid",
               "merry", "nimble", "proud", "quiet", "rapid", "sharp", "sunny", "tidy", "vivid",
               "witty", "zesty")
_NOUNS = ("anchor", "barge", "buoy", "cargo", "crane", "dock", "ferry", "harbor", "hull", "jetty",
          "keel", "mast", "pier", "quay", "rudder", "sail", "skiff", "tug", "wharf", "yard")


def rfc3339(ts_ns: int) -> str:
    """RFC 3339 with nanoseconds in UTC, the way Docker prints times."""
    secs, frac = divmod(ts_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def now() -> str:
    return rfc3339(time.time_ns())


def container_root(store_root: Path) -> Path:
    return Path(store_root) / "containers"


def write_json(path: Path, data: Any) -> None:
    """Write then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data))  # dumps uses the C encoder; dump(fh) does not
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


class Container:
    """A container directory with its config document and its last known state."""

    # A plain class, not a dataclass: building one costs ~3M instructions at every start.
    def __init__(self, dir: Path, doc: dict[str, Any], state: dict[str, Any]):  # noqa: A002
        self.dir = dir
        self.doc = doc
        self.state = state

    def __repr__(self) -> str:
        return f"Container({str(self.dir)!r})"

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def name(self) -> str:
        return str(self.doc.get("Name", "")).lstrip("/")

    @property
    def private(self) -> dict[str, Any]:
        """dockyard's own settings (argv, anonymous volumes, network details)."""
        return self.doc.get("Dockyard") or {}

    @property
    def running(self) -> bool:
        return self.state.get("Status") == "running"

    def path(self, name: str) -> Path:
        return self.dir / name

    def reload(self) -> Container:
        self.state = _read_json(self.dir / "state.json")
        return self

    def save_state(self, **changes: Any) -> None:
        self.state.update(changes)
        status = self.state.get("Status")
        self.state["Running"] = status == "running"
        self.state["Dead"] = status == "dead"
        write_json(self.dir / "state.json", self.state)

    def public_state(self) -> dict[str, Any]:
        return {k: v for k, v in self.state.items() if k not in _PRIVATE_STATE}


def initial_state() -> dict[str, Any]:
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}


def claim_name(root: Path, name: str | None, container_id: str) -> str:
    """Reserve `name` (or a generated one) for `container_id`."""
    names = root / "names"
    names.mkdir(parents=True, exist_ok=True)
    if name is not None:
        name = name.lstrip("/")
        if not _NAME.fullmatch(name):
            raise InvalidOption(f'invalid container name "{name}", only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
        candidates = [name]
    else:
        candidates = [f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}" for _ in range(20)]
        candidates += [f"{c}_{secrets.token_hex(3)}" for c in candidates[:5]]
    for candidate in candidates:
        try:
            fd = os.open(names / candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(container_id)
        return candidate
    taken = (names / candidates[0]).read_text(errors="replace").strip()
    raise ContainerConflict(f'the container name "/{candidates[0]}" is already in use by container '
                            f'"{taken}": remove (or rename) that container to reuse the name')


def release_name(root: Path, name: str, container_id: str) -> None:
    path = root / "names" / name
    try:
        if path.read_text().strip() == container_id:
            path.unlink()
    except OSError:
        pass


def new_container(root: Path, name: str | None) -> tuple[str, str, Path]:
    """(id, name, dir) of a fresh container directory with its name reserved."""
    root.mkdir(parents=True, exist_ok=True)
    container_id = secrets.token_hex(32)
    name = claim_name(root, name, container_id)
    path = root / container_id
    path.mkdir(mode=0o700)
    return container_id, name, path


def try_lock(path: Path, *, exclusive: bool = True, blocking: bool = False) -> int | None:
    """An fd holding a flock on `path`, or None when someone else holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if blocking else fcntl.LOCK_NB)
    try:
        fcntl.flock(fd, flags)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


def _load_dir(path: Path) -> Container | None:
    try:
        return Container(path, _read_json(path / "config.json"), _read_json(path / "state.json"))
    except (OSError, ValueError):
        return None  # being created or removed


def iter_containers(root: Path) -> Iterator[Container]:
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return
    for entry in entries:
        if len(entry.name) == 64 and entry.is_dir(follow_symlinks=False):
            found = _load_dir(Path(entry.path))
            if found is not None:
                yield found


def load(root: Path, ref: str) -> Container:
    """A container by name, full id or unique id prefix."""
    name = ref.lstrip("/")
    try:
        container_id = (root / "names" / name).read_text().strip()
    except (OSError, ValueError):
        container_id = ""
    if container_id:
        found = _load_dir(root / container_id)
        if found is not None:
            return found
    if ref and all(c in "0123456789abcdef" for c in ref):
        matches = [p for p in (root.iterdir() if root.is_dir() else ())
                   if len(p.name) == 64 and p.name.startswith(ref)]
        if len(matches) > 1:
            raise ContainerNotFound(f"multiple containers match the id prefix {ref}: be more specific")
        if matches:
            found = _load_dir(matches[0])
            if found is not None:
                return found
    raise ContainerNotFound(f"no such container: {ref}")

"""A container's mounts: -v/--mount/--tmpfs, the image's VOLUMEs, and --init.

Every image VOLUME not covered by a user mount gets an anonymous volume, as
in Docker. Volumes are seeded from the image on first use (see volumes.py).
Under --userns=auto volumes and bind sources are idmapped (security.IdMapper)
and runc binds the idmapped clones; the volume is seeded through its clone,
so the image's owners land on disk as the in-container ids.

`check_workdir` is the CVE-2024-21626 guard for a container with mounts: the
working directory is resolved the way the container will see it (symlinks
read through bind mounts too), and any path passing through /proc, /dev or
/sys is refused, so `-w /proc/self/fd/N` or a symlink to it in the image or
in a bind-mounted directory cannot put the process's cwd on a leaked host fd.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.container.errors import InvalidOption
from dockyard.container.options import MountSpec
from dockyard.container.security import IdMapper
from dockyard.container.volumes import Volume, VolumeStore
from dockyard.errors import ContainerRuntimeError
from dockyard.runtime._paths import scoped_resolve, split_clean
from dockyard.runtime.container import prepare_cwd
from dockyard.runtime.spec import KERNEL_MOUNT_ROOTS

__all__ = ["IDMAPPED_DIR", "INIT_PATH", "PreparedMounts", "check_workdir", "detach_idmapped", "find_init",
           "prepare_mounts"]

IDMAPPED_DIR = "idmapped"  # in the container's directory: where the idmapped clones are attached
INIT_PATH = "/sbin/docker-init"  # where Docker puts its init; scripts look for it there
_INIT_CANDIDATES = ("tini-static", "tini", "catatonit")
_MAX_LINKS = 40
_KERNEL_TOPS = frozenset(p.strip("/") for p in KERNEL_MOUNT_ROOTS)


class PreparedMounts:
    # A plain class, not a dataclass: building one costs ~3M instructions at every start.
    def __init__(self, oci: list[dict[str, Any]], inspect: list[dict[str, Any]], anonymous: list[str],
                 sources: dict[str, str | None]):
        self.oci = oci              # OCI mount entries, in order
        self.inspect = inspect      # Docker's "Mounts" of the container
        self.anonymous = anonymous  # anonymous volume names this container created
        self.sources = sources      # destination -> host directory (None: tmpfs)


def find_init() -> str:
    for name in _INIT_CANDIDATES:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
        if found:
            return found
    raise InvalidOption("--init needs tini (apt-get install tini) or catatonit on the host")


def _bind(source: str, target: str, *, readonly: bool, propagation: str = "rprivate",
          recursive: bool = True, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    options = ["rbind" if recursive else "bind", propagation, *extra]
    if readonly:
        options.append("ro")
    return {"destination": target, "type": "bind", "source": source, "options": options}


def _tmpfs(spec: MountSpec) -> dict[str, Any]:
    # Docker's defaults, then the user's options (the later one wins: "exec" beats "noexec").
    options: dict[str, str] = {"noexec": "exec", "nosuid": "suid", "nodev": "dev"}
    chosen = {flag: flag for flag in options}
    data = []
    for opt in spec.options:
        for flag, opposite in options.items():
            if opt in (flag, opposite):
                chosen[flag] = opt
                break
        else:
            data.append(opt)
    final = [v for v in chosen.values() if v not in ("exec", "suid", "dev")] + data
    if spec.readonly:
        final.append("ro")
    return {"destination": spec.target, "type": "tmpfs", "source": "tmpfs", "options": final}


def detach_idmapped(cdir: Path) -> None:
    """Take down the idmapped clones attached for a container (before its dir is deleted)."""
    attached = Path(cdir) / IDMAPPED_DIR
    if attached.is_dir():  # only --userns=auto makes them: others skip the imports
        from dockyard.runtime.overlay import unmount
        from dockyard.store.fsck import mounts_under

        for point in mounts_under(attached):
            unmount(point)


def prepare_mounts(specs: list[MountSpec], image_volumes: list[str], rootfs: Path,
                   volumes: VolumeStore, *, init: str | None = None,
                   idmap: IdMapper | None = None) -> PreparedMounts:
    """Create what the mounts need (host dirs, volumes) and return the OCI list."""
    seen: set[str] = set()
    for spec in specs:
        if spec.target in seen:
            raise InvalidOption(f"duplicate mount point: {spec.target}")
        seen.add(spec.target)
    specs = list(specs) + [MountSpec("volume", os.path.normpath(v)) for v in image_volumes
                           if os.path.normpath(v) not in seen]
    out = PreparedMounts([], [], [], {})
    try:
        for spec in specs:
            _add(out, spec, rootfs, volumes, idmap)
    except BaseException:
        volumes.remove_quietly(out.anonymous)
        raise
    if init is not None:
        out.oci.append(_bind(init, INIT_PATH, readonly=True, recursive=False))
    return out


def _add(out: PreparedMounts, spec: MountSpec, rootfs: Path, volumes: VolumeStore,
         idmap: IdMapper | None) -> None:
    rw = not spec.readonly
    if spec.type == "tmpfs":
        out.oci.append(_tmpfs(spec))
        out.sources[spec.target] = None
        out.inspect.append({"Type": "tmpfs", "Source": "", "Destination": spec.target, "Mode": "",
                            "RW": rw, "Propagation": ""})
        return
    if spec.type == "bind":
        source = Path(spec.source)
        if not source.exists():
            if not spec.create_source:
                raise InvalidOption(f"invalid mount config for type \"bind\": bind source path does not exist: {source}")
            source.mkdir(parents=True, mode=0o755)
        shown = source
        if idmap is not None:
            shown = idmap.attach(source, recursive=spec.recursive, what=f"bind mount {source}")
        out.oci.append(_bind(str(shown), spec.target, readonly=spec.readonly,
                             propagation=spec.propagation, recursive=spec.recursive))
        out.sources[spec.target] = str(source) if source.is_dir() else None
        out.inspect.append({"Type": "bind", "Source": str(source), "Destination": spec.target,
                            "Mode": "ro" if spec.readonly else "", "RW": rw, "Propagation": spec.propagation})
        return
    volume = volumes.create(spec.source or None, anonymous=not spec.source)
    if not spec.source:
        out.anonymous.append(volume.name)
    shown = volume.data
    if idmap is None:
        if not spec.nocopy:
            _seed(volumes, volume, rootfs, spec.target, None, None)
    else:
        shown = idmap.attach(volume.data, recursive=False, what=f"volume {volume.name}")
        if not spec.nocopy:
            _seed(volumes, volume, rootfs, spec.target, shown, idmap.enter)
    out.oci.append(_bind(str(shown), spec.target, readonly=spec.readonly, extra=("nosuid", "nodev")))
    out.sources[spec.target] = str(volume.data)
    out.inspect.append({"Type": "volume", "Name": volume.name, "Source": str(volume.data),
                        "Destination": spec.target, "Driver": "local", "Mode": "z" if rw else "ro",
                        "RW": rw, "Propagation": ""})


def _seed(volumes: VolumeStore, volume: Volume, rootfs: Path, target: str, into: Path | None,
          as_container: Callable[[], None] | None) -> None:
    parts = scoped_resolve(rootfs, target)
    if parts and parts[0] in _KERNEL_TOPS:
        return
    volumes.seed(volume, Path(rootfs, *parts), into=into, as_container=as_container)


def _host_path(rootfs: Path, sources: dict[str, str | None], parts: list[str]) -> str | None:
    """Where in-container `parts` live on the host (None: inside a tmpfs, empty)."""
    path = "/" + "/".join(parts)
    best = ""
    for dest in sources:
        if (path == dest or path.startswith(dest.rstrip("/") + "/")) and len(dest) > len(best):
            best = dest
    if not best:
        return os.path.join(rootfs, *parts)
    base = sources[best]
    if base is None:
        return None
    rest = path[len(best):].lstrip("/")
    return os.path.join(base, rest) if rest else base


def check_workdir(rootfs: Path, cwd: str, sources: dict[str, str | None], *, create: bool = True) -> str:
    """Refuse a working directory that reaches /proc, /dev or /sys; create it when missing.

    Returns the cleaned path. Without mounts this is `prepare_cwd`; with them,
    a missing directory is created only when it lies in the rootfs itself
    (never inside a volume another container may be changing meanwhile).
    """
    cleaned = "/" + "/".join(split_clean(cwd))
    if not sources:
        return _prepare(rootfs, cwd, create)
    pending = list(reversed(split_clean(cwd)))
    done: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if done:
                done.pop()
            continue
        if part in ("", "."):
            continue
        candidate = done + [part]
        if candidate[0] in _KERNEL_TOPS:
            raise InvalidOption(f"working directory {cwd} leads into /{candidate[0]}, a kernel "
                                "filesystem in the container: refused")
        host = _host_path(rootfs, sources, candidate)
        try:
            st = os.lstat(host) if host is not None else None
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise InvalidOption(f"working directory {cwd}: {exc.strerror}") from exc
            st = None
        if host is not None and st is not None and stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise InvalidOption(f"working directory {cwd}: too many levels of symbolic links")
            target = os.readlink(host)
            if target.startswith("/"):
                done = []
            pending.extend(reversed(target.split("/")))
            continue
        done = candidate
    resolved = "/" + "/".join(done)
    if _host_path(rootfs, sources, done) == os.path.join(rootfs, *done):
        _prepare(rootfs, resolved, create)  # in the rootfs: checked again and created
    return cleaned


def _prepare(rootfs: Path, cwd: str, create: bool) -> str:
    try:
        return prepare_cwd(rootfs, cwd, create=create)
    except InvalidOption:
        raise
    except ContainerRuntimeError as exc:
        raise InvalidOption(str(exc)) from None

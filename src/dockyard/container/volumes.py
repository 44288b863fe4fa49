"""Named and anonymous volumes: directories under `<store>/volumes/<name>/_data`.

`volume.json` beside `_data` holds Docker's inspect fields. Anonymous volumes
(one per image VOLUME, or `-v /path`) carry Docker's
`com.docker.volume.anonymous` label; `run --rm` and `rm -v` remove them, and
`volume prune` removes unused ones (all unused volumes with --all, as Docker
23 does). A volume is "in use" while any container, running or not, names it.

A fresh (empty) volume is seeded with what the image has at the mount path,
as Docker does, unless the mount says nocopy. Files in a volume carry the
ids the container sees; under --userns=auto the volume is mounted idmapped
(see security.py), never chowned.
"""

from __future__ import annotations

import builtins
import errno
import fcntl
import json
import os
import secrets
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.container.errors import VolumeError, VolumeNotFound
from dockyard.container.options import VOLUME_NAME
from dockyard.container.records import container_root, iter_containers, now, write_json

__all__ = ["ANONYMOUS_LABEL", "Volume", "VolumeStore"]

ANONYMOUS_LABEL = "com.docker.volume.anonymous"


class Volume:
    # A plain class, not a dataclass: building one costs ~3M instructions at every start.
    def __init__(self, name: str, dir: Path, info: dict[str, Any]):  # noqa: A002 - the volume's directory
        self.name = name
        self.dir = dir
        self.info = info

    def __repr__(self) -> str:
        return f"Volume({self.name!r}, {str(self.dir)!r})"

    @property
    def data(self) -> Path:
        return self.dir / "_data"

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in (self.info.get("Labels") or {})


class VolumeStore:
    def __init__(self, store_root: Path):
        self.store_root = Path(store_root)
        self.root = self.store_root / "volumes"

    def _load(self, name: str) -> Volume | None:
        path = self.root / name
        try:
            with open(path / "volume.json", encoding="utf-8") as fh:
                info = json.load(fh)
        except (OSError, ValueError):
            return None
        return Volume(name, path, info)

    def get(self, name: str) -> Volume:
        found = self._load(name) if VOLUME_NAME.fullmatch(name) else None
        if found is None:
            raise VolumeNotFound(f"no such volume: {name}")
        return found

    def create(self, name: str | None = None, *, labels: dict[str, str] | None = None,
               anonymous: bool = False) -> Volume:
        """Create a volume, or return the existing one of that name (as Docker does)."""
        name = name or secrets.token_hex(32)
        if not VOLUME_NAME.fullmatch(name):
            raise VolumeError(f'"{name}" includes invalid characters for a local volume name, '
                              'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed')
        existing = self._load(name)
        if existing is not None:
            return existing
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.root / name
        path.mkdir(mode=0o700, exist_ok=True)
        (path / "_data").mkdir(mode=0o755, exist_ok=True)
        all_labels = dict(labels or {})
        if anonymous:
            all_labels[ANONYMOUS_LABEL] = ""
        info = {"CreatedAt": now()[:19] + "Z", "Driver": "local", "Labels": all_labels,
                "Mountpoint": str(path / "_data"), "Name": name, "Options": {}, "Scope": "local"}
        write_json(path / "volume.json", info)
        return Volume(name, path, info)

    def list(self) -> builtins.list[Volume]:
        if not self.root.is_dir():
            return []
        found = (self._load(p.name) for p in sorted(self.root.iterdir()))
        return [v for v in found if v is not None]

    def users(self) -> dict[str, builtins.list[str]]:
        """volume name -> ids of the containers that mount it."""
        out: dict[str, list[str]] = {}
        for ctr in iter_containers(container_root(self.store_root)):
            for mount in ctr.doc.get("Mounts") or []:
                if mount.get("Type") == "volume" and mount.get("Name"):
                    out.setdefault(mount["Name"], []).append(ctr.id)
        return out

    def remove(self, name: str, *, force: bool = False) -> None:
        """Remove an unused volume; `force` only silences a missing one."""
        try:
            volume = self.get(name)
        except VolumeNotFound:
            if force:
                return
            raise
        users = self.users().get(name)
        if users:
            raise VolumeError(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self._delete(volume)

    def _delete(self, volume: Volume) -> None:
        # Rename first, so a half-deleted volume never looks like a live one.
        doomed = volume.dir.with_name(f".rm-{volume.name}-{secrets.token_hex(4)}")
        try:
            os.rename(volume.dir, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def remove_quietly(self, names: builtins.list[str]) -> None:
        """Remove anonymous volumes a removed container leaves behind, when unused."""
        if not names:
            return
        users = self.users()
        for name in names:
            volume = self._load(name)
            if volume is not None and not users.get(name):
                self._delete(volume)

    def prune(self, *, all_volumes: bool = False) -> builtins.list[str]:
        users = self.users()
        removed = []
        for volume in self.list():
            if users.get(volume.name) or not (all_volumes or volume.anonymous):
                continue
            self._delete(volume)
            removed.append(volume.name)
        return removed

    def seed(self, volume: Volume, source: Path, *, into: Path | None = None,
             as_container: Callable[[], None] | None = None) -> None:
        """Copy `source` (the image's directory at the mount path) into an empty volume.

        `source` must already be resolved inside the container's root; `cp -a`
        keeps owners, modes, times, xattrs and never follows the symlinks it copies.
        Under --userns=auto `into` is the volume's idmapped clone and `as_container`
        puts cp in the container's user namespace: it then copies the ids the
        container sees, and they land on disk unshifted.
        """
        if not source.is_dir() or source.is_symlink():
            return
        fd = os.open(volume.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # two containers may share a new volume
            if any(os.scandir(volume.data)):
                return
            if into is None and as_container is None and not any(os.scandir(source)):
                _copy_dir_attrs(source, volume.data)  # what cp -a does for an empty directory
                return
            proc = subprocess.run(["cp", "-a", "--", f"{source}/.", f"{into or volume.data}/"],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
                                  preexec_fn=as_container)
            if proc.returncode != 0:
                detail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
                raise VolumeError(f"copying image content into volume {volume.name}: {detail[0]}")
        finally:
            os.close(fd)


def _copy_dir_attrs(source: Path, dest: Path) -> None:
    # No spawn of cp for an empty directory (an image VOLUME usually is one):
    # its xattrs, owner, mode and times, as `cp -a` keeps them.
    st = os.lstat(source)
    for name in os.listxattr(source, follow_symlinks=False):
        try:
            os.setxattr(dest, name, os.getxattr(source, name, follow_symlinks=False),
                        follow_symlinks=False)
        except OSError:
            pass  # cp -a also skips the xattrs this filesystem or user cannot set
    try:
        os.chown(dest, st.st_uid, st.st_gid, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EINVAL):  # unmapped ids: cp -a goes on too
            raise VolumeError(f"copying the owner of {source}: {exc.strerror}") from exc
    os.chmod(dest, stat.S_IMODE(st.st_mode))
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

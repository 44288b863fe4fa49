"""Path resolution scoped to a container root.

An image's symlinks are relative to the image's own root, never the host's:
`/etc/passwd -> /etc/../../host` must land inside the rootfs. `scoped_resolve`
walks a path one component at a time, reading each symlink and restarting its
target from the rootfs, clamping `..` at the root (the semantics of the
`securejoin` and `fs.RootPath` helpers used by runc and containerd).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from dockyard.errors import ContainerRuntimeError

__all__ = ["read_file_in_root", "scoped_resolve", "split_clean"]

# Linux's own limit on symlinks followed during one lookup.
_MAX_SYMLINKS = 40
# /etc/passwd and /etc/group are small; refuse to slurp something absurd.
_MAX_USER_FILE = 16 << 20


def split_clean(path: str) -> list[str]:
    """Lexically clean an in-container path into components (no '.', '..' clamped at /)."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


def scoped_resolve(root: Path, path: str, *, trail: list[str] | None = None) -> list[str]:
    """Resolve `path` inside `root`, following symlinks as the container would see them.

    Returns the resolved components relative to `root`. Components that do not
    exist are kept as they are (the result may name a missing file). When
    `trail` is given, every intermediate resolved path (joined with '/') is
    appended to it, so callers can see every place the walk passed through.
    """
    pending = split_clean(path)
    pending.reverse()  # a stack: next component last
    done: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = done + [part]
        full = os.path.join(root, *candidate)
        try:
            st = os.lstat(full)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise ContainerRuntimeError(f"resolving {path} in rootfs: {exc.strerror}") from exc
            done = candidate
            if trail is not None:
                trail.append("/".join(done))
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise ContainerRuntimeError(f"resolving {path} in rootfs: too many levels of symbolic links")
            target = os.readlink(full)
            if target.startswith("/"):
                done = []  # absolute targets restart at the container root
            target_parts = target.split("/")
            target_parts.reverse()
            pending.extend(target_parts)
            continue
        done = candidate
        if trail is not None:
            trail.append("/".join(done))
    return done


def read_file_in_root(root: Path, path: str) -> bytes | None:
    """Read a small regular file at in-container `path`; None when it does not exist.

    Only regular files are read: a device node or FIFO planted at /etc/passwd
    would otherwise hang or read host data.
    """
    rel = scoped_resolve(root, path)
    full = os.path.join(root, *rel) if rel else str(root)
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(full, flags)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise ContainerRuntimeError(f"reading {path} in rootfs: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ContainerRuntimeError(f"reading {path} in rootfs: not a regular file")
        if st.st_size > _MAX_USER_FILE:
            raise ContainerRuntimeError(f"reading {path} in rootfs: file too large")
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


"""Resolve paths inside a root directory as if it were '/' (a chroot), with
file descriptors, so nothing is ever reached through a symlink outside it.

Every component is opened with O_NOFOLLOW relative to its parent's fd; a
symlink met on the way is read and its target walked again from the root
(absolute) or from the link's directory (relative), with '..' stopping at
the root — the semantics of containerd's fs.RootPath and securejoin. The
callers then act on (parent fd, base name) with *at() calls, so no path is
re-resolved by the kernel through a symlink that an archive entry planted.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import OrderedDict
from typing import Self

from dockyard.errors import LayerError

_OPEN_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_LINKS = 255
_CACHE_SIZE = 128


def clean(name: str) -> tuple[list[str], bool]:
    """Split a slash path into plain components, dropping '' and '.', and applying
    '..' lexically. Also says whether a '..' climbed above the start."""
    parts: list[str] = []
    climbed = False
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            else:
                climbed = True
            continue
        parts.append(part)
    return parts, climbed


class Root:
    """An open root directory and a small cache of resolved directory fds."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        try:
            self.fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise LayerError(f"cannot open root directory {self.path}: {exc.strerror}") from None
        self._cache: OrderedDict[tuple[str, ...], tuple[int, tuple[str, ...]]] = OrderedDict()
        # fds dropped from the cache that a caller may still be using.
        self._stale: list[int] = []
        # Directories made here to hold an entry: the caller's layer created them.
        self.made_dirs: set[tuple[str, ...]] = set()

    def close(self) -> None:
        self.invalidate()
        self.collect()
        os.close(self.fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def invalidate(self) -> None:
        """Forget cached resolutions: call after removing a directory or a symlink.
        The fds stay open (a caller may hold one) until collect()."""
        self._stale.extend(fd for fd, _ in self._cache.values())
        self._cache.clear()

    def collect(self) -> None:
        """Close the fds invalidate() dropped; call when no returned fd is in use."""
        for fd in self._stale:
            os.close(fd)
        self._stale.clear()

    def directory(self, parts: list[str] | tuple[str, ...], *, create: bool
                  ) -> tuple[int, tuple[str, ...]] | None:
        """The fd of the directory named by `parts` (plain components relative to
        the root) and its resolved components, following symlinks inside the root.
        Missing directories are made (mode 0755) when `create`, else None is
        returned. The fd belongs to this object: do not close it, nor use it
        after the next collect()."""
        key = tuple(parts)
        if not key:
            return self.fd, ()
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        found = self._below_cached_parent(key)
        if found is None:
            found = self._walk(key, create)
            if found is None:
                return None
        if found[0] == self.fd:  # resolved to the root itself: nothing to own
            return found
        self._keep(key, found)
        return found

    def remember(self, parts: list[str] | tuple[str, ...], fd: int, resolved: tuple[str, ...]) -> None:
        """Take `fd`, a directory the caller opened (O_NOFOLLOW) as the entry
        `resolved` under the resolved parent of `parts`, as the resolution of
        `parts`; it is closed like the fds this object opens."""
        key = tuple(parts)
        old = self._cache.pop(key, None)
        if old is not None:
            self._stale.append(old[0])
        self._keep(key, (fd, resolved))

    def _keep(self, key: tuple[str, ...], found: tuple[int, tuple[str, ...]]) -> None:
        self._cache[key] = found
        if len(self._cache) > _CACHE_SIZE:
            _, (old_fd, _) = self._cache.popitem(last=False)
            self._stale.append(old_fd)

    def _below_cached_parent(self, key: tuple[str, ...]) -> tuple[int, tuple[str, ...]] | None:
        """The common case in one openat: the parent is cached and the last
        component is a plain directory in it. Anything else (a symlink, a
        missing name) is left to the full walk."""
        if len(key) < 2 or key[-1] in ("", ".", ".."):
            return None
        parent = self._cache.get(key[:-1])
        if parent is None:
            return None
        try:
            fd = os.open(key[-1], _OPEN_DIR, dir_fd=parent[0])
        except OSError:
            return None
        return fd, parent[1] + (key[-1],)

    def _walk(self, key: tuple[str, ...], create: bool) -> tuple[int, tuple[str, ...]] | None:
        # Opened directories below the root; fd -1 marks a component that does
        # not exist (yet): like securejoin, accept it and go on, since a later
        # '..' may take it back ('missing/../etc').
        stack: list[tuple[str, int]] = []
        todo = list(reversed(key))
        links = 0
        # Set when a relative symlink climbed above the root and was stopped there.
        escaped = False
        try:
            while todo:
                part = todo.pop()
                if part in ("", "."):
                    continue
                if part == "..":
                    if stack:
                        fd = stack.pop()[1]
                        if fd >= 0:
                            os.close(fd)
                    continue
                cur = stack[-1][1] if stack else self.fd
                if cur < 0:
                    stack.append((part, -1))  # under a missing directory
                    continue
                try:
                    fd = os.open(part, _OPEN_DIR, dir_fd=cur)
                except FileNotFoundError:
                    stack.append((part, -1))
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    target = self._link(cur, part, stack)
                    links += 1
                    if links > _MAX_LINKS:
                        raise LayerError(f"too many levels of symbolic links in {'/'.join(key)}") from None
                    tparts = target.split("/")
                    if target.startswith("/"):
                        if escaped:
                            # moby refuses this: only a naive resolver would let the
                            # relative link out and an absolute one back in.
                            raise LayerError(
                                f"path {'/'.join(key)} escapes the root through a relative "
                                "symlink before an absolute one") from None
                        while stack:
                            fd = stack.pop()[1]
                            if fd >= 0:
                                os.close(fd)
                    elif not escaped:
                        escaped = _climbs(len(stack), tparts)
                    todo.extend(reversed(tparts))
                    continue
                stack.append((part, fd))
            if any(fd < 0 for _, fd in stack):
                if not create:
                    return None
                self._make_missing(stack)
            if not stack:
                return self.fd, ()
            name, fd = stack.pop()
            return fd, tuple(n for n, _ in stack) + (name,)
        except OSError as exc:
            raise LayerError(f"cannot resolve {'/'.join(key)}: {exc.strerror}") from None
        finally:
            for _, fd in stack:
                if fd >= 0:
                    os.close(fd)

    @staticmethod
    def _link(cur: int, part: str, stack: list[tuple[str, int]]) -> str:
        """The target of `part` in `cur`, which failed to open as a directory."""
        st = os.stat(part, dir_fd=cur, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            where = "/".join([n for n, _ in stack] + [part])
            raise LayerError(f"{where} is not a directory")
        return os.readlink(part, dir_fd=cur)

    def _make_missing(self, stack: list[tuple[str, int]]) -> None:
        """Make the directories marked missing on the stack (mode 0755), in order."""
        for i, (name, fd) in enumerate(stack):
            if fd >= 0:
                continue
            cur = stack[i - 1][1] if i else self.fd
            os.mkdir(name, 0o755, dir_fd=cur)
            os.chmod(name, 0o755, dir_fd=cur, follow_symlinks=False)  # undo the umask
            stack[i] = (name, os.open(name, _OPEN_DIR, dir_fd=cur))
            self.made_dirs.add(tuple(n for n, _ in stack[:i + 1]))


def _climbs(depth: int, parts: list[str]) -> bool:
    """Whether walking `parts` from `depth` levels below the root goes above it."""
    for part in parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False

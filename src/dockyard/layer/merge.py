"""Does a layer need overlay semantics to be applied on top of its parents?

Applying through an overlay mount of the parents costs a mount and a slower
write path. A layer that only adds entries beside or over what is below can
instead be written into an empty directory: as an overlay upper dir it then
shows exactly what the mount would have left there. That holds when the
layer has no whiteouts or opaque markers, every parent directory of an entry
is an explicit directory entry of the layer (an implied one would be copied
up with the lower directory's owner and mode) that is a plain directory or
absent below, hardlinks point at files of the layer itself, and no directory
entry lands on a lower non-directory, a lower directory with xattrs, or a
name the layer itself made a non-directory.
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path
from typing import Callable

from dockyard.layer.rootfs import clean

_OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")
_DIR, _OTHER = "dir", "other"


def checker(lowers: list[Path]) -> Callable[[tarfile.TarInfo], bool]:
    """A function that says, entry by entry in the layer's order, whether the
    layer can still be applied to an empty dir that is then stacked on
    `lowers` (top-most first). Anything unusual or hostile gets False: the
    careful path (an overlay mount) judges it."""
    return _Check(lowers).entry


class _Check:
    def __init__(self, lowers: list[Path]):
        # For each directory path: the lower dirs it merges, top-most first.
        self.merged: dict[tuple[str, ...], list[str]] = {(): [os.fspath(p) for p in lowers]}
        self.dirs: set[tuple[str, ...]] = set()     # directories this layer wrote
        self.others: set[tuple[str, ...]] = set()   # non-directories it wrote
        self.files: set[tuple[str, ...]] = set()    # regular files it wrote (hardlink targets)

    def entry(self, m: tarfile.TarInfo) -> bool:
        parts, climbed = clean(m.name)
        if climbed and not m.name.startswith("/"):
            return False
        if not parts:
            return m.isdir() or m.issym()  # the root itself: ignored when applied
        if any(p.startswith(".wh.") for p in parts):
            return False
        path = tuple(parts)
        if any(path[:k] not in self.dirs for k in range(1, len(path))):
            return False
        if m.isdir():
            if path in self.others or self._lower(path) == _OTHER:
                return False
            self.dirs.add(path)
            return True
        if m.islnk():
            target, up = clean(m.linkname)
            if up or tuple(target) not in self.files:
                return False
        elif m.type in (tarfile.CHRTYPE, tarfile.BLKTYPE) and m.devmajor == 0 and m.devminor == 0:
            return False  # looks like an overlay whiteout
        elif not (m.isreg() or m.issym() or m.type == tarfile.FIFOTYPE or m.ischr() or m.isblk()):
            return False
        self.dirs.discard(path)
        self.others.add(path)
        if m.isreg() or m.islnk():
            self.files.add(path)
        else:
            self.files.discard(path)
        return True

    def _lower(self, path: tuple[str, ...]) -> str | None:
        """What the parents show at `path`: None (nothing), a plain directory
        (without xattrs, which a copy-up would carry), or something else.
        Only names inside real directories of each lower are looked at."""
        if path in self.merged:
            return _DIR if self.merged[path] else None
        above = self.merged.get(path[:-1])
        if above is None:
            return _OTHER
        found: list[str] = []
        kind: str | None = None
        for lower in above:
            full = os.path.join(lower, *path)
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                if kind is None:
                    return _OTHER
                break  # a non-directory ends the merge below a directory
            names = os.listxattr(full, follow_symlinks=False)
            if kind is None:
                if names:
                    return _OTHER
                kind = _DIR
            found.append(lower)
            if any(n in _OPAQUE for n in names):
                break
        self.merged[path] = found
        return kind

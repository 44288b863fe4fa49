"""Write layer tars: a whole directory tree, or the upper dir of an overlayfs
mount as a diff with whiteouts.

Deterministic output: depth-first, each directory's entries sorted bytewise
by name (the order Go's filepath.Walk gives BuildKit, so a parent always
precedes its children), numeric owners only, mtimes in whole seconds
(clamped to SOURCE_DATE_EPOCH when given), no atime/ctime. Headers are made
from lstat by hand: tarfile.add looks up user names (slow, and the host's
passwd has no business in an image).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import BinaryIO

from dockyard.errors import LayerError
from dockyard.layer import tarformat as tf

_COPY_BUFSIZE = 1 << 20
_FLUSH_AT = 1 << 16
_INLINE = 1 << 16
_OPAQUE_MARKER = b".wh..wh..opq"
_WHITEOUT_PREFIX = b".wh."
_OVERLAY_XATTRS = (b"trusted.overlay.", b"user.overlay.")


def write_tree(root: Path, out: BinaryIO, *, prefix: str = "",
               source_date_epoch: int | None = None) -> None:
    """Write the tree under `root` to `out` as a layer tar. Entry names are
    relative ('etc/', 'etc/passwd'); with a `prefix` ('app' or 'usr/src/app')
    they go under it and `root` itself is written first as '<prefix>/'.
    The root is not an entry otherwise, and parents of the prefix never are."""
    top = os.fsencode(root)
    pre = _normalize(prefix)
    writer = _TarWriter(out, source_date_epoch)
    try:
        if pre:
            st = os.stat(top)
            if not stat.S_ISDIR(st.st_mode):
                raise LayerError(f"{os.fsdecode(top)} is not a directory")
            writer.entry(pre, top, st, _xattrs(top)[0])
        for rel, st in _walk(top, frozenset()):
            path = top + b"/" + rel
            writer.entry(pre + b"/" + rel if pre else rel, path, st, _xattrs(path)[0])
    except OSError as exc:
        raise LayerError(f"cannot archive {os.fsdecode(exc.filename or top)}: {exc.strerror}") from None
    writer.close()


def write_upper_diff(upper: Path, out: BinaryIO, *, skip: Iterable[str] = (),
                     source_date_epoch: int | None = None) -> None:
    """Write the layer tar of an overlayfs upper dir: a 0/0 character device
    becomes a '.wh.<name>' whiteout, an opaque directory (overlay xattr
    opaque=y) is followed by '<dir>/.wh..wh..opq'. Paths in `skip` (mount
    stubs the runtime made, such as 'proc' or 'etc/hosts') are left out with
    what is under them. The mount must not use redirect_dir or metacopy: an
    upper dir alone cannot describe those changes, so they are refused."""
    top = os.fsencode(upper)
    skipped = frozenset(s for s in (_normalize(p) for p in skip) if s)
    writer = _TarWriter(out, source_date_epoch)
    try:
        for rel, st in _walk(top, skipped):
            path = top + b"/" + rel
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                head, _, base = rel.rpartition(b"/")
                writer.marker((head + b"/" if head else b"") + _WHITEOUT_PREFIX + base)
                continue
            kept, overlay = _xattrs(path)
            for key in overlay:
                if key.endswith((b".redirect", b".metacopy")):
                    raise LayerError(f"{os.fsdecode(path)} has {key.decode()}: mount overlayfs "
                                     "with redirect_dir=off,metacopy=off to diff its upper dir")
            writer.entry(rel, path, st, kept)
            if stat.S_ISDIR(st.st_mode) and any(
                    overlay.get(p + b"opaque") == b"y" for p in _OVERLAY_XATTRS):
                writer.marker(rel + b"/" + _OPAQUE_MARKER)
    except OSError as exc:
        raise LayerError(f"cannot archive {os.fsdecode(exc.filename or top)}: {exc.strerror}") from None
    writer.close()


def _normalize(path: str) -> bytes:
    parts = [p for p in os.fsencode(path).split(b"/") if p not in (b"", b".")]
    return b"/".join(parts)


def _walk(top: bytes, skip: frozenset[bytes]) -> Iterator[tuple[bytes, os.stat_result]]:
    """(relative path, lstat) of everything under `top`, pre-order, each
    directory sorted bytewise. A directory is listed only after the caller
    has handled its own entry."""
    stack = [(b"", sorted(os.listdir(top), reverse=True))]
    while stack:
        rel_dir, names = stack[-1]
        if not names:
            stack.pop()
            continue
        name = names.pop()
        rel = rel_dir + b"/" + name if rel_dir else name
        if rel in skip:
            continue
        st = os.lstat(top + b"/" + rel)
        yield rel, st
        if stat.S_ISDIR(st.st_mode):
            stack.append((rel, sorted(os.listdir(top + b"/" + rel), reverse=True)))


def _xattrs(path: bytes) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """(xattrs to archive, overlayfs' own xattrs) of a path, not following symlinks."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}, {}
        raise
    kept: dict[bytes, bytes] = {}
    overlay: dict[bytes, bytes] = {}
    for name in names:
        key = os.fsencode(name)
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno == errno.ENODATA:  # removed meanwhile
                continue
            raise
        (overlay if key.startswith(_OVERLAY_XATTRS) else kept)[key] = value
    return kept, overlay


class _TarWriter:
    """Headers into a small buffer, file data straight through in big chunks."""

    def __init__(self, out: BinaryIO, source_date_epoch: int | None):
        self.out = out
        self.sde = source_date_epoch
        self.buf = bytearray()
        self.links: dict[tuple[int, int], bytes] = {}
        self.copybuf = bytearray(_COPY_BUFSIZE)

    def _emit(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= _FLUSH_AT:
            self._flush()

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:  # a raw file may take only part of it
            n = self.out.write(view)
            view = view[len(view) if n is None else n:]

    def _flush(self) -> None:
        if self.buf:
            self._write(self.buf)
            self.buf = bytearray()

    def close(self) -> None:
        self._emit(tf.END_OF_ARCHIVE)
        self._flush()

    def marker(self, name: bytes) -> None:
        """An empty whiteout or opaque-marker file, owned by root, mode 0."""
        self._emit(tf.header(name, mode=0, typeflag=tf.REGTYPE))

    def entry(self, name: bytes, path: bytes, st: os.stat_result,
              xattrs: dict[bytes, bytes]) -> None:
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            return  # a socket cannot be archived; Docker drops them too
        mtime = st.st_mtime_ns // 10**9
        if self.sde is not None and mtime > self.sde:
            mtime = self.sde
        hdr = partial(tf.header, mode=mode & 0o7777, uid=st.st_uid, gid=st.st_gid, mtime=mtime,
                      xattrs=xattrs)
        if stat.S_ISDIR(mode):
            self._emit(hdr(name + b"/", typeflag=tf.DIRTYPE))
            return
        if st.st_nlink > 1:
            first = self.links.setdefault((st.st_dev, st.st_ino), name)
            if first != name:
                self._emit(hdr(name, typeflag=tf.LNKTYPE, linkname=first))
                return
        if stat.S_ISREG(mode):
            self._regular(name, path, st, hdr)
        elif stat.S_ISLNK(mode):
            self._emit(hdr(name, typeflag=tf.SYMTYPE, linkname=os.readlink(path)))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = tf.CHRTYPE if stat.S_ISCHR(mode) else tf.BLKTYPE
            self._emit(hdr(name, typeflag=kind, devmajor=os.major(st.st_rdev),
                           devminor=os.minor(st.st_rdev)))
        elif stat.S_ISFIFO(mode):
            self._emit(hdr(name, typeflag=tf.FIFOTYPE))
        else:
            raise LayerError(f"{os.fsdecode(path)}: unsupported file type {oct(stat.S_IFMT(mode))}")

    def _regular(self, name: bytes, path: bytes, st: os.stat_result, hdr: partial[bytes]) -> None:
        size = st.st_size
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                raise LayerError(f"{os.fsdecode(path)} was replaced while archiving")
            self._emit(hdr(name, typeflag=tf.REGTYPE, size=size))
            if size <= _INLINE:  # small files go through the header buffer
                data = os.read(fd, size)
                while len(data) < size:
                    more = os.read(fd, size - len(data))
                    if not more:
                        raise LayerError(f"{os.fsdecode(path)} shrank while archiving")
                    data += more
                self.buf += data
            else:
                self._flush()
                view = memoryview(self.copybuf)
                left = size
                while left:
                    n = os.readv(fd, [view[:min(left, len(view))]])
                    if n == 0:
                        raise LayerError(f"{os.fsdecode(path)} shrank while archiving")
                    self._write(view[:n])
                    left -= n
        finally:
            os.close(fd)
        self._emit(tf.padding(size))

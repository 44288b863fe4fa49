"""Apply a layer tar to a root filesystem directory, safely, the way
`docker load` / containerd unpack one.

Rules, chosen to pass both moby's and containerd's breakout tests:
- an entry name is cleaned lexically; a relative name that climbs above the
  root is refused, an absolute one is taken relative to the root;
- an entry naming the root itself is ignored if it is a directory or a
  symlink (containerd ignores such entries) and refused otherwise;
- parent directories are resolved inside the root (rootfs.Root), symlinks
  included, and missing ones are made with mode 0755;
- hardlink targets are resolved the same way, their last component not
  followed, and must exist inside the root;
- symlink targets are stored as they are: they are data until followed, and
  this module follows them only inside the root;
- chown/chmod/utime act on fds or with AT_SYMLINK_NOFOLLOW, never through a
  symlink; a hardlink entry changes no metadata (the CVE-2021-32760 path);
- whiteouts ('.wh.name') delete, opaque markers ('.wh..wh..opq') empty the
  directory except what this layer wrote; only unlink/rmdir/mkdir/mknod are
  used, so the same code works on an overlayfs merged mount.
"""

from __future__ import annotations

import contextlib
import errno
import io
import lzma
import os
import shutil
import stat
import tarfile
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from dockyard.errors import LayerError
from dockyard.layer.compress import compression_of, open_layer, zstandard
from dockyard.layer.rootfs import Root, clean
from dockyard.layer.tarformat import XATTR_PREFIX

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"

_UNREADABLE: tuple[type[Exception], ...] = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError)
if zstandard is not None:
    _UNREADABLE += (zstandard.ZstdError,)
_COPY_BUFSIZE = 1 << 20
_SNIFF = 6
_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_DEVICE_TYPES = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK,
                 tarfile.FIFOTYPE: stat.S_IFIFO}


class Refused(Exception):
    """`accept` said no to an entry: nothing more was applied."""


def apply_layer(stream: BinaryIO, root: Path,
                accept: Callable[[tarfile.TarInfo], bool] | None = None) -> None:
    """Apply the layer tar read from `stream` (plain, gzip, bzip2, xz, or zstd
    when available) to the directory `root`. Raises LayerError on a hostile or
    unreadable archive; entries before the bad one stay applied. With
    `accept`, each entry is first shown to it, and Refused is raised at the
    first it does not accept."""
    source = _Seekable.of(stream)
    if source is not None:  # a plain tar we can seek in: read headers, copy data by offset
        with Root(root) as rootfs, _headers(source) as headers:
            _Applier(rootfs, source, accept).run(headers, "r:")
        return
    reader = open_layer(stream)
    try:
        with Root(root) as rootfs:
            _Applier(rootfs, None, accept).run(reader, "r|")
    finally:
        reader.close()


def _reason(exc: OSError, m: tarfile.TarInfo) -> str:
    from dockyard import rootless

    if exc.errno == errno.EINVAL and rootless.active():   # chown to an id the namespace lacks
        return (f"owner {m.uid}:{m.gid} does not exist in this user namespace (rootless: give "
                "the user subordinate ids in /etc/subuid and /etc/subgid)")
    return exc.strerror or str(exc)


@contextlib.contextmanager
def _headers(source: _Seekable) -> Iterator[BinaryIO]:
    """What tarfile reads the headers from: a file mapped into memory (no
    syscall per seek and read), else the stream itself."""
    if source.fd is not None and os.fstat(source.fd).st_size:
        import mmap

        with mmap.mmap(source.fd, 0, access=mmap.ACCESS_READ) as mapped:
            yield mapped  # type: ignore[misc]
    else:
        yield source.stream


class _Seekable:
    """File data read by offset from an uncompressed, seekable tar: copied in
    the kernel (copy_file_range) from a real file, else through one buffer."""

    def __init__(self, stream: BinaryIO, fd: int | None):
        self.stream = stream
        self.fd = fd
        self.buf = memoryview(bytearray(_COPY_BUFSIZE))

    @classmethod
    def of(cls, stream: BinaryIO) -> _Seekable | None:
        # Only streams whose offsets are the tar's: a decompressing file object
        # (gzip.open) is seekable too, and its fileno() is the compressed file's.
        raw = getattr(stream, "raw", stream) if isinstance(stream, io.BufferedReader) else stream
        if not isinstance(raw, (io.FileIO, io.BytesIO)):
            return None
        try:
            if not stream.seekable():
                return None
            start = stream.tell()
            head = stream.read(_SNIFF)
            stream.seek(start)
        except (AttributeError, OSError, ValueError):
            return None
        if compression_of(head) is not None or start != 0:
            return None
        try:
            fd = stream.fileno()
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                fd = None
        except (AttributeError, OSError, ValueError):
            fd = None
        return cls(stream, fd)

    def copy(self, offset: int, size: int, out: int) -> None:
        if self.fd is not None:
            try:
                self._kernel_copy(offset, size, out)
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                self.fd = None  # this kernel or filesystem pair cannot: read and write
                os.ftruncate(out, 0)
                os.lseek(out, 0, os.SEEK_SET)
        self._buffered_copy(offset, size, out)

    def _kernel_copy(self, offset: int, size: int, out: int) -> None:
        done = 0
        while done < size:
            n = os.copy_file_range(self.fd, out, size - done, offset + done)
            if n == 0:
                raise EOFError("unexpected end of data")
            done += n

    def _buffered_copy(self, offset: int, size: int, out: int) -> None:
        self.stream.seek(offset)
        left = size
        while left:
            view = self.buf[:min(left, len(self.buf))]
            n = self.stream.readinto(view)  # type: ignore[attr-defined]
            if not n:
                raise EOFError("unexpected end of data")
            done = 0
            while done < n:
                done += os.write(out, view[done:n])
            left -= n


class _Applier:
    def __init__(self, root: Root, source: _Seekable | None = None,
                 accept: Callable[[tarfile.TarInfo], bool] | None = None):
        self.root = root
        self.source = source
        self.accept = accept
        self.chown = os.geteuid() == 0  # without root, owners cannot be set
        self.umask = _umask()
        self.written: set[tuple[str, ...]] = set()  # resolved paths this layer wrote
        self.dir_times: list[tuple[tuple[str, ...], int, int, int]] = []  # path, dev, ino, ns

    def run(self, reader: BinaryIO, mode: str) -> None:
        try:
            if self.source is not None:
                if not reader.read(1):
                    return  # no bytes at all: an empty layer, as Go's tar reader sees it
                reader.seek(0)
            elif not reader.peek(1):  # type: ignore[attr-defined]
                return
            with tarfile.open(fileobj=reader, mode=mode) as tar:
                for member in tar:
                    if self.accept is not None and not self.accept(member):
                        raise Refused(member.name)
                    self.apply(tar, member)
        except _UNREADABLE as exc:
            raise LayerError(f"unreadable layer tar: {exc}") from None
        except OSError as exc:
            if exc.errno is None:  # gzip.BadGzipFile and friends
                raise LayerError(f"unreadable layer tar: {exc}") from None
            raise LayerError(f"applying layer: {exc.strerror or exc}") from None
        self.set_dir_times()

    def apply(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        self.root.collect()
        parts, climbed = clean(m.name)
        absolute = m.name.startswith("/")
        names_root = not parts and (m.isdir() or m.issym())
        if climbed and not absolute and not names_root:
            raise LayerError(f"entry {m.name!r} climbs out of the root")
        if not parts:
            if names_root:
                return  # the root itself ('.', '..', ''): containerd ignores these
            raise LayerError(f"entry {m.name!r} would replace the root directory")
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(parts)
            return
        if not (m.islnk() or m.isdir() or m.isreg() or m.issym() or m.type in _DEVICE_TYPES):
            raise LayerError(f"entry {m.name!r} has unsupported tar type {m.type!r}")
        found = self.root.directory(parts[:-1], create=True)
        assert found is not None
        pfd, rparent = found
        path = rparent + (base,)
        try:
            if m.islnk():
                self.hardlink(m, pfd, base)
            elif m.isdir():
                self.directory(m, pfd, base, path, parts)
            else:
                # Create first; clear the way only when the name is taken (rare).
                make = self.regular if m.isreg() else self.symlink if m.issym() else self.device
                try:
                    make(tar, m, pfd, base)
                except FileExistsError:
                    self.replace_existing(m, pfd, base)
                    make(tar, m, pfd, base)
        except OSError as exc:
            raise LayerError(f"cannot create {'/'.join(path)}: {_reason(exc, m)}") from None
        self.written.add(path)

    # -- whiteouts ---------------------------------------------------------

    def whiteout(self, parts: list[str]) -> None:
        base = parts[-1]
        if base == WHITEOUT_OPAQUE:
            self.opaque(parts[:-1])
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # other AUFS metadata (.wh..wh.plnk, ...): nothing to apply
        target = base[len(WHITEOUT_PREFIX):]
        if target in ("", ".", ".."):
            raise LayerError(f"invalid whiteout entry {'/'.join(parts)!r}")
        found = self.root.directory(parts[:-1], create=False)
        if found is None:
            return  # its parent does not exist: nothing to delete
        pfd, _ = found
        try:
            st = os.stat(target, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise LayerError(f"whiteout {'/'.join(parts)}: {exc.strerror}") from None
        self.remove(pfd, target, st)

    def opaque(self, dir_parts: list[str]) -> None:
        found = self.root.directory(dir_parts, create=False)
        if found is None:
            return
        dfd, resolved = found
        try:
            self.empty_dir(dfd, resolved)
        except OSError as exc:
            raise LayerError(f"opaque directory {'/'.join(resolved)}: {exc.strerror}") from None
        self.root.invalidate()

    def empty_dir(self, dfd: int, resolved: tuple[str, ...]) -> None:
        """Remove what is in the directory, except what this layer wrote there."""
        fd = os.open(".", _NOFOLLOW_DIR, dir_fd=dfd)
        try:
            for name in os.listdir(fd):
                child = resolved + (name,)
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if child in self.written or child in self.root.made_dirs:
                    if stat.S_ISDIR(st.st_mode):
                        sub = os.open(name, _NOFOLLOW_DIR, dir_fd=fd)
                        try:
                            self.empty_dir(sub, child)
                        finally:
                            os.close(sub)
                    continue
                self.remove(fd, name, st)
        finally:
            os.close(fd)

    def remove(self, pfd: int, name: str, st: os.stat_result) -> None:
        try:
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(name, dir_fd=pfd)  # fd-based: does not follow symlinks
            else:
                os.unlink(name, dir_fd=pfd)
        except OSError as exc:
            raise LayerError(f"cannot remove {name}: {exc.strerror}") from None
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            self.root.invalidate()

    # -- entries -----------------------------------------------------------

    def replace_existing(self, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        """Clear the way for a new entry; a directory over a directory merges."""
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if m.isdir() and stat.S_ISDIR(st.st_mode):
            return
        self.remove(pfd, base, st)

    def hardlink(self, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        # The target is resolved as if the root were '/': '..' stops at the root.
        lparts, _ = clean(m.linkname)
        if not lparts:
            raise LayerError(f"hardlink {m.name!r} -> {m.linkname!r} points at the root")
        found = self.root.directory(lparts[:-1], create=False)
        if found is None:
            raise LayerError(f"hardlink {m.name!r}: target {m.linkname!r} not found in the root")
        sfd, _ = found
        try:
            src = os.stat(lparts[-1], dir_fd=sfd, follow_symlinks=False)
        except OSError:
            raise LayerError(f"hardlink {m.name!r}: target {m.linkname!r} not found in the root") from None
        if stat.S_ISDIR(src.st_mode):
            raise LayerError(f"hardlink {m.name!r}: target {m.linkname!r} is a directory")
        try:
            dst = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            dst = None
        if dst is not None:
            if (dst.st_dev, dst.st_ino) == (src.st_dev, src.st_ino):
                return  # already this very file
            self.remove(pfd, base, dst)
            # Removing a directory or symlink dropped the cached fds: resolve again.
            found = self.root.directory(lparts[:-1], create=False)
            if found is None:
                raise LayerError(f"hardlink {m.name!r}: target {m.linkname!r} not found in the root")
            sfd = found[0]
        # linkat without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
        os.link(lparts[-1], base, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)

    def directory(self, m: tarfile.TarInfo, pfd: int, base: str, path: tuple[str, ...],
                  parts: list[str]) -> None:
        try:
            os.mkdir(base, 0o700, dir_fd=pfd)
        except FileExistsError:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                self.remove(pfd, base, st)
                os.mkdir(base, 0o700, dir_fd=pfd)
            # else: merging into an existing directory
        fd = os.open(base, _NOFOLLOW_DIR, dir_fd=pfd)
        try:
            self.owner_mode(m, fd=fd)
            self.xattrs(m, fd=fd)
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        # The entries inside it come next: keep the fd as the resolution of its name.
        self.root.remember(parts, fd, path)
        # Set last: entries written into it later would change its mtime.
        self.dir_times.append((path, st.st_dev, st.st_ino, _mtime_ns(m)))

    def regular(self, tar: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        mode = m.mode & 0o7777
        # Created with its final mode when the umask keeps it and there is no
        # setuid/setgid/sticky bit (those go after chown, which clears them).
        direct = not (mode & (self.umask | 0o7000))
        fd = os.open(base, flags, mode if direct else 0o600, dir_fd=pfd)
        try:
            if m.size:
                if self.source is not None and not m.issparse():
                    self.source.copy(m.offset_data, m.size, fd)
                else:
                    self.stream_copy(tar, m, fd)
            if self.chown:
                os.fchown(fd, m.uid, m.gid)
            if not direct:
                os.fchmod(fd, mode)
            if m.pax_headers:
                self.xattrs(m, fd=fd)
            ns = _mtime_ns(m)
            os.utime(fd, ns=(_atime_ns(m, ns), ns))
        finally:
            os.close(fd)

    def stream_copy(self, tar: tarfile.TarFile, m: tarfile.TarInfo, fd: int) -> None:
        src = tar.extractfile(m)
        assert src is not None
        buf = self.source.buf if self.source is not None else memoryview(bytearray(_COPY_BUFSIZE))
        view = buf[:min(len(buf), m.size)]
        while True:
            n = src.readinto(view)  # type: ignore[attr-defined]
            if not n:
                break
            done = 0
            while done < n:
                done += os.write(fd, view[done:n])

    def symlink(self, tar: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        os.symlink(m.linkname, base, dir_fd=pfd)
        if self.chown:
            os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        self.xattrs(m, pfd=pfd, base=base)
        ns = _mtime_ns(m)
        os.utime(base, ns=(_atime_ns(m, ns), ns), dir_fd=pfd, follow_symlinks=False)

    def device(self, tar: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        kind = _DEVICE_TYPES[m.type]
        dev = os.makedev(m.devmajor, m.devminor) if kind != stat.S_IFIFO else 0
        os.mknod(base, kind | 0o600, dev, dir_fd=pfd)
        self.owner_mode(m, pfd=pfd, base=base)
        self.xattrs(m, pfd=pfd, base=base)
        ns = _mtime_ns(m)
        os.utime(base, ns=(_atime_ns(m, ns), ns), dir_fd=pfd, follow_symlinks=False)

    # -- metadata ----------------------------------------------------------

    def owner_mode(self, m: tarfile.TarInfo, *, fd: int | None = None,
                   pfd: int | None = None, base: str | None = None) -> None:
        # chown first: it clears setuid/setgid bits that chmod then restores.
        mode = m.mode & 0o7777
        if fd is not None:
            if self.chown:
                os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, mode)
        else:
            if self.chown:
                os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)  # type: ignore[arg-type]
            os.chmod(base, mode, dir_fd=pfd, follow_symlinks=False)  # type: ignore[arg-type]

    def xattrs(self, m: tarfile.TarInfo, *, fd: int | None = None,
               pfd: int | None = None, base: str | None = None) -> None:
        for key, value in m.pax_headers.items():
            if not key.startswith(XATTR_PREFIX):
                continue
            name = key[len(XATTR_PREFIX):]
            if name.startswith(("trusted.overlay.", "user.overlay.")):
                continue  # overlayfs metadata must never come from an image
            data = value.encode("utf-8", "surrogateescape")
            try:
                if fd is not None:
                    os.setxattr(fd, name, data)
                else:
                    # The parent is pinned by its fd; the last component is not followed.
                    os.setxattr(f"/proc/self/fd/{pfd}/{base}", name, data, follow_symlinks=False)
            except OSError as exc:
                if exc.errno == errno.EPERM and name.startswith("user.") and fd is None:
                    continue  # the kernel allows user.* only on files and directories
                raise LayerError(f"cannot set xattr {name} on {m.name}: {exc.strerror}") from None

    def set_dir_times(self) -> None:
        for path, dev, ino, ns in reversed(self.dir_times):
            self.root.collect()
            found = self.root.directory(path[:-1], create=False)
            if found is None:
                continue
            try:
                st = os.stat(path[-1], dir_fd=found[0], follow_symlinks=False)
            except OSError:
                continue  # removed by a later entry
            # Still the directory this layer made (not a later replacement); nothing
            # else writes into the tree meanwhile, and the call follows no symlink.
            if (st.st_dev, st.st_ino) == (dev, ino) and stat.S_ISDIR(st.st_mode):
                os.utime(path[-1], ns=(ns, ns), dir_fd=found[0], follow_symlinks=False)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for a moment,
    under other threads' feet)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o777  # unknown: every mode gets its explicit fchmod


def _mtime_ns(m: tarfile.TarInfo) -> int:
    return round(float(m.mtime) * 1e9) if isinstance(m.mtime, float) else int(m.mtime) * 10**9


def _atime_ns(m: tarfile.TarInfo, default: int) -> int:
    raw = m.pax_headers.get("atime")
    if raw is None:
        return default
    try:
        return round(float(raw) * 1e9)
    except ValueError:
        return default

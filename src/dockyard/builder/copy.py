"""COPY and ADD: put matched sources into a root filesystem.

The destination is resolved inside the root: a symlink in the image that
points to `/usr/lib` leads to `<root>/usr/lib`, never to the host's. Files are
created with O_NOFOLLOW so a planted symlink cannot redirect a write.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import lzma
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..errors import BuildError
from .context import Match, SourceTree, basename, relative_to, resolve_in_root
from .workers import Batcher



class RootFS:
    """Path operations confined to a root directory."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def resolve(self, path: str, *, follow_last: bool = True) -> Path:
        """The host path for an absolute in-root path, following symlinks inside root."""
        return resolve_in_root(self.root, path, follow_last=follow_last)

    def mkdirs(self, path: str, *, uid: int = 0, gid: int = 0, mode: int = 0o755) -> Path:
        """mkdir -p inside the root; new directories get uid/gid and mode.

        Symlinks are followed as if the root were `/` (`..` stops at the
        root, absolute targets restart there), and whatever is missing on
        the way is created, also below a symlink's target: `WORKDIR /w`
        with `/w -> /a/b/c` makes `/a/b/c`, as BuildKit does."""
        root = self.root
        current = root
        parts = [p for p in path.split("/") if p]
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if current != root:
                    current = current.parent
                continue
            candidate = current / part
            shown = "/" + candidate.relative_to(root).as_posix()
            try:
                try:
                    st = os.lstat(candidate)
                except FileNotFoundError:
                    os.mkdir(candidate, mode)
                    os.chmod(candidate, mode)
                    os.chown(candidate, uid, gid, follow_symlinks=False)
                    current = candidate
                    continue
                if stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > 40:
                        raise BuildError(f"cannot create directory {path}: too many levels of "
                                         "symbolic links")
                    target = os.readlink(candidate)
                    if target.startswith("/"):
                        current = root
                    parts = [p for p in target.split("/") if p] + parts
                    continue
            except OSError as exc:
                raise BuildError(f"cannot create directory {shown}: "
                                 f"{exc.strerror or exc}") from None
            if not stat.S_ISDIR(st.st_mode):
                raise BuildError(f"cannot create directory {shown}: a file is in the way")
            current = candidate
        return current


@dataclass
class CopyOptions:
    chown: tuple[int, int] | None = None
    chmod: int | None = None
    keep_owner: bool = False      # --from copies keep their owners
    unpack: bool = False          # ADD: local archives are extracted
    exclude: object = None        # COPY --exclude: a PatternMatcher


def dest_is_dir(dest: str) -> bool:
    return dest.endswith(("/", "/.", "/..")) or dest in (".", "..")


def absolute_dest(dest: str, workdir: str) -> str:
    if dest.startswith("/"):
        return dest
    joined = str(PurePosixPath(workdir or "/") / dest)
    if dest_is_dir(dest) and not joined.endswith("/"):
        joined += "/"
    return joined


def parse_chmod(value: str | None) -> int | None:
    if not value:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        raise BuildError(f"invalid chmod parameter {value!r}: must be an octal mode") from None
    if mode > 0o7777:
        raise BuildError(f"invalid chmod parameter {value!r}")
    return mode


def copy_from_image(snapshots, diff_ids: list[str], where: str, sources: list[str], parents: bool,
                    root: Path, dest: str, opts: CopyOptions, multiple: bool) -> None:
    """COPY --from: match the sources in another stage's (or image's) rootfs,
    mounted over a throwaway upper directory for the copy."""
    from ..store.store import remove_tree
    from .context import find_sources

    snap = snapshots.new_upper()
    try:
        with snapshots.mounted(snapshots.lowers(diff_ids), snap) as src_root:
            tree = SourceTree(src_root, is_context=False)
            for src in sources:
                pivot, found = find_sources(tree, src, parents, opts.exclude, where)
                copy_sources(tree, found, root, dest, opts, force_dir=multiple or len(found) > 1, pivot=pivot)
    finally:
        remove_tree(snap)


def source_digests(snapshots, diff_ids: list[str], where: str, sources: list[str], parents: bool,
                   exclude) -> dict[str, str]:
    """Content digests of what COPY --from would copy: a second cache key that
    still matches when the source stage was rebuilt into the same files."""
    from ..store.store import remove_tree
    from .context import find_sources

    out: dict[str, str] = {}
    snap = snapshots.new_upper()
    try:
        with snapshots.mounted(snapshots.lowers(diff_ids), snap) as src_root:
            tree = SourceTree(src_root, is_context=False)
            for src in sources:
                pivot, found = find_sources(tree, src, parents, exclude, where)
                for m in found:
                    out[f"{src}|{m.rel or '.'}"] = tree.digest(m)
    finally:
        remove_tree(snap)
    return out


def copy_sources(tree: SourceTree, matches: list[Match], root: Path, dest: str,
                 opts: CopyOptions, *, force_dir: bool = False, pivot: str | None = None) -> None:
    """Copy matches to `dest` in `root`. With a `pivot` (COPY --parents) each
    match keeps its path below the pivot, parent directories included."""
    fs = RootFS(root)
    parent_uid, parent_gid = opts.chown if opts.chown else (0, 0)
    if not matches:   # all excluded: the destination directory is still made
        if pivot is not None or force_dir or dest_is_dir(dest):
            fs.mkdirs(dest, uid=parent_uid, gid=parent_gid)
        return
    if pivot is not None:
        _copy_with_parents(tree, matches, fs, dest, opts, pivot)
        return
    to_dir = force_dir or dest_is_dir(dest)
    if not to_dir:
        existing = fs.resolve(dest)
        to_dir = existing.is_dir() and not existing.is_symlink()
    copier = _Copier(tree, opts, fs)
    try:
        for match in matches:
            _copy_match(copier, fs, match, dest, opts, to_dir, parent_uid, parent_gid)
    finally:
        copier.close()


def _copy_match(copier: _Copier, fs: RootFS, match: Match, dest: str, opts: CopyOptions, to_dir: bool,
                parent_uid: int, parent_gid: int) -> None:
    st = os.stat(match.path) if os.path.lexists(match.path) else None
    if st is None:
        raise BuildError(f"{match.rel or '/'}: not found")
    if stat.S_ISDIR(st.st_mode):
        # the destination is made like `mkdir -p` (or left as it is); only
        # what is inside the source directory is copied with its metadata
        target = fs.mkdirs(dest, uid=parent_uid, gid=parent_gid)
        copier.copy_dir_contents(match, target, dest, match.rel, root_meta=False)
        return
    if opts.unpack and stat.S_ISREG(st.st_mode) and _is_archive(match.path):
        target = fs.mkdirs(dest, uid=parent_uid, gid=parent_gid)
        _unpack(match.path, target)
        return
    if to_dir:
        parent = fs.mkdirs(dest, uid=parent_uid, gid=parent_gid)
        target = parent / basename(match.rel or match.path.name)
    else:
        parent_path = str(PurePosixPath(dest).parent)
        parent = fs.mkdirs(parent_path, uid=parent_uid, gid=parent_gid)
        target = parent / PurePosixPath(dest).name
    copier.copy_file(match.path, st, target)


def _copy_with_parents(tree: SourceTree, matches: list[Match], fs: RootFS, dest: str,
                       opts: CopyOptions, pivot: str) -> None:
    uid, gid = opts.chown if opts.chown else (0, 0)
    fs.mkdirs(dest, uid=uid, gid=gid)
    copier = _Copier(tree, opts, fs)
    created: list[tuple[Path, os.stat_result]] = []
    try:
        for match in matches:
            sub = relative_to(match.rel, pivot)
            parts = sub.split("/") if sub else []
            current, src_rel = dest.rstrip("/") or "/", pivot
            for part in parts[:-1]:
                current, src_rel = posixpath.join(current, part), posixpath.join(src_rel, part)
                host = fs.resolve(current)
                if not os.path.lexists(host):
                    os.mkdir(host, 0o700)
                    created.append((host, os.stat(tree.resolve(src_rel) or tree.root)))
                elif not host.is_dir():
                    raise BuildError(f"cannot create directory {current}: a file is in the way")
            inroot = posixpath.join(current, parts[-1]) if parts else dest
            st = os.stat(match.path)
            if stat.S_ISDIR(st.st_mode):
                target = copier._dir_at(fs.resolve(inroot, follow_last=False), inroot) if parts else fs.resolve(dest)
                copier.copy_dir_contents(match, target, inroot, pivot)
            elif parts:
                copier.copy_file(match.path, st, fs.resolve(inroot, follow_last=False))
            else:
                copier.copy_file(match.path, st, fs.resolve(dest) / basename(match.rel))
        for host, st in reversed(created):
            copier.finish(host, st)
    finally:
        copier.close()


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NO_SENDFILE: set[tuple[int, int]] = set()   # (source dev, dest dev) where sendfile failed


class _DirCursor:
    """The directory files are being placed in, kept open: names are created
    relative to its descriptor instead of walking the whole path each time."""

    def __init__(self):
        self._dir: tuple[str, int] | None = None     # (host path, fd)

    def fd(self, path: str) -> int:
        if self._dir is not None:
            if self._dir[0] == path:
                return self._dir[1]
            self.close()
        fd = os.open(path, _DIR)
        self._dir = (path, fd)
        return fd

    def close(self) -> None:
        if self._dir is not None:
            os.close(self._dir[1])
            self._dir = None


class _Copier:
    """Places files: each is created relative to an open descriptor of its
    (already resolved) parent directory, and owner, mode and times are set
    on the new file's descriptor. A directory's plain files are placed by a
    few threads while the walk goes on (see workers.py)."""

    def __init__(self, tree: SourceTree, opts: CopyOptions, fs: RootFS):
        self.tree = tree
        self.opts = opts
        self.fs = fs
        self.links: dict[tuple[int, int], str] = {}
        self.cursor = _DirCursor()
        self._dest_dev = os.stat(fs.root).st_dev
        self._aliased = False   # a source directory was merged through an image symlink

    def close(self) -> None:
        self.cursor.close()

    def _owner(self, st: os.stat_result) -> tuple[int, int]:
        if self.opts.chown is not None:
            return self.opts.chown
        if self.opts.keep_owner:
            return st.st_uid, st.st_gid
        return 0, 0

    def _mode(self, st: os.stat_result) -> int:
        if self.opts.chmod is not None:
            return self.opts.chmod
        return stat.S_IMODE(st.st_mode)

    def finish(self, target, st: os.stat_result, *, is_link: bool = False) -> None:
        uid, gid = self._owner(st)
        os.chown(target, uid, gid, follow_symlinks=False)
        if not is_link:
            os.chmod(target, self._mode(st))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def _clear_at(self, dfd: int, name: str, want_dir: bool) -> None:
        try:
            st = os.lstat(name, dir_fd=dfd)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if not want_dir:
                raise BuildError(f"cannot replace directory {name} with a file")
            return
        os.unlink(name, dir_fd=dfd)

    def copy_file(self, src, st: os.stat_result, target) -> None:
        parent, name = os.path.split(os.fspath(target))
        self._place(self.cursor, parent, name, os.fspath(src), st)

    def _place_all(self, batch: list) -> None:
        cursor = _DirCursor()
        try:
            for parent, name, src, st in batch:
                self._place(cursor, parent, name, src, st)
        finally:
            cursor.close()

    def _place(self, cursor: _DirCursor, parent: str, name: str, src: str, st: os.stat_result) -> None:
        """Copy `src` (lstat `st`) to `name` in the host directory `parent`;
        whatever is in the way (not a directory) is replaced."""
        mode = st.st_mode
        dfd = cursor.fd(parent)
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                self._clear_at(dfd, name, False)
                os.link(self.links[key], name, dst_dir_fd=dfd, follow_symlinks=False)
                return
            try:
                out = os.open(name, _CREATE, 0o600, dir_fd=dfd)
            except FileExistsError:
                self._clear_at(dfd, name, False)
                out = os.open(name, _CREATE, 0o600, dir_fd=dfd)
            try:
                fd_in = os.open(src, _READ)
                try:
                    _send(fd_in, out, st.st_size, (st.st_dev, self._dest_dev))
                finally:
                    os.close(fd_in)
                uid, gid = self._owner(st)
                os.fchown(out, uid, gid)   # before the mode: chown clears set-id bits
                os.fchmod(out, self._mode(st))
                os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(out)
            if st.st_nlink > 1:
                self.links[key] = f"{parent}/{name}"
        elif stat.S_ISLNK(mode):
            link = os.readlink(src)
            try:
                os.symlink(link, name, dir_fd=dfd)
            except FileExistsError:
                self._clear_at(dfd, name, False)
                os.symlink(link, name, dir_fd=dfd)
            uid, gid = self._owner(st)
            os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)
        elif stat.S_ISDIR(mode):
            self._clear_at(dfd, name, True)
            if not os.path.exists(f"{parent}/{name}"):
                os.mkdir(name, 0o700, dir_fd=dfd)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            self._clear_at(dfd, name, False)
            os.mknod(name, mode, st.st_rdev, dir_fd=dfd)
            self.finish(f"{parent}/{name}", st)

    def copy_dir_contents(self, match: Match, target, inroot: str, exclude_base: str, *,
                          root_meta: bool = True) -> None:
        """Copy what is inside a source directory to `target` (the host path of
        `inroot`, already resolved). Each entry is placed in a directory that
        was resolved inside the root, so a symlink planted in the image is
        followed within the rootfs, never onto the host."""
        target = os.fspath(target)
        dirs: list[tuple[str, os.stat_result]] = []
        placed = {match.rel: (target, inroot)}
        walker = self.tree.walk(match, self.opts.exclude, exclude_base)
        _, top, top_st = next(walker)  # the source directory itself
        if root_meta:
            dirs.append((target, os.stat(top) if stat.S_ISLNK(top_st.st_mode) else top_st))
        is_dir, is_reg = stat.S_ISDIR, stat.S_ISREG
        # Plain files go to threads; the walk, directories, links and the
        # rest stay here. Each host path is placed once, so the threads never
        # meet, unless an image symlink merges two source directories into
        # one: from then on everything is placed here, in order.
        batcher = Batcher(self._place_all)
        try:
            for rel, path, st in walker:
                if self._aliased:
                    batcher.finish()
                parent_rel, _, name = rel.rpartition("/")
                parent, parent_in = placed.get(parent_rel) or self._parents(parent_rel, os.path.dirname(path),
                                                                            placed, dirs)
                if is_dir(st.st_mode):
                    dest_in = posixpath.join(parent_in, name)
                    dest = self._dir_at(f"{parent}/{name}", dest_in)
                    placed[rel] = (dest, dest_in)
                    dirs.append((dest, st))
                elif is_reg(st.st_mode) and st.st_nlink == 1 and not self._aliased:
                    batcher.add((parent, name, path, st))
                else:
                    self._place(self.cursor, parent, name, path, st)
            batcher.finish()
        except BaseException:
            batcher.abandon()
            raise
        finally:
            self.close()
        # Directory metadata last, deepest first, so file writes don't bump mtimes.
        for dest, st in reversed(dirs):
            self.finish(dest, st)

    def _dir_at(self, dest, dest_in: str) -> str:
        """A directory at `dest`: an image symlink to a directory is followed
        inside the root; anything else that is not a directory is replaced."""
        dest = os.fspath(dest)
        try:
            os.mkdir(dest, 0o700)     # the common case: nothing there yet
            return dest
        except FileExistsError:
            pass
        if os.path.islink(dest):
            resolved = self.fs.resolve(dest_in)
            if os.path.isdir(resolved) and not os.path.islink(resolved):
                self._aliased = True
                return os.fspath(resolved)
            os.unlink(dest)
        elif not os.path.isdir(dest):
            os.unlink(dest)
        if not os.path.lexists(dest):
            os.mkdir(dest, 0o700)
        return dest

    def _parents(self, rel: str, src: str, placed: dict, dirs: list) -> tuple[str, str]:
        # directories left out (.dockerignore) while an exception re-includes
        # something below them: made with the source directories' metadata
        if rel in placed:
            return placed[rel]
        up_rel, _, name = rel.rpartition("/")
        up, up_in = self._parents(up_rel, os.path.dirname(src), placed, dirs)
        dest_in = posixpath.join(up_in, name)
        dest = self._dir_at(f"{up}/{name}", dest_in)
        dirs.append((dest, os.stat(src)))
        placed[rel] = (dest, dest_in)
        return placed[rel]


def _send(fd_in: int, fd_out: int, size: int, pair: tuple[int, int | None]) -> None:
    """Copy `size` bytes in the kernel (sendfile works across filesystems,
    copy_file_range does not into overlayfs); plain reads and writes where
    this pair of filesystems refuses it."""
    done = 0
    if pair not in _NO_SENDFILE:
        try:
            while done < size:
                n = os.sendfile(fd_out, fd_in, done, size - done)
                if n == 0:
                    return
                done += n
            return
        except OSError as exc:
            if done or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            _NO_SENDFILE.add(pair)
    while done < size:
        chunk = os.read(fd_in, min(size - done, 1 << 20))
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd_out, view):]
        done += len(chunk)


_MAGIC = [(b"\x1f\x8b", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open)]


def _is_archive(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512)
    for magic, opener in _MAGIC:
        if head.startswith(magic):
            try:
                with opener(path, "rb") as inner:
                    head = inner.read(512)
            except (OSError, EOFError, lzma.LZMAError):
                return False
            break
    return len(head) >= 262 and head[257:262] == b"ustar"


def _open_archive(path: Path) -> BinaryIO:
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, opener in _MAGIC:
        if head.startswith(magic):
            return opener(path, "rb")
    return open(path, "rb")


def _unpack(path: Path, target: Path) -> None:
    from ..layer import apply_layer

    with _open_archive(path) as stream:
        apply_layer(stream, target)

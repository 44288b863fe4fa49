"""The build context: which files a COPY/ADD source names, and their hashes.

A source's cache identity is its content plus tar-style metadata (type, mode,
uid, gid, size, link target), never its mtime, so `touch` alone keeps the
cache. Hashes are remembered by stat data so an unchanged file is read once.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import BuildError

WILDCARDS = set("*?[")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def has_wildcard(pattern: str) -> bool:
    return any(c in WILDCARDS for c in pattern)


def _component_match(pattern: str, name: str) -> bool:
    # Go's filepath.Match writes negated classes as [^...]; fnmatch wants [!...].
    return fnmatch.fnmatchcase(name, pattern.replace("[^", "[!"))


def clean_source(src: str) -> str:
    """A source path relative to the context root, refusing escapes."""
    parts: list[str] = []
    for part in src.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise BuildError(f"forbidden path outside the build context: {src}")
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


@dataclass(frozen=True)
class Match:
    rel: str          # path relative to the source root ('' is the root itself)
    path: Path        # where it is on this machine


def resolve_in_root(root: Path, path: str, *, follow_last: bool = True,
                    must_exist: bool = False) -> Path | None:
    """The host path of `path` inside `root`, following symlinks as if `root`
    were `/`: `..` stops at the root and absolute targets restart there, so
    the result never leaves it. A missing component gives None with
    `must_exist`, else the path it would have."""
    current = Path(root)
    parts = [p for p in path.split("/") if p]
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if current != Path(root):
                current = current.parent
            continue
        candidate = current / part
        if not parts and not follow_last:
            return candidate
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            if must_exist:
                return None
            current = candidate
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 40:
                raise BuildError(f"too many levels of symbolic links: {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = Path(root)
            parts = [p for p in target.split("/") if p] + parts
            continue
        current = candidate
    return current


class SourceTree:
    """A directory that COPY reads from: the context, or another stage's rootfs."""

    def __init__(self, root: Path, ignore=None, is_context: bool = True):
        self.root = Path(root)
        self.ignore = ignore
        self.is_context = is_context
        self._db = None                       # a store's db: content hashes kept across builds
        self._known: dict[str, tuple[str, str]] = {}   # path: (stat stamp, digest)
        self._new: dict[str, tuple[str, str]] = {}

    def remember_hashes(self, db) -> None:
        """Keep file hashes in `db` by stat data, so a later build reads only
        files that changed (BuildKit's trick; `touch` alone costs a hash)."""
        self._db = db
        prefix = str(self.root).rstrip("/") + "/"
        rows = db.execute("SELECT path, stat, digest FROM filehash WHERE path >= ? AND path < ?",
                          (prefix, prefix[:-1] + "0")).fetchall()
        self._known = {path: (st, digest) for path, st, digest in rows}

    def flush_hashes(self) -> None:
        if self._db is None or not self._new:
            return
        self._db.execute("BEGIN IMMEDIATE")   # one transaction, not one per row
        try:
            self._db.executemany("INSERT OR REPLACE INTO filehash(path, stat, digest) VALUES (?,?,?)",
                                 [(p, st, d) for p, (st, d) in self._new.items()])
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._new = {}

    def ignored(self, rel: str) -> bool:
        return bool(self.ignore is not None and rel and self.ignore.matches(rel))

    def resolve(self, rel: str) -> Path | None:
        """Follow symlinks of `rel` without leaving the root; None if missing."""
        return resolve_in_root(self.root, rel, must_exist=True)

    def match(self, pattern: str, exclude=None, base: str | None = None) -> list[Match]:
        """Paths named by a source pattern; wildcards are matched per component.

        `exclude` (a PatternMatcher of COPY --exclude) drops a match whose path
        relative to `base` it matches; `base` defaults to the directory the
        wildcards are resolved in, or to the path itself when there are none
        (so a plainly named source is never excluded)."""
        rel = clean_source(pattern)
        xbase = wildcard_base(rel) if base is None else base
        if not has_wildcard(rel):
            if self.ignored(rel) or excluded(exclude, rel, xbase):
                return []
            path = self.resolve(rel)
            return [Match(rel, path)] if path is not None and os.path.lexists(path) else []
        found: list[Match] = []
        parts = rel.split("/")

        def walk(dir_rel: str, idx: int) -> None:
            base = self.resolve(dir_rel) if dir_rel else self.root
            if base is None or not base.is_dir():
                return
            pat = parts[idx]
            try:
                names = sorted(os.listdir(base))
            except OSError:
                return
            for name in names:
                if not _component_match(pat, name):
                    continue
                child = f"{dir_rel}/{name}" if dir_rel else name
                if self.ignored(child):
                    continue
                if idx == len(parts) - 1:
                    path = self.resolve(child)
                    if path is not None and not excluded(exclude, child, xbase):
                        found.append(Match(child, path))
                else:
                    walk(child, idx + 1)

        walk("", 0)
        return found

    def walk(self, match: Match, exclude=None, base: str | None = None):
        """Yield (rel, path, lstat) for a match and, for a directory, everything in it.

        `path` is a str below the match's own path. Entries `exclude` matches
        (by their path relative to `base`, the match itself by default) are
        left out, with their subtrees unless an `!` pattern could bring
        something below them back."""
        top = os.fspath(match.path)
        st = os.lstat(top)
        yield match.rel, top, st
        if not stat.S_ISDIR(st.st_mode):
            return
        base = match.rel if base is None else base
        ignoring = self.ignore is not None and bool(getattr(self.ignore, "patterns", True))
        is_dir = stat.S_ISDIR
        stack = [(match.rel, top)]
        while stack:
            rel, path = stack.pop()
            try:
                # listed through a descriptor, so each entry's lstat is
                # relative to it rather than a walk of the whole path
                fd = os.open(path, _DIR_FLAGS)
            except OSError as e:
                raise BuildError(f"cannot read {path}: {e.strerror}") from None
            try:
                with os.scandir(fd) as it:
                    entries = sorted(it, key=_name)
                subdirs = []
                prefix = rel + "/" if rel else ""
                for entry in entries:
                    child_rel = prefix + entry.name
                    child = f"{path}/{entry.name}"
                    if exclude is not None and _drop(exclude, relative_to(child_rel, base), entry):
                        continue
                    if ignoring and self.ignore.matches(child_rel):
                        if entry.is_dir(follow_symlinks=False) and self._may_reinclude(child_rel):
                            subdirs.append((child_rel, child))
                        continue
                    est = entry.stat(follow_symlinks=False)
                    yield child_rel, child, est
                    if is_dir(est.st_mode):
                        subdirs.append((child_rel, child))
            finally:
                os.close(fd)
            stack.extend(reversed(subdirs))

    def _may_reinclude(self, rel: str) -> bool:
        can_skip = getattr(self.ignore, "can_skip_dir", None)
        if can_skip is None:
            return bool(getattr(self.ignore, "exclusions", False))
        return not can_skip(rel)

    def file_digest(self, path, st: os.stat_result) -> str:
        name = os.fspath(path)
        return self._file_digests([(name, st)])[0]

    def _file_digests(self, files: list) -> list[str]:
        """Content hashes of regular files given as (path, lstat): remembered
        ones while the stat data still matches, else read (a few files at a
        time, workers.py)."""
        known = self._known
        out: list = []
        unknown: list = []
        for name, st in files:
            stamp = f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
            row = known.get(name)
            if row is not None and row[0] == stamp:
                out.append(row[1])
            else:
                unknown.append((len(out), name, st, stamp))
                out.append(None)
        if unknown:
            self._hash_unknown(unknown, out)
        return out

    def _hash_unknown(self, unknown: list, out: list) -> None:
        from .workers import Batcher

        def work(batch):
            for i, name, st, _ in batch:
                out[i] = hash_file(name, st.st_size)

        batcher = Batcher(work)
        try:
            for item in unknown:
                batcher.add(item)
            batcher.finish()
        except BaseException:
            batcher.abandon()
            raise
        for i, name, _, stamp in unknown:
            self._known[name] = (stamp, out[i])
            if self._db is not None:
                self._new[name] = (stamp, out[i])

    def digest(self, match: Match, exclude=None, base: str | None = None) -> str:
        """Content + metadata digest of a match (the whole subtree for a dir)."""
        entries = list(self.walk(match, exclude, base))
        is_reg, is_lnk, fmt, perm = stat.S_ISREG, stat.S_ISLNK, stat.S_IFMT, stat.S_IMODE
        hashes = iter(self._file_digests([(path, st) for _, path, st in entries if is_reg(st.st_mode)]))
        cut = len(match.rel) + 1 if match.rel else 0
        parts = []
        add = parts.append
        for rel, path, st in entries:
            name = rel[cut:]
            mode = st.st_mode
            owner = "0:0" if self.is_context else f"{st.st_uid}:{st.st_gid}"
            head = f"{name}\0{fmt(mode)}\0{perm(mode):o}\0{owner}\0"
            if is_reg(mode):
                add(f"{head}{st.st_size}\0{next(hashes)}\0\n")
            elif is_lnk(mode):
                add(f"{head}{os.readlink(path)}\0\n")
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                add(f"{head}{os.major(st.st_rdev)},{os.minor(st.st_rdev)}\0\n")
            else:
                add(head + "\n")
        # one buffer hashed in one call; the bytes are what entry-by-entry updates gave
        return "sha256:" + hashlib.sha256("".join(parts).encode()).hexdigest()


def hash_file(path: str, size: int) -> str:
    """sha256 hex of a file's content; `size` (from stat) sizes the first read."""
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        chunk = os.read(fd, min(size, 1 << 20) + 1)
        while chunk:
            h.update(chunk)
            chunk = os.read(fd, 1 << 20)
    finally:
        os.close(fd)
    return h.hexdigest()


def basename(rel: str) -> str:
    return PurePosixPath(rel).name


def find_sources(tree: SourceTree, src: str, parents: bool, exclude, where: str) -> tuple[str | None, list[Match]]:
    """(pivot, matches) of one COPY source. With --parents the pivot is what
    precedes a `/./` in the source ('' without one): matches keep their path
    below it. A missing source is an error unless wildcards (--parents) or
    --exclude patterns account for it."""
    pivot, pattern = None, src
    if parents:
        head, sep, rest = src.partition("/./")
        pivot, pattern = (clean_source(head), f"{head}/{rest}") if sep else ("", src)
    found = tree.match(pattern, exclude, pivot)
    if not found and not (parents and has_wildcard(pattern)) \
            and (exclude is None or not tree.match(pattern, None, pivot)):
        raise BuildError(f'"{src}" not found {where}')
    return pivot, found


def wildcard_base(rel: str) -> str:
    """The directory a pattern's wildcards are resolved in ('' for the root);
    a pattern without wildcards is its own base."""
    parts = rel.split("/") if rel else []
    for i, part in enumerate(parts):
        if has_wildcard(part):
            return "/".join(parts[:i])
    return rel


def relative_to(rel: str, base: str) -> str:
    """`rel` below `base` ('' for base itself); both are context-relative."""
    if not base:
        return rel
    if rel == base:
        return ""
    return rel[len(base) + 1:] if rel.startswith(base + "/") else rel


def excluded(exclude, rel: str, base: str) -> bool:
    """Whether COPY --exclude patterns drop `rel` (never the base itself)."""
    if exclude is None or rel == base:
        return False
    return exclude.matches(relative_to(rel, base))


def _drop(exclude, sub: str, entry: os.DirEntry) -> bool:
    """Like BuildKit's copier: an excluded directory stays when an exception
    pattern names something inside it (its other contents are still filtered)."""
    if not exclude.matches(sub):
        return False
    if entry.is_dir(follow_symlinks=False) and exclude.exclusions:
        prefix = sub + "/"
        return not any(p.exclusion and (p.cleaned + "/").startswith(prefix) for p in exclude.patterns)
    return True


def _name(entry: os.DirEntry) -> str:
    return entry.name

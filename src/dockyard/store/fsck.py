"""Checking a store after a crash, and cleaning up what a killed process left.

`check(store, repair=...)` takes the store's exclusive lock (so no build,
load or run of this store is half-way through anything) and then:

* kills build containers whose dockyard process died (runc state under
  ``tmp/runc/runtime``) and unmounts overlay and tmpfs mounts left under
  ``snapshots/`` and ``tmp/`` (found in /proc/self/mountinfo);
* re-hashes every blob: a blob whose bytes do not match its name is removed
  (left in place, the next write of the same content would be dropped as a
  duplicate and the damage could never heal);
* follows every reference: tag -> image -> manifest -> config and layers
  (present, intact, sizes as the manifest says, one diff id per layer);
* checks every snapshot record (its directory, its chain id, its layer blob)
  and every build-cache entry (the blobs it promises);
* removes leftovers: stray ingest files, snapshot directories no record
  names, scratch under ``tmp/``, dangling tags and cache entries.

Problems (something referenced is missing or corrupt) cannot be repaired
here: the image has to be loaded, pulled or built again. Everything else is
a leftover, removed with ``repair=True`` and only reported otherwise.
Never call this while holding `store.lock()` in the same process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DockyardError
from .store import Store, remove_tree

__all__ = ["FsckReport", "check", "mounts_under"]

_HEX = set("0123456789abcdef")
# What a killed overlay mount leaves inside a snapshot directory.
_MOUNT_LEFTOVERS = ("work", "merged", "work.empty-lower")


@dataclass
class FsckReport:
    """What `check` found. `problems` make the store unhealthy; `repairs` were
    made; `leftovers` would have been repaired with repair=True."""

    problems: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        return ([f"problem: {p}" for p in self.problems]
                + [f"repaired: {r}" for r in self.repairs]
                + [f"leftover: {x}" for x in self.leftovers])

    def summary(self) -> str:
        counts = ", ".join(f"{n} {what}" for what, n in self.checked.items())
        verdict = "consistent" if self.ok else f"{len(self.problems)} problem(s)"
        return f"fsck: {verdict}; {len(self.repairs)} repair(s); checked {counts}"


def check(store: Store, repair: bool = False) -> FsckReport:
    """Verify the whole store; with `repair`, clean up leftovers as well."""
    with store.lock(exclusive=True):
        return _Fsck(store, repair).run()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _unescape(raw: bytes) -> str:
    """A mountinfo path: octal escapes for space, tab, newline and backslash."""
    return os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8) & 0xFF]), raw))


def mounts_under(*roots: Path) -> list[Path]:
    """Mount points strictly below any of `roots` in this mount namespace,
    deepest first (the order to unmount them in)."""
    real = [os.path.realpath(r) for r in roots]
    found: list[str] = []
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                fields = line.split(b" ")
                if len(fields) < 5:
                    continue
                point = _unescape(fields[4])
                if any(point.startswith(r.rstrip("/") + "/") for r in real) and point not in found:
                    found.append(point)
    except OSError:
        return []
    return [Path(p) for p in sorted(found, key=lambda p: (-p.count("/"), p))]


def _empty_tree(path: Path) -> bool:
    """A real directory with nothing but (empty) directories inside."""
    if path.is_symlink() or not path.is_dir():
        return False
    for top, dirs, files in os.walk(path):
        if files or any(os.path.islink(os.path.join(top, d)) for d in dirs):
            return False
    return True


class _Fsck:
    def __init__(self, store: Store, repair: bool):
        self.store = store
        self.repair = repair
        self.report = FsckReport()
        self.present: set[str] = set()    # blobs whose bytes match their digest
        self.corrupt: set[str] = set()
        self.referenced: set[str] = set()

    # -- helpers ---------------------------------------------------------------

    def problem(self, text: str) -> None:
        self.report.problems.append(text)

    def fix(self, text: str, action: Callable[[], object], verb: str = "removed") -> None:
        """Repair (or, without repair, only report) one leftover: `text` names
        it, `verb` says what the repair did to it."""
        if not self.repair:
            self.report.leftovers.append(text)
            return
        try:
            action()
        except (OSError, DockyardError) as exc:
            self.problem(f"could not repair {text}: {exc}")
            return
        self.report.repairs.append(f"{verb} {text}")

    def rel(self, path: Path) -> str:
        try:
            return str(Path(path).relative_to(self.store.root))
        except ValueError:
            return str(path)

    def remove(self, path: Path) -> None:
        """remove_tree, refusing anything with a mount point below it."""
        if mounts_under(path) or os.path.ismount(path):
            raise OSError(f"{self.rel(path)} still has a mount inside it")
        if os.path.isdir(path) and not os.path.islink(path):
            remove_tree(path)
        else:
            os.unlink(path)
        if os.path.lexists(path):
            raise OSError(f"{self.rel(path)} could not be removed")

    # -- the run ------------------------------------------------------------------

    def run(self) -> FsckReport:
        self._database()
        self._containers()
        self._mounts()
        self._ingest()
        self._blobs()
        images = self._images()
        self._tags(images)
        self._cache()
        recorded = self._snapshots()
        self._snapshot_dirs(recorded)
        self._tmp()
        self._drop_corrupt()
        return self.report

    def _database(self) -> None:
        try:
            rows = self.store.db.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            self.problem(f"database db.sqlite: {exc}")
            return
        if [r[0] for r in rows] != ["ok"]:
            self.problem(f"database db.sqlite is damaged: {rows[0][0]}")

    def _containers(self) -> None:
        """Build containers whose runc outlived a killed dockyard process."""
        state_root = self.store.tmp_dir / "runc" / "runtime"
        if not state_root.is_dir():
            return
        from ..runtime.runc import Runtime

        binary = shutil.which("runc") or shutil.which("runc", path="/usr/local/sbin:/usr/sbin:/sbin")
        runtime = Runtime(binary, state_root) if binary else None
        for entry in sorted(state_root.iterdir()):
            if not entry.is_dir() or not (entry / "state.json").exists():
                continue
            if runtime is None:
                self.report.leftovers.append(f"container {entry.name} (runc is not installed)")
                continue
            self.fix(f"orphaned build container {entry.name}",
                     lambda name=entry.name, rt=runtime: rt.delete(name, force=True),
                     "killed and deleted")

    def _mounts(self) -> None:
        from ..runtime.overlay import unmount

        for point in mounts_under(self.store.snapshot_dir, self.store.tmp_dir):
            def umount(point: Path = point) -> None:
                for _ in range(8):  # stacked mounts come off one at a time
                    if point not in mounts_under(point.parent):
                        return
                    unmount(point)
                raise OSError(f"{point} is still mounted")

            self.fix(f"leftover mount {self.rel(point)}", umount, "unmounted")

    def _ingest(self) -> None:
        for entry in sorted(self.store.blobs.ingest_dir.iterdir()):
            self.fix(f"stray ingest file {self.rel(entry)}", lambda e=entry: self.remove(e))

    def _blobs(self) -> None:
        count = 0
        for entry in sorted(self.store.blobs.dir.iterdir()):
            name = entry.name
            if len(name) != 64 or not set(name) <= _HEX or not entry.is_file() or entry.is_symlink():
                self.fix(f"stray file {self.rel(entry)} in the blob store",
                         lambda e=entry: self.remove(e))
                continue
            count += 1
            digest = "sha256:" + name
            try:
                actual = _sha256_file(entry)
            except OSError as exc:
                self.corrupt.add(digest)
                self.problem(f"blob {digest} cannot be read: {exc.strerror}")
                continue
            if actual == digest:
                self.present.add(digest)
            else:
                self.corrupt.add(digest)
        self.report.checked["blobs"] = count

    def _need(self, digest: str, what: str) -> bool:
        """Whether a referenced blob is there and intact; a problem when not."""
        self.referenced.add(digest)
        if digest in self.present:
            return True
        state = "corrupt (its content does not match its digest)" if digest in self.corrupt else "missing"
        self.problem(f"{what} {digest} is {state}")
        return False

    def _images(self) -> set[str]:
        from ..image import parse_manifest

        rows = self.store.db.execute("SELECT id, manifest FROM images").fetchall()
        self.report.checked["images"] = len(rows)
        for image_id, manifest_digest in rows:
            where = f"image {image_id}"
            has_config = self._need(image_id, f"{where}: config")
            if not self._need(manifest_digest, f"{where}: manifest"):
                continue
            try:
                manifest = parse_manifest(self.store.blobs.read_bytes(manifest_digest))
            except DockyardError as exc:
                self.problem(f"{where}: manifest {manifest_digest} is unreadable: {exc}")
                continue
            if str(manifest.config.digest) != image_id:
                self.problem(f"{where}: manifest {manifest_digest} names config "
                             f"{manifest.config.digest}")
            layers = [str(d.digest) for d in manifest.layers]
            for desc in manifest.layers:
                digest = str(desc.digest)
                if self._need(digest, f"{where}: layer") and \
                        self.store.blobs.size(digest) != desc.size:
                    self.problem(f"{where}: layer {digest} has {self.store.blobs.size(digest)} "
                                 f"bytes, the manifest says {desc.size}")
            if has_config:
                self._config(where, image_id, layers)
        return {r[0] for r in rows}

    def _config(self, where: str, image_id: str, layers: list[str]) -> None:
        try:
            diff_ids = json.loads(self.store.blobs.read_bytes(image_id))["rootfs"]["diff_ids"]
        except (ValueError, KeyError, TypeError):
            self.problem(f"{where}: config has no readable rootfs.diff_ids")
            return
        if diff_ids != layers:
            self.problem(f"{where}: config lists {len(diff_ids)} diff ids that do not match "
                         f"the {len(layers)} layers of its manifest")

    def _tags(self, images: set[str]) -> None:
        rows = self.store.db.execute("SELECT name, image_id FROM tags").fetchall()
        self.report.checked["tags"] = len(rows)
        for name, image_id in rows:
            if image_id not in images:
                self.fix(f"dangling tag {name} (image {image_id} does not exist)",
                         lambda n=name, i=image_id: self._delete_row(
                             "DELETE FROM tags WHERE name=? AND image_id=?", (n, i)))

    def _delete_row(self, sql: str, args: tuple) -> None:
        with self.store.transaction():
            self.store.db.execute(sql, args)

    def _cache(self) -> None:
        rows = self.store.db.execute("SELECT key, value FROM cache").fetchall()
        self.report.checked["cache entries"] = len(rows)
        for key, value in rows:
            try:
                data = json.loads(value)
                wanted = [d for d in [data.get("diff_id"), *data.get("blobs", [])] if d]
            except (ValueError, AttributeError, TypeError):
                wanted = None
            if wanted is not None and all(isinstance(d, str) and d in self.present for d in wanted):
                self.referenced.update(wanted)
                continue
            why = "is unreadable" if wanted is None else "points at a missing blob"
            self.fix(f"build cache entry {key} (it {why})",
                     lambda k=key: self._delete_row("DELETE FROM cache WHERE key=?", (k,)))

    def _snapshots(self) -> set[str]:
        """Check the snapshot records; returns the directory names kept."""
        from ..snapshots import chain_ids

        rows = self.store.db.execute(
            "SELECT chain_id, dir, parent, diff_id FROM snapshots").fetchall()
        self.report.checked["snapshots"] = len(rows)
        kept: set[str] = set()
        for chain_id, name, parent, diff_id in rows:
            path = self.store.snapshot_dir / name
            sane = bool(name) and "/" not in name and name not in (".", "..", "empty")
            expected = chain_ids([parent, diff_id])[-1] if parent else diff_id
            why = None
            if not sane:
                why = f"its directory name {name!r} is not a snapshot directory"
            elif not (path / "fs").is_dir() or path.is_symlink():
                why = "its directory is missing"
            elif expected != chain_id:
                why = "its chain id does not match its parent and layer"
            elif diff_id not in self.present and diff_id not in self.referenced:
                why = f"its layer blob {diff_id} is gone and nothing uses it"
            if why is None:
                kept.add(name)
                self._snapshot_leftovers(path)
                continue

            def drop(chain_id=chain_id, path=path, sane=sane) -> None:
                if sane and os.path.lexists(path):
                    self.remove(path)
                self._delete_row("DELETE FROM snapshots WHERE chain_id=?", (chain_id,))

            self.fix(f"snapshot record {chain_id} ({why})", drop)
        return kept

    def _snapshot_leftovers(self, path: Path) -> None:
        for entry in sorted(path.iterdir()):
            if entry.name == "fs":
                continue
            if entry.name in _MOUNT_LEFTOVERS:
                self.fix(f"{self.rel(entry)} left by an interrupted mount",
                         lambda e=entry: self.remove(e))
            else:
                self.report.leftovers.append(f"unexpected {self.rel(entry)} (left in place)")

    def _snapshot_dirs(self, kept: set[str]) -> None:
        for entry in sorted(self.store.snapshot_dir.iterdir()):
            if entry.name in kept:
                continue
            if entry.name == "empty" and entry.is_dir() and not entry.is_symlink():
                if any(entry.iterdir()):
                    self.fix("files in snapshots/empty (the lower dir of empty images)",
                             lambda e=entry: (self.remove(e), e.mkdir()), "emptied")
                continue
            self.fix(f"orphaned snapshot directory {self.rel(entry)}",
                     lambda e=entry: self.remove(e))

    def _tmp(self) -> None:
        for entry in sorted(self.store.tmp_dir.iterdir()):
            if _empty_tree(entry):  # directory skeletons (tmp/runc/...) are not worth a line
                if self.repair:
                    with contextlib.suppress(OSError):
                        self.remove(entry)
                continue
            self.fix(f"scratch {self.rel(entry)} of an interrupted command",
                     lambda e=entry: self.remove(e))

    def _drop_corrupt(self) -> None:
        """Corrupt blobs go last: the checks above already said who used them."""
        for digest in sorted(self.corrupt):
            used = " (referenced: reload or rebuild the image)" if digest in self.referenced else ""
            path = self.store.blobs.path(digest)
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            self.fix(f"corrupt blob {digest}{used}", lambda p=path: self.remove(p))

"""Extracted layers as overlayfs lower directories.

Each layer of an image chain is unpacked once into its own directory
(``snapshots/<n>/fs``); a root filesystem is an overlay mount of those
directories with a fresh upper directory on top, and the upper directory of
a RUN or COPY step becomes the next snapshot as it is: nothing is copied.
Layers that need it are applied through an overlay mount of their parents, so
whiteouts become overlayfs whiteouts and symlinks resolve against the real
parent tree; the others are written straight into their directory (layer.merge).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path
from typing import Iterator

from .errors import LayerError
from .store import Store
from .store.store import remove_tree


def chain_ids(diff_ids: list[str]) -> list[str]:
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


class Snapshotter:
    def __init__(self, store: Store, fetch=None):
        self.store = store
        self.fetch = fetch      # callable(diff_id) that brings a missing layer blob in
        self._empty = store.snapshot_dir / "empty"
        self._empty.mkdir(exist_ok=True)
        self.made: list[str] = []  # chain ids this object unpacked, oldest first

    def lowers(self, diff_ids: list[str]) -> list[Path]:
        """Lower dirs for a chain, top-most first, unpacking layers as needed."""
        chains = chain_ids(diff_ids)
        dirs: list[Path] = []
        for i, (chain, diff_id) in enumerate(zip(chains, diff_ids)):
            path = self.store.snapshot(chain)
            if path is None:
                path = self._unpack(diff_id, chain, chains[i - 1] if i else None, dirs)
            dirs.append(path / "fs")
        return list(reversed(dirs)) or [self._empty]

    def _unpack(self, diff_id: str, chain: str, parent: str | None, below: list[Path]) -> Path:
        from .layer.apply import Refused, apply_layer
        from .layer.merge import checker

        if self.fetch is not None and not self.store.blobs.has(diff_id):
            self.fetch(diff_id)
        snap = self.store.new_snapshot_dir()
        try:
            (snap / "fs").mkdir()
            with self.store.blobs.open(diff_id) as stream:
                lowers = list(reversed(below))
                try:  # most layers only add beside or over what is below: write the dir itself
                    apply_layer(stream, snap / "fs", checker(lowers) if lowers else None)
                except Refused:  # this one needs overlay semantics: start again, mounted
                    remove_tree(snap / "fs")
                    (snap / "fs").mkdir()
                    stream.seek(0)
                    with self.mounted(lowers, snap) as root:
                        apply_layer(stream, root)
            path = self.store.add_snapshot(chain, snap, parent, diff_id)
        except BaseException:
            remove_tree(snap)
            raise
        if path == snap:
            self.made.append(chain)
        return path

    def discard_made(self) -> None:
        """Drop the snapshots this object unpacked (an image that failed to arrive)."""
        for chain in reversed(self.made):
            self.store.remove_snapshot(chain)
        self.made.clear()

    def new_upper(self) -> Path:
        snap = self.store.new_snapshot_dir()
        (snap / "fs").mkdir()
        return snap

    @contextlib.contextmanager
    def mounted(self, lowers: list[Path], snap: Path) -> Iterator[Path]:
        """Overlay-mount `lowers` with `snap/fs` as the upper dir; yields the root."""
        from .runtime.overlay import mounted

        work = snap / "work"
        merged = snap / "merged"
        work.mkdir(exist_ok=True)
        merged.mkdir(exist_ok=True)
        with mounted(lowers or [self._empty], snap / "fs", work, merged):
            yield merged
        remove_tree(work)
        with contextlib.suppress(OSError):
            os.rmdir(merged)

    def commit(self, snap: Path, parent_diff_ids: list[str], diff_id: str) -> Path:
        chains = chain_ids(parent_diff_ids + [diff_id])
        parent = chains[-2] if len(chains) > 1 else None
        return self.store.add_snapshot(chains[-1], snap, parent, diff_id)


def unpack_images(store: Store, images: list[list[str]]) -> None:
    """Unpack images' layers (their diff ids) as they enter the store (import,
    load), as Docker does, so the first RUN finds them ready. If one fails,
    what this call unpacked is dropped and the error raised: the caller then
    records no image. Without root there is nothing to mount them with: the
    layers are unpacked by whoever first runs the image."""
    if os.geteuid() != 0:
        return
    snaps = Snapshotter(store)
    try:
        for diff_ids in images:
            snaps.lowers(diff_ids)
    except BaseException:
        snaps.discard_made()
        raise


class Unpacker:
    """Unpacks an image's layers in order while they download (pull): a layer
    is applied as soon as its blob and those of the layers below are in.

    One background thread; call ready(diff_id) when a blob is committed, then
    finish() (raises what the unpack raised) or, on a failed pull, cancel().
    The store's database is used by the thread only between start and
    finish/cancel, while the caller waits for downloads."""

    def __init__(self, store: Store, diff_ids: list[str]):
        self.store = store
        self.diff_ids = list(diff_ids) if os.geteuid() == 0 else []
        self._snaps = Snapshotter(store)
        self._cond = threading.Condition()
        self._ready: set[str] = set()
        self._stop = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="unpack", daemon=True)
        self._thread.start()

    def ready(self, diff_id: str) -> None:
        with self._cond:
            self._ready.add(diff_id)
            self._cond.notify()

    def _wait_for(self, diff_id: str) -> bool:
        with self._cond:
            while not self._stop and diff_id not in self._ready:
                if self.store.blobs.has(diff_id):
                    return True
                self._cond.wait()
            return not self._stop

    def _run(self) -> None:
        try:
            for i, diff_id in enumerate(self.diff_ids):
                if not self._wait_for(diff_id):
                    return
                try:
                    self._snaps.lowers(self.diff_ids[:i + 1])
                except LayerError as exc:
                    raise LayerError(f"layer {diff_id}: {exc}") from None
        except BaseException as exc:  # noqa: BLE001 - raised again by finish()
            self._error = exc

    def finish(self) -> None:
        for diff_id in self.diff_ids:  # every blob is in now, whoever brought it
            self.ready(diff_id)
        self._thread.join()
        if self._error is not None:
            self._snaps.discard_made()
            raise self._error

    def cancel(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()
        self._snaps.discard_made()


def drop_untouched_parents(upper: Path, stubs: list[str], lowers: list[Path]) -> None:
    """Creating a mount stub copies its parent directory up (e.g. `etc/` for
    /etc/hosts); once the stub is gone that copy is empty and unchanged, and
    must not reach the layer."""
    parents = sorted({str(Path(s.strip("/")).parent) for s in stubs} - {"."},
                     key=lambda p: -p.count("/"))
    for rel in parents:
        while rel not in ("", "."):
            here = upper / rel
            try:
                st = os.lstat(here)
                if not os.path.isdir(here) or os.path.islink(here) or os.listdir(here):
                    break
                if {"trusted.overlay.opaque", "user.overlay.opaque"} & set(
                        os.listxattr(here, follow_symlinks=False)):
                    break
            except OSError:
                break
            below = next((lo / rel for lo in lowers if os.path.lexists(lo / rel)), None)
            if below is None:
                break
            lst = os.lstat(below)
            if (lst.st_mode, lst.st_uid, lst.st_gid) != (st.st_mode, st.st_uid, st.st_gid):
                break
            os.rmdir(here)
            rel = str(Path(rel).parent)

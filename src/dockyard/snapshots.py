"""Extracted layers as overlayfs lower directories.

Each layer of an image chain is unpacked once into its own directory
(``snapshots/<n>/fs``); a root filesystem is an overlay mount of those
directories with a fresh upper directory on top, and the upper directory of
a RUN or COPY step becomes the next snapshot as it is: nothing is copied.
Layers are applied through an overlay mount of their parents, so whiteouts
become overlayfs whiteouts and symlinks resolve against the real parent tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Iterator

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
        from .layer import apply_layer

        if self.fetch is not None and not self.store.blobs.has(diff_id):
            self.fetch(diff_id)
        snap = self.store.new_snapshot_dir()
        try:
            (snap / "fs").mkdir()
            with self.mounted(list(reversed(below)), snap) as root:
                with self.store.blobs.open(diff_id) as stream:
                    apply_layer(stream, root)
            return self.store.add_snapshot(chain, snap, parent, diff_id)
        except BaseException:
            remove_tree(snap)
            raise

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

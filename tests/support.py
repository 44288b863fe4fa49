"""Helpers shared by the tests: file listings of images and rootfs trees."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path


def tree_listing(root: Path, skip=("dev", "proc", "sys")) -> dict[str, tuple]:
    """path -> (type, mode, uid, gid, size, sha256 or link target) for a directory tree."""
    out: dict[str, tuple] = {}
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in skip]
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(path)
            mode = st.st_mode
            if stat.S_ISREG(mode):
                extra = hashlib.sha256(path.read_bytes()).hexdigest()
                kind, size = "file", st.st_size
            elif stat.S_ISLNK(mode):
                extra, kind, size = os.readlink(path), "symlink", 0
            elif stat.S_ISDIR(mode):
                extra, kind, size = "", "dir", 0
            else:
                extra, kind, size = f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}", "other", 0
            out[rel] = (kind, oct(stat.S_IMODE(mode)), st.st_uid, st.st_gid, size, extra)
    return out


def unpack_image(store, image, dest: Path) -> Path:
    from dockyard.layer import apply_layer

    dest.mkdir(parents=True, exist_ok=True)
    for digest in image.layer_digests:
        with store.blobs.open(digest) as f:
            apply_layer(f, dest)
    return dest


def image_files(store, image, tmp: Path) -> dict[str, tuple]:
    return tree_listing(unpack_image(store, image, tmp))


def layer_names(store, digest: str) -> list[str]:
    with store.blobs.open(digest) as f:
        with tarfile.open(fileobj=io.BytesIO(f.read())) as t:
            return [m.name for m in t.getmembers()]


class Events(list):
    """A progress listener that records events."""

    def __call__(self, ev):
        self.append(ev)

    def kinds(self, kind):
        return [e for e in self if e.kind == kind]

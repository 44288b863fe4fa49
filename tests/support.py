"""Helpers shared by the tests: file listings of images and rootfs trees."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def needs_root():
    return pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runc, overlayfs)")


def make_busybox_rootfs(dest: Path) -> Path:
    (dest / "bin").mkdir(parents=True)
    for d in ("etc", "tmp", "root", "home"):
        (dest / d).mkdir()
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    apps = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for app in apps:
        if app != "busybox":
            os.symlink("busybox", dest / "bin" / app)
    (dest / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (dest / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n")
    os.chmod(dest / "tmp", 0o1777)
    return dest


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

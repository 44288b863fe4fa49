"""Fixtures for the runtime tests: a busybox rootfs, overlays over it, runc.

The tests use the real kernel (overlayfs, namespaces) and the real runc, so
they need root; they are skipped, not failed, on a machine without those.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.runtime import overlay
from dockyard.runtime.runc import Runtime, find_runtime

BUSYBOX = shutil.which("busybox") or "/bin/busybox"

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "app:x:1000:1000:App User:/home/app:/bin/sh\n"
    "nohome:x:1001:1001:::/bin/sh\n"
)
GROUP = (
    "root:x:0:\n"
    "daemon:x:1:\n"
    "app:x:1000:\n"
    "staff:x:50:app,daemon\n"
    "video:x:44:app\n"
    "other:x:2000:daemon\n"
)


def _require_root_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not os.path.exists(BUSYBOX):
        pytest.skip("needs busybox-static")
    if shutil.which("runc") is None and not os.path.exists("/usr/sbin/runc"):
        pytest.skip("needs runc")


def make_busybox_rootfs(root: Path) -> Path:
    """A minimal image: static busybox with every applet linked, passwd/group."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for name in applets:
        if name != "busybox":
            os.symlink("busybox", root / "bin" / name)
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    (root / "home" / "app").mkdir(parents=True)
    (root / "tmp").mkdir(mode=0o1777)
    os.chmod(root / "tmp", 0o1777)
    return root


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only template: tests mount it as an overlay lower, never write it."""
    _require_root_tools()
    return make_busybox_rootfs(tmp_path_factory.mktemp("image") / "rootfs")


class Overlay:
    def __init__(self, merged: Path, upper: Path):
        self.merged = merged
        self.upper = upper


@pytest.fixture
def container_root(busybox_image: Path, tmp_path: Path) -> Iterator[Overlay]:
    """The busybox image under a fresh overlay: `merged` to run on, `upper` to inspect."""
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for d in (upper, work, merged):
        d.mkdir()
    with overlay.mounted([busybox_image], upper, work, merged):
        yield Overlay(merged, upper)


@pytest.fixture(scope="session")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    _require_root_tools()
    return find_runtime(tmp_path_factory.mktemp("runc-state"))


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d

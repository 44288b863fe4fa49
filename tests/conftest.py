"""Shared fixtures: a busybox base image made from busybox-static, a fresh
store per test, and a Docker engine (the oracle) started when needed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from support import make_busybox_rootfs

# Debian's docker.io client; a newer client elsewhere on PATH may need buildx.
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else (shutil.which("docker") or "docker")


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("busybox")
    root = make_busybox_rootfs(base / "rootfs")
    out = base / "busybox.tar"
    subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(out), "."], check=True)
    return out


@pytest.fixture
def store(tmp_path):
    from dockyard.store import Store

    return Store(tmp_path / "store")


@pytest.fixture
def base_image(store, busybox_tar):
    """busybox:latest in the test's store."""
    from dockyard import api

    return api.import_image(busybox_tar, "busybox:latest", store=store)


def _docker_ok() -> bool:
    try:
        return subprocess.run([DOCKER, "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def docker(busybox_tar):
    """A running Docker engine with busybox:latest imported from the same tar."""
    if not _docker_ok():
        if os.geteuid() != 0 or not shutil.which("dockerd"):
            pytest.skip("Docker engine not available (needs root and dockerd)")
        log = open("/tmp/dockyard-test-dockerd.log", "ab")
        subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
        deadline = time.time() + 60
        while not _docker_ok():
            if time.time() > deadline:
                pytest.fail("dockerd did not start; see /tmp/dockyard-test-dockerd.log")
            time.sleep(0.5)
    subprocess.run([DOCKER, "import", str(busybox_tar), "busybox:latest"], check=True,
                   capture_output=True)
    return DOCKER

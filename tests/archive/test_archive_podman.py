"""Images dockyard builds load into Podman as well as Docker."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile

import pytest
from support import needs_root

from dockyard import api

pytestmark = [needs_root(), pytest.mark.skipif(not shutil.which("podman"), reason="podman not installed")]


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_podman_loads_what_dockyard_saves(store, base_image, tmp_path, fmt):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nRUN echo hi > /hi\nCMD [\"cat\", \"/hi\"]\n")
    image = api.build(ctx, tags=[f"dockyard-podman-{fmt}:1"], store=store)
    archive = tmp_path / "img.tar"
    api.save([f"dockyard-podman-{fmt}:1"], archive, format=fmt, store=store)
    runroot = tempfile.mkdtemp(prefix="pm-", dir="/tmp")   # podman wants a short runroot path
    podman = ["podman", "--root", str(tmp_path / "podman-root"), "--runroot", runroot,
              "--storage-driver", "vfs"]
    loaded = subprocess.run([*podman, "load", "-i", str(archive)], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    listed = subprocess.run([*podman, "images", "--format", "json"], capture_output=True, text=True, timeout=60)
    shutil.rmtree(runroot, ignore_errors=True)
    infos = json.loads(listed.stdout)
    assert any(i["Id"] == image.id[7:] for i in infos), infos

"""Cross-platform builds through qemu-user-static, and multi-platform indexes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support import make_busybox_rootfs, needs_root
from test_build import run_output, write

from dockyard import api
from dockyard.image.platform import Platform

ARM64_BUSYBOX = Path(__file__).resolve().parents[2] / ".cache" / "arm64" / "bin" / "busybox"


def _arm64_runs() -> bool:
    if not ARM64_BUSYBOX.exists():
        return False
    try:
        return subprocess.run([str(ARM64_BUSYBOX), "true"], timeout=20).returncode == 0
    except OSError:
        return False


pytestmark = [needs_root(), pytest.mark.skipif(
    Platform.host().architecture != "amd64" or not _arm64_runs(),
    reason="needs an amd64 host with qemu-aarch64 in binfmt_misc and scripts/setup's arm64 busybox")]


@pytest.fixture
def multi_base(store, tmp_path):
    """busybox-multi:latest: an index over an amd64 and an arm64 busybox."""
    images = []
    for arch, binary in (("amd64", None), ("arm64", ARM64_BUSYBOX)):
        root = make_busybox_rootfs(tmp_path / f"rootfs-{arch}")
        if binary:
            os.unlink(root / "bin" / "busybox")
            subprocess.run(["cp", str(binary), str(root / "bin" / "busybox")], check=True)
        tar = tmp_path / f"{arch}.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(tar), "."], check=True)
        from dockyard.archive.importer import import_rootfs

        with open(tar, "rb") as f:
            images.append(import_rootfs(store, f, tag=None, platform=f"linux/{arch}"))
    store.put_index(images, tags=["docker.io/library/busybox-multi:latest"])
    return images


def test_build_for_arm64_runs_through_qemu(store, multi_base, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox-multi:latest
        ARG TARGETARCH
        RUN echo "$(uname -m) $TARGETARCH" > /arch
    """})
    image = api.build(ctx, store=store, platforms=["linux/arm64"], tags=["armonly:1"])
    assert image.config["architecture"] == "arm64"
    assert run_output(store, image, ["cat", "/arch"]) == "aarch64 arm64\n"


def test_multi_platform_build_gives_an_index(store, multi_base, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox-multi:latest
        RUN uname -m > /arch
        CMD ["cat", "/arch"]
    """})
    api.build(ctx, store=store, platforms=["linux/amd64,linux/arm64"], tags=["multi:1"],
              annotations={"index:org.opencontainers.image.description": "two arches",
                           "org.opencontainers.image.vendor": "dockyard"})
    digest = store.index_of("docker.io/library/multi:1")
    assert digest is not None
    index = store.index(digest)
    assert index["annotations"] == {"org.opencontainers.image.description": "two arches"}
    for image in store.index_images(digest):
        assert image.manifest["annotations"] == {"org.opencontainers.image.vendor": "dockyard"}
    assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == ["amd64", "arm64"]
    host = api.get_image(store, "multi:1")          # run picks this machine's platform
    assert run_output(store, host) == "x86_64\n"
    arm = store.lookup("multi:1", "docker.io/library/multi:1", platform="linux/arm64")
    assert run_output(store, arm) == "aarch64\n"


def test_wrong_platform_base_is_refused(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox:latest\nRUN true\n"})
    with pytest.raises(Exception, match="not linux/arm64"):
        api.build(ctx, store=store, platforms=["linux/arm64"])

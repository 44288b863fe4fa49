"""Fixtures for the archive tests: a tiny busybox rootfs tar, fresh stores,
a store snapshot to prove failed loads leave nothing, and the Docker and
skopeo oracles (skipped with a reason when they are not usable)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

BUSYBOX = "/bin/busybox"
DOCKER = "/usr/bin/docker"  # Debian's 20.10 client; /usr/local/bin/docker needs buildx


def _add(tf: tarfile.TarFile, name: str, *, data: bytes | None = None, link: str | None = None,
         mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 1700000000
    info.mode = mode
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
        tf.addfile(info)
    elif data is None:
        info.type = tarfile.DIRTYPE
        tf.addfile(info)
    else:
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))


def make_rootfs_tar(path: Path, extra: dict[str, bytes] | None = None) -> Path:
    """busybox, a few applet links and /etc/passwd, as an uncompressed tar."""
    if not os.path.exists(BUSYBOX):
        pytest.skip(f"{BUSYBOX} is needed to build a test rootfs (apt-get install busybox-static)")
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for d in ("bin", "etc", "tmp"):
            _add(tf, d)
        _add(tf, "bin/busybox", data=Path(BUSYBOX).read_bytes())
        for applet in ("sh", "echo", "cat", "ls", "true"):
            _add(tf, f"bin/{applet}", link="busybox")
        _add(tf, "etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n", mode=0o644)
        for name, data in (extra or {}).items():
            _add(tf, name, data=data, mode=0o644)
    return path


@pytest.fixture(scope="session")
def rootfs_tar(tmp_path_factory) -> Path:
    return make_rootfs_tar(tmp_path_factory.mktemp("rootfs") / "rootfs.tar")


@pytest.fixture
def new_store(tmp_path):
    """A factory of empty stores under the test's tmp dir."""
    from dockyard.store import Store

    count = iter(range(1000))
    return lambda: Store(tmp_path / f"store{next(count)}")


def store_state(store) -> dict:
    """Everything a load may add: images, tags, blobs and ingest leftovers."""
    return {
        "images": sorted(r[0] for r in store.db.execute("SELECT id FROM images")),
        "tags": sorted(store.db.execute("SELECT name, image_id FROM tags").fetchall()),
        "blobs": sorted(store.blobs.all()),
        "ingest": sorted(p.name for p in store.blobs.ingest_dir.iterdir()),
    }


def unique_tag(label: str = "img") -> str:
    return f"dockyard-test-{label}-{uuid.uuid4().hex[:10]}:{label}"


class DockerCLI:
    """Runs /usr/bin/docker and remembers which images to remove afterwards."""

    def __init__(self):
        self.created: list[str] = []

    def __call__(self, *args: str, input: bytes | None = None) -> str:
        proc = subprocess.run([DOCKER, *args], input=input, capture_output=True, timeout=300, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc.stdout.decode()

    def track(self, *refs: str) -> None:
        self.created.extend(refs)

    def cleanup(self) -> None:
        for ref in reversed(self.created):
            subprocess.run([DOCKER, "rmi", "-f", ref], capture_output=True, timeout=120, check=False)


@pytest.fixture
def docker_cli():
    if not os.path.exists(DOCKER):
        pytest.skip(f"{DOCKER} is not installed")
    try:
        ok = subprocess.run([DOCKER, "info"], capture_output=True, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        pytest.skip("dockerd is not reachable (docker info failed)")
    cli = DockerCLI()
    yield cli
    cli.cleanup()


@pytest.fixture
def skopeo():
    path = shutil.which("skopeo")
    if not path:
        pytest.skip("skopeo is not installed")

    def run(*args: str) -> str:
        proc = subprocess.run([path, *args], capture_output=True, timeout=300, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"skopeo {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc.stdout.decode()

    return run


def rewrite_tar(src: Path, dst: Path, edit, rename: dict[str, str] | None = None) -> None:
    """Copy a tar, passing each regular file's bytes through edit(name, data)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            new_name = (rename or {}).get(member.name)
            if member.isfile():
                data = edit(member.name, tin.extractfile(member).read())
                if data is None:
                    continue
                member.size = len(data)
                if new_name:
                    member.name = new_name
                tout.addfile(member, io.BytesIO(data))
            else:
                tout.addfile(member)


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def two_images(new_store, rootfs_tar, h):
    """A store with a base image and a child sharing its layer, each tagged."""
    from dockyard.archive import import_rootfs
    from dockyard.archive.importer import config_json

    store = new_store()
    base_tag, child_tag = h.unique_tag("base"), h.unique_tag("child")
    with open(rootfs_tar, "rb") as f:
        base = import_rootfs(store, f, tag=base_tag)
    extra = layer_tar({"hello.txt": b"hello from the child layer\n"})
    extra_digest = store.blobs.put_bytes(extra)
    config = json.loads(base.config_bytes)
    config["rootfs"]["diff_ids"].append(extra_digest)
    config["history"].append({"created": config["created"], "created_by": "ADD hello.txt /"})
    config["config"] = {"Cmd": ["cat", "/hello.txt"]}
    child = store.put_image(config_json(config), tags=[f"docker.io/library/{child_tag}"])
    base = store.image(base.id)
    return store, [(base, base.tags), (child, child.tags)], (base_tag, child_tag)


class _Helpers:
    """The helpers above, for tests (a conftest is not importable by name)."""

    store_state = staticmethod(store_state)
    unique_tag = staticmethod(unique_tag)
    rewrite_tar = staticmethod(rewrite_tar)
    make_rootfs_tar = staticmethod(make_rootfs_tar)
    layer_tar = staticmethod(layer_tar)


@pytest.fixture
def h():
    return _Helpers

"""Crash consistency of unpacking as images arrive: `dockyard import` and
`dockyard load` killed with SIGKILL while their layers are being applied
(the second one written straight into its directory, refused at its
whiteout, then applied through an overlay mount of its parent), each kill
followed by `dockyard fsck` and the checks of test_crash_kill; the image is
then either whole, with its snapshots, or absent."""

from __future__ import annotations

import io
import random
import signal
import subprocess
import tarfile
import time

import pytest
from hardening_lib import cli_argv, cli_env, docker_archive, run_cli, sha256
from support import needs_root
from test_crash_kill import fsck_and_verify

from dockyard.snapshots import chain_ids
from dockyard.store import Store

pytestmark = [needs_root(), pytest.mark.slow]

SEED = 11


def _layer(prefix: str, count: int, whiteout: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for d in range(count // 100):
            info = tarfile.TarInfo(f"{prefix}{d}")
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(info)
            for i in range(100):
                data = f"{prefix} {d} {i}\n".encode() * 40
                info = tarfile.TarInfo(f"{prefix}{d}/f{i}")
                info.size, info.mode = len(data), 0o644
                tf.addfile(info, io.BytesIO(data))
        if whiteout:  # last: the layer is written straight, refused there, then applied mounted
            tf.addfile(tarfile.TarInfo(f".wh.{whiteout}"))
    return buf.getvalue()


def _killed(root, args: tuple[str, ...], delay: float) -> bool:
    proc = subprocess.Popen(cli_argv(*args), env=cli_env(root), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return killed


def _whole_or_absent(root, name: str, diff_ids: list[str]) -> bool:
    store = Store(root)
    try:
        row = store.db.execute("SELECT image_id FROM tags WHERE name=?", (name,)).fetchone()
        if row is None:
            return False
        for chain in chain_ids(diff_ids):
            assert store.snapshot(chain) is not None, "a recorded image without its snapshots"
        return True
    finally:
        store.db.close()


def test_killed_imports_and_loads_leave_a_consistent_store(tmp_path):
    rng = random.Random(SEED)
    root = tmp_path / "store"
    base, top = _layer("a", 1500), _layer("b", 1500, whiteout="a0")
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(base)
    archive = tmp_path / "two.tar"
    archive.write_bytes(docker_archive([base, top], "two:1"))
    diff_ids = [sha256(base), sha256(top)]
    # Kill points are spread over how long each command takes here, so they land
    # in the unpack on a fast machine as on a loaded one.
    took = {}
    for key, args in (("import", ("import", str(rootfs), "probe:1")), ("load", ("load", "-i", str(archive)))):
        start = time.monotonic()
        assert run_cli(root, *args, timeout=300).returncode == 0
        took[key] = time.monotonic() - start
    assert run_cli(root, "rmi", "probe:1", "two:1").returncode == 0
    assert run_cli(root, "prune", "-a", "-f").returncode == 0
    kills, repairs = 0, []
    for i in range(8):
        if i % 2 == 0:
            args, name, ids = ("import", str(rootfs), f"one:{i}"), f"docker.io/library/one:{i}", diff_ids[:1]
        else:
            args, name, ids = ("load", "-i", str(archive)), "docker.io/library/two:1", diff_ids
        kills += _killed(root, args, rng.uniform(0.3, 0.95) * took[args[0]])
        repairs += fsck_and_verify(root)
        if _whole_or_absent(root, name, ids) and i % 2 == 1:
            assert run_cli(root, "rmi", "two:1").returncode == 0
            assert run_cli(root, "prune", "-a", "-f").returncode == 0
    assert kills >= 3, "the kills came too late to land in an unpack"
    done = run_cli(root, "load", "-i", str(archive), timeout=300)
    assert done.returncode == 0, done.stderr
    assert _whole_or_absent(root, "docker.io/library/two:1", diff_ids)
    print(f"seed {SEED}: {kills} kills; repairs {repairs}")

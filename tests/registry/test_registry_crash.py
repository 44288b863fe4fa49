"""`pull` and `push` killed with SIGKILL at random points leave a store that
fsck finds consistent, and running them again completes the job."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from support import needs_root

from dockyard import api
from dockyard.store import Store
from dockyard.store.fsck import check

pytestmark = [needs_root(), pytest.mark.slow]
SEED = int(os.environ.get("DOCKYARD_CRASH_SEED", "7"))


def _killed(args: list[str], root, delay: float) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "dockyard.cli.main", "--root", str(root), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _image(store, tmp_path, tag):
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(
        "FROM busybox:latest\nRUN head -c 3000000 /dev/urandom > /blob && echo crash > /marker\n")
    return api.build(ctx, store=store, tags=[tag])


def test_killed_pull_then_fsck_and_pull_again(plain_registry, base_image, store, tmp_path):
    ref = f"{plain_registry.host}/crash/pull:1"
    image = _image(store, tmp_path, ref)
    api.push(ref, store=store)
    rng = random.Random(SEED)
    for n in range(5):
        root = tmp_path / f"pull-{n}"
        _killed(["pull", ref], root, rng.uniform(0.05, 0.9))
        st = Store(root)
        report = check(st, repair=True)
        assert report.ok, report.lines()
        assert check(st).ok
        pulled = api.pull(ref, store=st)
        assert pulled.id == image.id
        assert all(st.blobs.has(d) for d in pulled.diff_ids)


def test_killed_push_then_fsck_and_push_again(plain_registry, base_image, store, tmp_path):
    rng = random.Random(SEED + 1)
    for n in range(4):
        ref = f"{plain_registry.host}/crash/push{n}:1"
        image = _image(store, tmp_path, ref)
        _killed(["push", ref], store.root, rng.uniform(0.05, 0.9))
        report = check(store, repair=True)
        assert report.ok, report.lines()
        api.push(ref, store=store)
        fresh = Store(tmp_path / f"fresh-{n}")
        assert api.pull(ref, store=fresh).id == image.id

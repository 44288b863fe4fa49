"""Concurrency on one store, with separate dockyard processes: parallel
builds sharing base layers and cache, and `rmi`/`prune` while a build runs."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time

import pytest
from hardening_lib import (
    check_store_layout,
    cli_argv,
    cli_env,
    mounts_below,
    run_cli,
    write,
)
from support import needs_root

from dockyard import api
from dockyard.store import Store
from dockyard.store.fsck import check

pytestmark = needs_root()


def files_of(store, image) -> dict[str, bytes]:
    """The image's regular files, lower layers first (no whiteout handling needed here)."""
    out: dict[str, bytes] = {}
    for digest in image.layer_digests:
        with store.blobs.open(digest) as f, tarfile.open(fileobj=io.BytesIO(f.read())) as tf:
            for m in tf:
                if m.isfile():
                    out[m.name.removeprefix("./")] = tf.extractfile(m).read()
    return out


@pytest.fixture
def shared_store(tmp_path, busybox_tar):
    root = tmp_path / "store"
    store = Store(root)
    api.import_image(busybox_tar, "busybox:latest", store=store)
    store.db.close()
    return root


def make_context(path, i: int):
    ctx = write(path, {"Dockerfile": f"""
        FROM busybox:latest
        COPY shared/ /shared/
        RUN cat /shared/* > /all && sleep 0.3
        RUN echo {i} > /me && cat /all /me > /both
    """})
    for n in range(20):
        write(ctx, {f"shared/s{n:02}": f"shared {n}\n"})
        os.utime(ctx / "shared" / f"s{n:02}", (1_600_000_000, 1_600_000_000))
    return ctx


def test_parallel_builds_share_one_store(shared_store, tmp_path):
    contexts = [make_context(tmp_path / f"ctx{i}", i) for i in range(4)]

    def round_of_builds() -> list[str]:
        procs = [subprocess.Popen(cli_argv("build", "-q", "-t", f"par:{i}", str(ctx)),
                                  env=cli_env(shared_store), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
                 for i, ctx in enumerate(contexts)]
        ids = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            ids.append(out.strip())
        return ids

    def verify(ids: list[str]) -> None:
        store = Store(shared_store)
        shared = "".join(f"shared {n}\n" for n in range(20)).encode()
        base = api.get_image(store, "busybox:latest").diff_ids[0]
        for i, image_id in enumerate(ids):
            image = api.get_image(store, f"par:{i}")
            assert image.id == image_id and image.diff_ids[0] == base
            files = files_of(store, image)
            assert files["me"] == f"{i}\n".encode() and files["all"] == shared
            assert files["both"] == shared + f"{i}\n".encode()
        assert check(store).lines() == []
        check_store_layout(store)
        store.db.close()
        assert mounts_below(shared_store) == []

    verify(round_of_builds())
    # Processes do not share steps in flight: the same step run by two builds at
    # once gives two layers and the cache keeps the last. So the next round may
    # redo some steps; after it everything is cached and nothing changes.
    second = round_of_builds()
    verify(second)
    assert round_of_builds() == second


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 60) -> list[str]:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"never saw {needle!r}: {''.join(seen)}")


def test_rmi_and_prune_during_a_build_keep_what_it_uses(shared_store, tmp_path):
    ctx = write(tmp_path / "ctx", {"a.txt": "a\n", "Dockerfile": """
        FROM busybox:latest
        COPY a.txt /a.txt
        RUN sleep 1 && echo slept > /slept
        COPY a.txt /b.txt
    """})
    build = subprocess.Popen(cli_argv("build", "--progress", "plain", "-t", "app:1", str(ctx)),
                             env=cli_env(shared_store), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        wait_for_line(build, "RUN sleep 1")
        rmi = run_cli(shared_store, "rmi", "busybox:latest")
        assert rmi.returncode == 0, rmi.stderr
        prune = subprocess.Popen(cli_argv("prune", "-a", "-f"), env=cli_env(shared_store),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, err = build.communicate(timeout=120)
        assert build.returncode == 0, err
        _, err = prune.communicate(timeout=120)
        assert prune.returncode == 0, err
    finally:
        for proc in (build,):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    store = Store(shared_store)
    image = api.get_image(store, "app:1")
    files = files_of(store, image)
    assert files["slept"] == b"slept\n" and files["a.txt"] == files["b.txt"] == b"a\n"
    assert "bin/busybox" in files  # the base layer outlived its image
    with pytest.raises(api.ImageNotFound):
        api.get_image(store, "busybox:latest")
    assert check(store).lines() == []
    check_store_layout(store)
    store.db.close()
    write(ctx, {"Dockerfile": "FROM app:1\nRUN cat /slept /a.txt > /again\n"})
    again = run_cli(shared_store, "build", "-q", "-t", "app:2", str(ctx))
    assert again.returncode == 0, again.stderr


def test_prune_waits_for_a_build_that_has_not_committed_yet(shared_store, tmp_path):
    """The layers a running build made exist only in its cache entries until
    it commits; prune must not take them away in between."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        RUN echo one > /one
        RUN sleep 1
        RUN cat /one > /two
    """})
    build = subprocess.Popen(cli_argv("build", "--progress", "plain", "-t", "app:1", str(ctx)),
                             env=cli_env(shared_store), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        wait_for_line(build, "RUN sleep 1")
        for args in (("rmi", "busybox:latest"), ("prune", "-a", "-f")):
            proc = subprocess.Popen(cli_argv(*args), env=cli_env(shared_store),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if args[0] == "rmi":
                assert proc.wait(timeout=60) == 0
            else:
                pruner = proc
        _, err = build.communicate(timeout=120)
        assert build.returncode == 0, err
        assert pruner.wait(timeout=120) == 0
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
    store = Store(shared_store)
    files = files_of(store, api.get_image(store, "app:1"))
    assert files["one"] == files["two"] == b"one\n"
    assert check(store).lines() == []
    store.db.close()

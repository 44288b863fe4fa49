"""Crash consistency: `dockyard build`, `rmi` and `prune` killed with SIGKILL
at many points, each kill followed by `dockyard fsck` and checks that
nothing referenced is missing or corrupt, no leftover (mount, container,
ingest file, snapshot directory, scratch) survives, and the next build
works and gives the right image.

A build is killed a random time (seeded: DOCKYARD_CRASH_SEED) after one of
its progress lines, each step in turn, so the kills land in Python's
start-up, layer extraction, COPY, runc, diff writing, blob commits and the
final database transaction whatever the speed of the machine."""

from __future__ import annotations

import io
import os
import random
import signal
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

pytestmark = [needs_root(), pytest.mark.slow]

SEED = int(os.environ.get("DOCKYARD_CRASH_SEED", "7"))
DOCKERFILE = """
    FROM busybox:latest AS base
    ARG N=0
    COPY files/ /files/
    RUN echo "$N" > /n && sleep 0.2 && cp -r /files /copy && rm /bin/ls
    FROM busybox:latest
    COPY --from=base /copy /copy
    COPY --from=base /n /n
    WORKDIR /w
    RUN cat /n > /w/n && echo done > /w/done
"""


# Where the build kills strike: after the progress line starting with this
# (None: during start-up), then a random delay.
TARGETS = [None, "#3 [", "#4 [", "#4 [", "#6 [", "#7 [", "#8 [", "#9 [", "#9 [", "#9 DONE",
           None, "#4 ["]


def start(root, *args: str) -> subprocess.Popen:
    return subprocess.Popen(cli_argv(*args), env=cli_env(root), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            bufsize=1, start_new_session=True)


def kill_after(proc: subprocess.Popen, delay: float, after: str | None = None) -> tuple[bool, str]:
    """SIGKILL the dockyard process (only it: its runc and container are left
    running, as after a real crash) `delay` seconds after its first stderr
    line starting with `after` (or after its start); (killed?, its stderr)."""
    seen = []
    if after is not None:
        while line := proc.stderr.readline():
            seen.append(line)
            if line.startswith(after):
                break
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    return killed, "".join(seen) + err


def reap(proc: subprocess.Popen) -> None:
    """Whatever of the killed command's process group fsck left running."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def fsck_and_verify(root) -> list[str]:
    result = run_cli(root, "fsck")
    assert result.returncode == 0, f"fsck found damage:\n{result.stdout}{result.stderr}"
    store = Store(root)
    try:
        report = check(store, repair=False)
        assert report.ok and report.leftovers == [], report.lines()
        assert mounts_below(root) == []
        check_store_layout(store)
        for image in store.images():  # every image is whole and readable
            for digest in image.layer_digests:
                with store.blobs.open(digest) as f, tarfile.open(fileobj=f) as tf:
                    tf.getmembers()
    finally:
        store.db.close()
    return result.stdout.splitlines()


def image_file(store, image, name: str) -> bytes:
    for digest in reversed(image.layer_digests):
        with store.blobs.open(digest) as f, tarfile.open(fileobj=io.BytesIO(f.read())) as tf:
            if name in tf.getnames():
                return tf.extractfile(name).read()
    raise KeyError(name)


def phase(stderr: str) -> str:
    """The last step a killed build had started."""
    steps = [line for line in stderr.splitlines() if line.startswith("#") and " [" in line]
    return steps[-1].split(" ", 1)[1] if steps else "start-up"


@pytest.fixture
def crash_store(tmp_path, busybox_tar):
    root = tmp_path / "store"
    store = Store(root)
    api.import_image(busybox_tar, "busybox:latest", store=store)
    store.db.close()
    ctx = write(tmp_path / "ctx", {"Dockerfile": DOCKERFILE})
    for i in range(40):
        write(ctx, {f"files/f{i:02}": f"file {i}\n" * 50})
    return root, ctx


def test_killed_builds_leave_a_consistent_store(crash_store):
    root, ctx = crash_store
    rng = random.Random(SEED)
    first = run_cli(root, "build", "-q", "-t", "app:0", str(ctx))
    assert first.returncode == 0, first.stderr
    phases, repairs = [], []
    for i, target in enumerate(TARGETS):
        if i % 3 == 0:  # a new context file too, so COPY runs again
            write(ctx, {f"files/new{i}": f"new {i}\n"})
        delay = rng.uniform(0.05, 0.4) if target is None else rng.uniform(0, 0.2)
        proc = start(root, "build", "--progress", "plain", "--build-arg", f"N={i + 1}",
                     "-t", f"app:{i + 1}", str(ctx))
        killed, err = kill_after(proc, delay, target)
        phases.append(phase(err) if killed else "finished")
        try:
            repairs += fsck_and_verify(root)
        finally:
            reap(proc)
    assert len(set(phases)) >= 5, f"the kills did not spread over the build: {phases}"

    final = run_cli(root, "build", "-q", "--build-arg", "N=99", "-t", "app:final", str(ctx))
    assert final.returncode == 0, final.stderr
    store = Store(root)
    image = api.get_image(store, "app:final")
    assert image.id == final.stdout.strip()
    assert image_file(store, image, "w/n") == b"99\n" and image_file(store, image, "w/done") == b"done\n"
    assert image_file(store, image, "copy/f39") == b"file 39\n" * 50
    assert check(store).lines() == []
    print(f"seed {SEED}: kill phases {phases}; repairs {repairs}")


def test_killed_rmi_and_prune_leave_a_consistent_store(crash_store):
    root, ctx = crash_store
    rng = random.Random(SEED + 1)
    built = run_cli(root, "build", "-q", "-t", "app:0", str(ctx))
    assert built.returncode == 0, built.stderr
    names = [f"app:{i}" for i in range(6)]
    store = Store(root)
    image_id = api.get_image(store, "app:0").id
    for name in names[1:]:
        api.tag("app:0", name, store=store)
    for i in range(1, 3):  # images that only prune can reclaim, and build cache
        assert run_cli(root, "build", "-q", "--build-arg", f"N={i}", str(ctx)).returncode == 0
    store.db.close()
    for i, name in enumerate(names):
        args = ("rmi", name) if i % 2 == 0 else ("prune", "-a", "-f")
        proc = start(root, *args)
        kill_after(proc, rng.uniform(0.05, 0.5))
        fsck_and_verify(root)
        reap(proc)
        store = Store(root)
        try:
            for other in names:  # a tag is gone or names the whole image
                try:
                    assert api.get_image(store, other).id == image_id
                except api.ImageNotFound:
                    pass
        finally:
            store.db.close()
    again = run_cli(root, "build", "-q", "--build-arg", "N=5", "-t", "app:again", str(ctx))
    assert again.returncode == 0, again.stderr

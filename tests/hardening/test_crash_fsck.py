"""`dockyard fsck` on stores damaged by hand: what it finds, what it repairs,
what it only reports, and its exit status."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from hardening_lib import (
    build,
    check_store_layout,
    mounts_below,
    run_cli,
    tree_state,
    write,
)
from support import needs_root

from dockyard import api
from dockyard.runtime.overlay import mount_overlay
from dockyard.store.fsck import FsckReport, check

pytestmark = needs_root()


@pytest.fixture
def built(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"a.txt": "a\n", "Dockerfile": """
        FROM busybox:latest
        COPY a.txt /a.txt
        RUN echo run > /run.txt
    """})
    image, _ = build(store, ctx, tags=["app:1"])
    return image


def test_a_healthy_store_is_consistent(store, built):
    report = check(store, repair=True)
    assert isinstance(report, FsckReport)
    assert report.ok and report.problems == [] and report.repairs == [] and report.leftovers == []
    assert report.checked["images"] == 2 and report.checked["blobs"] >= 6
    assert "consistent" in report.summary()


def test_leftovers_are_reported_then_repaired(store, built):
    (store.blobs.ingest_dir / "ingest-dead").write_bytes(b"half a blob")
    orphan = store.snapshot_dir / "0badc0de"
    (orphan / "fs" / "etc").mkdir(parents=True)
    (orphan / "work").mkdir()
    (store.tmp_dir / "push-123").write_bytes(b"x")
    (store.tmp_dir / "runc" / "bundles" / "dockyard-x").mkdir(parents=True)
    (store.tmp_dir / "runc" / "bundles" / "dockyard-x" / "config.json").write_text("{}")
    store.db.execute("INSERT INTO tags VALUES ('docker.io/library/gone:1', 'sha256:" + "1" * 64 + "')")
    store.db.execute("INSERT INTO cache VALUES ('k1', ?, 's', '{}', 0, 0)",
                     ('{"diff_id": "sha256:' + "2" * 64 + '", "blobs": []}',))
    store.db.execute("INSERT INTO cache VALUES ('k2', 'not json', 's', '{}', 0, 0)")
    store.db.execute("INSERT INTO snapshots VALUES (?, 'nowhere', NULL, ?, 0)",
                     ("sha256:" + "3" * 64, "sha256:" + "3" * 64))
    (store.blobs.dir / "not-a-digest").write_bytes(b"x")
    before = tree_state(store.root, exclude=(store.root / "db.sqlite", store.root / "db.sqlite-wal",
                                             store.root / "db.sqlite-shm", store.root / "lock"))

    report = check(store, repair=False)
    assert report.ok, report.problems  # leftovers are not problems
    assert len(report.leftovers) == 9 and report.repairs == [], report.leftovers
    assert tree_state(store.root, exclude=(store.root / "db.sqlite", store.root / "db.sqlite-wal",
                                           store.root / "db.sqlite-shm", store.root / "lock")) == before

    report = check(store, repair=True)
    assert report.ok and len(report.repairs) == 9, report.lines()
    assert all(line.startswith("repaired: ") for line in report.lines())
    assert check(store).lines() == []
    check_store_layout(store)
    assert os.listdir(store.blobs.ingest_dir) == [] and os.listdir(store.tmp_dir) == []
    assert api.get_image(store, "app:1").id == built.id


def test_missing_or_corrupt_content_is_a_problem(store, built):
    layer = built.layer_digests[-1]
    path = store.blobs.path(layer)
    path.write_bytes(path.read_bytes()[:-1] + b"!")   # corrupt, same name
    store.blobs.delete(built.id)                      # the config: missing
    report = check(store, repair=False)
    assert not report.ok
    text = "\n".join(report.problems)
    assert f"layer {layer} is corrupt" in text
    assert f"config {built.id} is missing" in text
    report = check(store, repair=True)
    assert not report.ok
    assert any(f"removed corrupt blob {layer}" in r for r in report.repairs)
    assert not path.exists()  # so a reload of the same content can heal it
    assert f"layer {layer} is missing" in "\n".join(check(store).problems)


def test_a_snapshot_record_whose_chain_id_lies_is_dropped(store, built):
    row = store.db.execute("SELECT chain_id, dir FROM snapshots WHERE parent IS NOT NULL").fetchone()
    store.db.execute("UPDATE snapshots SET chain_id=? WHERE chain_id=?", ("sha256:" + "4" * 64, row[0]))
    report = check(store, repair=True)
    assert report.ok
    assert any("chain id" in r for r in report.repairs)
    assert not (store.snapshot_dir / row[1]).exists()
    check_store_layout(store)


def test_leftover_mounts_are_unmounted(store, built):
    snap = store.snapshot_dir / "deadbeef"
    for d in ("fs", "work", "merged"):
        (snap / d).mkdir(parents=True)
    lower = store.snapshot(store.db.execute(
        "SELECT chain_id FROM snapshots WHERE parent IS NULL").fetchone()[0])
    mount_overlay([lower / "fs"], snap / "fs", snap / "work", snap / "merged")
    secret = store.tmp_dir / "secrets-x"
    secret.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(secret)], check=True)
    try:
        assert len(mounts_below(store.root)) == 2
        report = check(store, repair=False)
        assert sum("leftover mount" in x for x in report.leftovers) == 2
        assert len(mounts_below(store.root)) == 2
        report = check(store, repair=True)
        assert sum(r.startswith("unmounted leftover mount") for r in report.repairs) == 2
        assert mounts_below(store.root) == []
        assert not snap.exists() and not secret.exists()
        assert (lower / "fs" / "bin").is_dir()  # the lower dir was not touched by the clean-up
    finally:
        for point in reversed(mounts_below(store.root)):
            subprocess.run(["umount", "-l", point], check=False)


def test_cli_exit_status_and_lines(store, built):
    result = run_cli(store.root, "fsck")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and "consistent" in result.stderr
    (store.blobs.ingest_dir / "ingest-x").write_bytes(b"x")
    result = run_cli(store.root, "fsck", "--no-repair")
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["leftover: stray ingest file ingest/ingest-x"]
    result = run_cli(store.root, "fsck")
    assert result.stdout.splitlines() == ["repaired: removed stray ingest file ingest/ingest-x"]
    store.blobs.delete(built.id)
    result = run_cli(store.root, "fsck")
    assert result.returncode == 1
    assert f"problem: image {built.id}: config {built.id} is missing" in result.stdout.splitlines()


HOLD_LOCK = """
import sys, time
from dockyard.store import Store
with Store(sys.argv[1]).lock():
    print("locked", flush=True)
    time.sleep(1.0)
"""


def test_fsck_waits_for_a_command_using_the_store(store, built):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(store.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        (store.blobs.ingest_dir / "ingest-busy").write_bytes(b"being written")
        report = check(store, repair=True)
        assert time.monotonic() - started > 0.5, "fsck did not wait for the shared lock"
        assert report.ok
    finally:
        holder.wait(timeout=10)


def test_orphaned_build_containers_are_killed(store, tmp_path):
    """A `runc run` that outlived its dockyard process (state under tmp/runc/runtime)."""
    import shutil

    from support import make_busybox_rootfs

    from dockyard.runtime import spec as oci

    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc is not installed")
    bundle = tmp_path / "bundle"
    rootfs = make_busybox_rootfs(bundle / "rootfs")
    oci.write_config(bundle, oci.make_spec(rootfs=rootfs, args=["/bin/sleep", "60"],
                                           env=["PATH=/bin"], network="none"))
    state = store.tmp_dir / "runc" / "runtime"
    name = "dockyard-orphan0123456789"
    subprocess.run([runc, "--root", str(state), "run", "-d", "--bundle", str(bundle), name],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=30)
    try:
        listed = subprocess.run([runc, "--root", str(state), "list", "-q"], capture_output=True,
                                text=True, check=True).stdout.split()
        assert listed == [name]
        report = check(store, repair=False)
        assert any(name in x for x in report.leftovers)
        report = check(store, repair=True)
        assert f"killed and deleted orphaned build container {name}" in report.repairs
        assert not state.exists() or subprocess.run(
            [runc, "--root", str(state), "list", "-q"], capture_output=True, text=True,
            check=False).stdout == ""
    finally:
        subprocess.run([runc, "--root", str(state), "delete", "--force", name],
                       capture_output=True, check=False)


def test_gc_clears_stray_files_in_tmp(store, built):
    (store.tmp_dir / "push-leftover").write_bytes(b"x" * 100)
    (store.snapshot_dir / "stray-file").write_bytes(b"x")
    store.gc()
    assert os.listdir(store.tmp_dir) == []
    assert not (store.snapshot_dir / "stray-file").exists()

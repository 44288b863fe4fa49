"""The store on its own: blobs, images, tags, locks, GC, default location."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from dockyard.errors import ImageNotFound, StoreError
from dockyard.store import Store, default_root
from dockyard.store.store import canonical_json


def _config(diff_ids):
    return canonical_json({"architecture": "amd64", "os": "linux", "config": {},
                           "rootfs": {"type": "layers", "diff_ids": diff_ids}})


def test_blob_digest_checked_and_nothing_left_on_mismatch(tmp_path):
    s = Store(tmp_path)
    good = s.blobs.put_bytes(b"hello")
    assert s.blobs.read_bytes(good) == b"hello"
    with pytest.raises(StoreError, match="digest mismatch"):
        s.blobs.put_bytes(b"other", expected=good.replace("2", "3", 1))
    assert list(s.blobs.ingest_dir.iterdir()) == []
    assert len(s.blobs.all()) == 1
    assert s.blobs.put_bytes(b"hello") == good          # again: the blob that is there
    with pytest.raises(StoreError, match="digest mismatch"):
        s.blobs.put_bytes(b"hello", expected=good.replace("2", "3", 1))
    assert list(s.blobs.ingest_dir.iterdir()) == []
    assert s.blobs.read_bytes(good) == b"hello" and len(s.blobs.all()) == 1


def test_images_tags_lookup_by_id_prefix_and_digest(tmp_path):
    s = Store(tmp_path)
    layer = s.blobs.put_bytes(b"\0" * 1024)
    image = s.put_image(_config([layer]), tags=["docker.io/library/x:1"])
    assert s.lookup("x:1", "docker.io/library/x:1").id == image.id
    assert s.lookup(image.id[7:19]).id == image.id
    assert s.lookup("y", f"docker.io/library/x@{image.manifest_digest}").id == image.id
    s.tag(image.id, "docker.io/library/x:2")
    assert sorted(s.image(image.id).tags) == ["docker.io/library/x:1", "docker.io/library/x:2"]
    s.delete_image(image.id)
    with pytest.raises(ImageNotFound):
        s.lookup("x:1", "docker.io/library/x:1")


def test_missing_layer_refused(tmp_path):
    s = Store(tmp_path)
    with pytest.raises(StoreError, match="missing"):
        s.put_image(_config(["sha256:" + "a" * 64]))
    assert s.images() == []


def test_gc_keeps_referenced_and_drops_the_rest(tmp_path):
    s = Store(tmp_path)
    kept = s.blobs.put_bytes(b"\0" * 1024)
    s.put_image(_config([kept]), tags=["docker.io/library/k:1"])
    orphan = s.blobs.put_bytes(b"orphan")
    (s.blobs.ingest_dir / "ingest-stale").write_bytes(b"partial")
    count, freed = s.gc()
    assert s.blobs.has(kept) and not s.blobs.has(orphan)
    assert count == 1 and freed == len(b"orphan")
    assert list(s.blobs.ingest_dir.iterdir()) == []


def _hold_shared(root, ready, release):
    s = Store(root)
    with s.lock():
        ready.set()
        release.wait(10)


def test_gc_waits_for_users_of_the_store(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold_shared, args=(tmp_path, ready, release))
    p.start()
    assert ready.wait(10)
    s = Store(tmp_path)
    import fcntl

    fd = os.open(tmp_path / "lock", os.O_RDWR)
    with pytest.raises(BlockingIOError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # what gc() would block on
    release.set()
    p.join(10)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)
    assert s.gc() == (0, 0)


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKYARD_ROOT", str(tmp_path / "here"))
    assert default_root() == tmp_path / "here"
    monkeypatch.delenv("DOCKYARD_ROOT")
    if os.geteuid() == 0:
        assert default_root() == Path("/var/lib/dockyard")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "dockyard"

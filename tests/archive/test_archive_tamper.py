"""A load that fails verification leaves the store exactly as it was."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from dockyard.archive import docker, import_rootfs, load, oci
from dockyard.errors import DockyardError, LayerError, StoreError


def _flip(data: bytes, at: int | None = None) -> bytes:
    at = len(data) // 2 if at is None else at
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


@pytest.fixture
def saved(two_images, tmp_path):
    """The two test images as a docker-archive and an OCI archive on disk."""
    store, images, _ = two_images
    paths = {}
    for kind, module in (("docker", docker), ("oci", oci)):
        paths[kind] = tmp_path / f"{kind}.tar"
        with open(paths[kind], "wb") as f:
            module.save(store, images, f)
    return store, images, paths


@pytest.fixture
def busy_store(new_store, h, tmp_path):
    """A store that already holds an unrelated image, so 'unchanged' means something."""
    store = new_store()
    other = h.make_rootfs_tar(tmp_path / "other.tar", extra={"etc/other": b"other\n"})
    with open(other, "rb") as f:
        import_rootfs(store, f, tag="dockyard-test-existing:1")
    return store


def _load_fails(store, path, h, error=DockyardError, match=None):
    before = h.store_state(store)
    with open(path, "rb") as f, pytest.raises(error, match=match) as err:
        load(store, f)
    assert h.store_state(store) == before
    assert str(path) in str(err.value)  # the message names the archive
    return err.value


def test_flipped_byte_in_big_docker_layer(saved, busy_store, h, tmp_path):
    _, images, paths = saved
    base_layer = images[0][0].diff_ids[0][7:] + "/layer.tar"
    bad = tmp_path / "bad.tar"
    h.rewrite_tar(paths["docker"], bad, lambda n, d: _flip(d) if n == base_layer else d)
    err = _load_fails(busy_store, bad, h, LayerError, "diff id")
    assert base_layer in str(err)


def test_flipped_byte_in_small_layer_of_second_image(saved, busy_store, h, tmp_path):
    _, images, paths = saved
    child_layer = images[1][0].diff_ids[1][7:] + "/layer.tar"
    bad = tmp_path / "bad.tar"
    h.rewrite_tar(paths["docker"], bad, lambda n, d: _flip(d, 600) if n == child_layer else d)
    # The first image is fine, but nothing of it may stay either.
    _load_fails(busy_store, bad, h, LayerError, "diff id")


def test_config_that_does_not_match_its_name(saved, busy_store, h, tmp_path):
    _, images, paths = saved
    config_name = images[0][0].id[7:] + ".json"

    def edit(name, data):
        if name != config_name:
            return data
        return data.replace(b'"os":"linux"', b'"os":"linux","author":"mallory"')

    bad = tmp_path / "bad.tar"
    h.rewrite_tar(paths["docker"], bad, edit)
    _load_fails(busy_store, bad, h, StoreError, "config .* does not match its content")


def test_config_naming_other_diff_ids(saved, busy_store, h, tmp_path):
    _, images, paths = saved
    base = images[0][0]
    config = json.loads(base.config_bytes)
    config["rootfs"]["diff_ids"] = ["sha256:" + "1" * 64]
    forged = json.dumps(config).encode()
    forged_name = hashlib.sha256(forged).hexdigest() + ".json"
    old_name = base.id[7:] + ".json"

    def edit(name, data):
        if name == old_name:
            return forged
        if name == "manifest.json":
            return data.replace(old_name.encode(), forged_name.encode())
        return data

    bad = tmp_path / "bad.tar"
    h.rewrite_tar(paths["docker"], bad, edit, rename={old_name: forged_name})
    _load_fails(busy_store, bad, h, LayerError, "config says sha256:1111")


def test_tampered_oci_layer_and_manifest(saved, busy_store, h, tmp_path):
    _, images, paths = saved
    layer = "blobs/sha256/" + images[1][0].diff_ids[1][7:]
    bad = tmp_path / "bad-layer.tar"
    h.rewrite_tar(paths["oci"], bad, lambda n, d: _flip(d, 600) if n == layer else d)
    _load_fails(busy_store, bad, h, LayerError, "does not match its digest")
    manifest = "blobs/sha256/" + images[0][0].manifest_digest[7:]
    bad = tmp_path / "bad-manifest.tar"
    h.rewrite_tar(paths["oci"], bad,
                  lambda n, d: d.replace(b'"schemaVersion":2', b'"schemaVersion":2 ') if n == manifest else d)
    _load_fails(busy_store, bad, h, StoreError, "does not match its digest")


def test_tampered_compressed_layer_from_skopeo(saved, new_store, busy_store, skopeo, h, tmp_path):
    _, _, paths = saved
    oci_path = tmp_path / "skopeo.tar"
    skopeo("copy", "-q", f"docker-archive:{paths['docker']}:@0", f"oci-archive:{oci_path}:x/y:z")
    with tarfile.open(oci_path) as tf:
        big = max((m for m in tf if m.isfile()), key=lambda m: m.size).name
    bad = tmp_path / "bad.tar"
    h.rewrite_tar(oci_path, bad, lambda n, d: _flip(d) if n == big else d)
    _load_fails(busy_store, bad, h, LayerError)
    # A changed gzip header mtime still decompresses fine: the blob digest catches it.
    h.rewrite_tar(oci_path, bad, lambda n, d: _flip(d, 5) if n == big else d)
    _load_fails(busy_store, bad, h, LayerError, "does not match its digest")


def test_failed_load_keeps_blobs_and_tags_of_existing_images(saved, new_store, h, tmp_path):
    _, images, paths = saved
    fresh = new_store()
    base, base_tags = images[0]
    with open(paths["docker"], "rb") as f:
        load(fresh, f)
    fresh.delete_image(images[1][0].id)
    # The archive re-tags the base tag onto a broken image: the tag must not move.
    child_layer = images[1][0].diff_ids[1][7:] + "/layer.tar"
    bad = tmp_path / "bad.tar"
    h.rewrite_tar(paths["docker"], bad, lambda n, d: _flip(d, 600) if n == child_layer else d)
    _load_fails(fresh, bad, h, LayerError)
    assert fresh.image(base.id).tags == base_tags
    for digest in base.layer_digests:
        assert fresh.blobs.has(digest)


def test_not_an_archive(new_store, h, tmp_path):
    store = new_store()
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\0" * 10 + b"definitely not a tar" * 100)
    _load_fails(store, junk, h, StoreError, "not a readable tar")
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w") as tf:
        info = tarfile.TarInfo("hello.txt")
        tf.addfile(info, io.BytesIO(b""))
    _load_fails(store, empty, h, StoreError, "neither a docker-archive")


def test_truncated_archive(saved, busy_store, h, tmp_path):
    _, _, paths = saved
    cut = tmp_path / "cut.tar"
    cut.write_bytes(paths["docker"].read_bytes()[: 1_500_000])
    _load_fails(busy_store, cut, h)

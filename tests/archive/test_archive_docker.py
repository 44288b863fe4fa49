"""docker-archive: docker.save, and load of what `docker save` writes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from dockyard.archive import docker, import_rootfs, load
from dockyard.errors import LayerError


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _save(store, images) -> bytes:
    out = io.BytesIO()
    docker.save(store, images, out)
    return out.getvalue()


def test_save_layout_shares_layers_and_is_deterministic(two_images):
    store, images, (base_tag, child_tag) = two_images
    data = _save(store, images)
    assert data == _save(store, images)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = tf.getnames()
        manifest = json.load(tf.extractfile("manifest.json"))
        repositories = json.load(tf.extractfile("repositories"))
        base, child = images[0][0], images[1][0]
        assert tf.extractfile(f"{base.id[7:]}.json").read() == base.config_bytes
        base_layer = base.diff_ids[0][7:] + "/layer.tar"
        assert names.count(base_layer) == 1
        assert _sha(tf.extractfile(base_layer).read()) == base.diff_ids[0]
    assert manifest == [
        {"Config": f"{base.id[7:]}.json", "RepoTags": [base_tag], "Layers": [base_layer]},
        {"Config": f"{child.id[7:]}.json", "RepoTags": [child_tag],
         "Layers": [base_layer, child.diff_ids[1][7:] + "/layer.tar"]},
    ]
    repo, tag = child_tag.split(":")
    assert repositories[repo] == {tag: child.diff_ids[1][7:]}


def test_own_archive_loads_into_a_fresh_store(two_images, new_store):
    store, images, _ = two_images
    fresh = new_store()
    result = load(fresh, io.BytesIO(_save(store, images)))
    assert result == [(img.id, img.tags) for img, _ in images]
    for img, _ in images:
        again = fresh.image(img.id)
        assert again.config_bytes == img.config_bytes
        assert again.tags == img.tags
        for digest in again.layer_digests:
            assert fresh.blobs.read_bytes(digest) == store.blobs.read_bytes(digest)


def test_untagged_image_saves_with_null_repotags(two_images):
    store, images, _ = two_images
    with tarfile.open(fileobj=io.BytesIO(_save(store, [(images[0][0], [])]))) as tf:
        assert json.load(tf.extractfile("manifest.json"))[0]["RepoTags"] is None
        assert "repositories" not in tf.getnames()


def test_docker_loads_and_runs_our_archive(two_images, docker_cli, tmp_path):
    store, images, (base_tag, child_tag) = two_images
    archive = tmp_path / "images.tar"
    archive.write_bytes(_save(store, images))
    docker_cli.track(base_tag, child_tag)
    out = docker_cli("load", "-i", str(archive))
    assert f"Loaded image: {base_tag}" in out and f"Loaded image: {child_tag}" in out
    assert docker_cli("run", "--rm", base_tag, "echo", "ok").strip() == "ok"
    assert docker_cli("run", "--rm", child_tag).strip() == "hello from the child layer"
    # Same image id on both sides: the config went through byte for byte.
    assert docker_cli("inspect", "--format", "{{.Id}}", child_tag).strip() == images[1][0].id


def test_docker_save_loads_back_identically(two_images, docker_cli, new_store, tmp_path):
    store, images, (base_tag, child_tag) = two_images
    archive = tmp_path / "ours.tar"
    archive.write_bytes(_save(store, images))
    docker_cli.track(base_tag, child_tag)
    docker_cli("load", "-i", str(archive))
    theirs = tmp_path / "theirs.tar"
    docker_cli("save", "-o", str(theirs), base_tag, child_tag)
    fresh = new_store()
    with open(theirs, "rb") as f:
        result = dict(load(fresh, f))
    for img, tags in images:
        assert result[img.id] == tags
        again = fresh.image(img.id)
        assert again.config_bytes == img.config_bytes
        assert again.diff_ids == img.diff_ids
        assert again.tags == tags


def test_load_of_docker_import_matches_docker(docker_cli, new_store, rootfs_tar, tmp_path, h):
    tag = h.unique_tag("dimp")
    docker_cli.track(tag)
    docker_cli("import", "-c", "CMD [\"sh\"]", str(rootfs_tar), tag)
    theirs = tmp_path / "theirs.tar"
    docker_cli("save", "-o", str(theirs), tag)
    store = new_store()
    with open(theirs, "rb") as f:
        [(image_id, tags)] = load(store, f)
    assert image_id == docker_cli("inspect", "--format", "{{.Id}}", tag).strip()
    assert tags == [f"docker.io/library/{tag}"]
    image = store.image(image_id)
    # docker import keeps the tar as the layer, exactly as import_rootfs does.
    assert image.diff_ids == [_sha(rootfs_tar.read_bytes())]
    with open(rootfs_tar, "rb") as f:
        ours = import_rootfs(store, f, tag=None, changes=["CMD [\"sh\"]"])
    assert ours.diff_ids == image.diff_ids
    assert ours.config["config"]["Cmd"] == image.config["config"]["Cmd"]
    assert ours.config["history"][0].keys() == image.config["history"][0].keys()


def test_compressed_layers_and_archive(two_images, new_store, h, tmp_path):
    store, images, _ = two_images
    plain = tmp_path / "plain.tar"
    plain.write_bytes(_save(store, images))
    packed = tmp_path / "packed.tar"
    h.rewrite_tar(plain, packed, lambda n, d: gzip.compress(d) if n.endswith("/layer.tar") else d)
    with tarfile.open(packed) as tf:
        assert tf.extractfile(tf.getnames()[2]).read(2) == b"\x1f\x8b"
    # Layers gzipped inside, and the whole archive gzipped too (docker save | gzip).
    for data in (packed.read_bytes(), gzip.compress(packed.read_bytes())):
        fresh = new_store()
        assert load(fresh, io.BytesIO(data)) == [(img.id, tags) for img, tags in images]
        for img, _ in images:
            for digest in fresh.image(img.id).layer_digests:
                assert fresh.blobs.read_bytes(digest) == store.blobs.read_bytes(digest)


def test_docker_25_layout_with_blob_paths(two_images, new_store, h, tmp_path):
    """Newer docker save names configs and layers blobs/sha256/<hex> in manifest.json."""
    from dockyard.archive import oci

    store, images, (base_tag, child_tag) = two_images
    layout = io.BytesIO()
    oci.save(store, images, layout)
    manifest = [{"Config": f"blobs/sha256/{img.id[7:]}", "RepoTags": [tag],
                 "Layers": [f"blobs/sha256/{d[7:]}" for d in img.layer_digests]}
                for (img, _), tag in zip(images, (base_tag, child_tag))]
    src = tmp_path / "layout.tar"
    src.write_bytes(layout.getvalue())
    with tarfile.open(src, "a") as tf:
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    fresh = new_store()
    with open(src, "rb") as f:
        assert load(fresh, f) == [(img.id, tags) for img, tags in images]
    # The names are digests, so a changed blob is caught by name as well.
    child_layer = f"blobs/sha256/{images[1][0].diff_ids[1][7:]}"
    bad = tmp_path / "bad.tar"
    h.rewrite_tar(src, bad, lambda n, d: d + b"\0" * 512 if n == child_layer else d)
    fresh = new_store()
    before = h.store_state(fresh)
    with open(bad, "rb") as f, pytest.raises(LayerError, match="does not match its digest"):
        load(fresh, f)
    assert h.store_state(fresh) == before

"""OCI image layouts: oci.save / oci.save_dir, and load of skopeo's and our own."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from dockyard.archive import docker, load, oci
from dockyard.errors import StoreError
from dockyard.image.platform import Platform


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _save(store, images) -> bytes:
    out = io.BytesIO()
    oci.save(store, images, out)
    return out.getvalue()


def test_save_writes_buildkit_style_index(two_images):
    store, images, (_, child_tag) = two_images
    data = _save(store, images)
    assert data == _save(store, images)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert json.load(tf.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
        index = json.load(tf.extractfile("index.json"))
        blobs = {n for n in tf.getnames() if n.startswith("blobs/sha256/")}
        for name in blobs:
            assert "sha256:" + name.rsplit("/", 1)[1] == _sha(tf.extractfile(name).read())
    entries = index["manifests"]
    assert [e["digest"] for e in entries] == [img.manifest_digest for img, _ in images]
    assert entries[1]["annotations"] == {
        "io.containerd.image.name": f"docker.io/library/{child_tag}",
        "org.opencontainers.image.ref.name": child_tag.split(":")[1]}
    # Two manifests, two configs, two distinct layers: the shared base layer once.
    assert len(blobs) == 2 * 2 + 2


def test_skopeo_reads_our_oci_archive(two_images, skopeo, tmp_path):
    store, images, _ = two_images
    path = tmp_path / "one.tar"
    path.write_bytes(_save(store, images[:1]))
    info = json.loads(skopeo("inspect", f"oci-archive:{path}"))
    base = images[0][0]
    assert info["Layers"] == base.diff_ids
    assert info["Digest"] == base.manifest_digest
    config = json.loads(skopeo("inspect", "--config", f"oci-archive:{path}"))
    assert config["rootfs"]["diff_ids"] == base.diff_ids
    # Several images: picked by the tag in ref.name.
    path.write_bytes(_save(store, images))
    info = json.loads(skopeo("inspect", f"oci-archive:{path}:{images[1][1][0].rsplit(':', 1)[1]}"))
    assert info["Layers"] == images[1][0].diff_ids


def test_save_dir_adds_to_a_layout(two_images, skopeo, tmp_path):
    store, images, _ = two_images
    layout = tmp_path / "layout"
    oci.save_dir(store, images[:1], layout)
    oci.save_dir(store, images[1:], layout)
    oci.save_dir(store, images[1:], layout)  # same name again replaces, not duplicates
    index = json.loads((layout / "index.json").read_text())
    assert [e["digest"] for e in index["manifests"]] == [img.manifest_digest for img, _ in images]
    child, tags = images[1]
    info = json.loads(skopeo("inspect", f"oci:{layout}:{tags[0].rsplit(':', 1)[1]}"))
    assert info["Layers"] == child.diff_ids


def test_own_oci_archive_round_trips(two_images, new_store):
    store, images, _ = two_images
    fresh = new_store()
    result = load(fresh, io.BytesIO(_save(store, images)))
    assert result == [(img.id, tags) for img, tags in images]
    for img, tags in images:
        again = fresh.image(img.id)
        assert again.config_bytes == img.config_bytes
        assert again.manifest_digest == img.manifest_digest
        assert again.tags == tags


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_load_skopeo_oci_archive(two_images, new_store, skopeo, tmp_path, compression):
    store, images, _ = two_images
    src = tmp_path / "docker.tar"
    out = io.BytesIO()
    docker.save(store, images[1:], out)
    src.write_bytes(out.getvalue())
    dst = tmp_path / "oci.tar"
    skopeo("copy", "-q", "--dest-compress-format", compression,
           f"docker-archive:{src}", f"oci-archive:{dst}:example.com/team/app:v1")
    with tarfile.open(dst) as tf:
        manifest_name = json.load(tf.extractfile("index.json"))["manifests"][0]["digest"]
        manifest = json.load(tf.extractfile("blobs/sha256/" + manifest_name[7:]))
    assert all(layer["mediaType"].endswith("+" + compression) for layer in manifest["layers"])
    fresh = new_store()
    with open(dst, "rb") as f:
        [(image_id, tags)] = load(fresh, f)
    assert tags == ["example.com/team/app:v1"]
    child = images[1][0]
    image = fresh.image(image_id)
    assert image.diff_ids == child.diff_ids  # layers stored decompressed again
    assert image.layer_digests == child.diff_ids
    for digest in image.layer_digests:
        assert fresh.blobs.read_bytes(digest) == store.blobs.read_bytes(digest)
    assert image.config["config"] == child.config["config"]


def _layout_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_nested_index_picks_the_host_platform(two_images, new_store):
    store, images, _ = two_images
    base = images[0][0]
    files = {"oci-layout": oci.LAYOUT}
    for digest in [base.manifest_digest, base.id, *base.layer_digests]:
        files[f"blobs/sha256/{digest[7:]}"] = store.blobs.read_bytes(digest)
    host = Platform.host()
    other = "s390x" if host.architecture != "s390x" else "ppc64le"
    missing = "sha256:" + "0" * 64  # never read: not this host's platform
    nested = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [
        {"mediaType": oci.OCI_MANIFEST, "digest": missing, "size": 10,
         "platform": {"os": "linux", "architecture": other}},
        {"mediaType": oci.OCI_MANIFEST, "digest": base.manifest_digest,
         "size": store.blobs.size(base.manifest_digest), "platform": host.to_json()},
    ]}).encode()
    files[f"blobs/sha256/{_sha(nested)[7:]}"] = nested
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": oci.OCI_INDEX, "digest": _sha(nested), "size": len(nested),
         "annotations": {"io.containerd.image.name": "docker.io/library/multi:1",
                         "org.opencontainers.image.ref.name": "1"}}]}).encode()
    fresh = new_store()
    assert load(fresh, io.BytesIO(_layout_tar(files))) == [(base.id, ["docker.io/library/multi:1"])]
    # An index with nothing for this host is an error naming the archive.
    nested_other = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": oci.OCI_MANIFEST, "digest": missing, "size": 10,
         "platform": {"os": "linux", "architecture": other}}]}).encode()
    files[f"blobs/sha256/{_sha(nested_other)[7:]}"] = nested_other
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": oci.OCI_INDEX, "digest": _sha(nested_other), "size": len(nested_other)}]}).encode()
    stream = io.BytesIO(_layout_tar(files))
    stream.name = "multi.tar"
    with pytest.raises(StoreError, match=f"multi.tar: .*no image for {host}"):
        load(new_store(), stream)


def test_tag_only_ref_name_gives_no_tag(two_images, new_store):
    store, images, _ = two_images
    data = _save(store, images[:1])
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        files = {m.name: tf.extractfile(m).read() for m in tf if m.isfile()}
    index = json.loads(files["index.json"])
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    files["index.json"] = json.dumps(index).encode()
    assert load(new_store(), io.BytesIO(_layout_tar(files))) == [(images[0][0].id, [])]

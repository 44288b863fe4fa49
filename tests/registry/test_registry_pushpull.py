"""Push and pull against a real registry (CNCF Distribution, no auth)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from dockyard.errors import ImageNotFound
from dockyard.image import Descriptor, Digest, Platform, index_json, mediatypes
from dockyard.reference import Reference
from dockyard.registry import (
    DigestMismatch,
    RegistryError,
    inspect_manifest,
    pull,
    push,
    repo_digests,
)
from dockyard.registry import progress as ev
from dockyard.registry.remote import open_repository


def actions(events, kind):
    return [e for e in events if e.action == kind]


def test_push_then_pull_into_another_store(plain_registry, store, base_image, fresh_store, options, unique):
    name = f"{plain_registry.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    events: list[ev.Event] = []
    digest = push(store, name, progress=events.append, options=options)

    assert Digest.parse(digest)
    assert actions(events, ev.PUSHED) and actions(events, ev.DIGEST)
    assert actions(events, ev.DIGEST)[0].detail.startswith(f"1: digest: {digest} size: ")

    manifest = inspect_manifest(name, options=options)
    assert manifest["mediaType"] == mediatypes.OCI_MANIFEST
    assert manifest["config"]["digest"] == base_image.id
    assert manifest["layers"][0]["mediaType"] == mediatypes.OCI_LAYER_GZIP

    pulled_events: list[ev.Event] = []
    image = pull(fresh_store, name, progress=pulled_events.append, options=options)
    assert image.id == base_image.id
    assert image.diff_ids == base_image.diff_ids
    assert fresh_store.blobs.read_bytes(image.diff_ids[0]) == store.blobs.read_bytes(base_image.diff_ids[0])
    assert fresh_store.lookup(name, str(Reference.parse(name))).id == image.id
    assert actions(pulled_events, ev.PULL_COMPLETE)
    assert repo_digests(fresh_store, image.id) == [f"{plain_registry.host}/{unique}@{digest}"]

    # a second pull finds every layer present and downloads nothing
    again: list[ev.Event] = []
    pull(fresh_store, name, progress=again.append, options=options)
    assert actions(again, ev.ALREADY_EXISTS) and not actions(again, ev.DOWNLOADING)
    assert "Image is up to date" in actions(again, ev.STATUS)[-1].detail


def test_second_push_compresses_nothing_and_other_repo_mounts(plain_registry, store, base_image,
                                                              options, unique):
    first = f"{plain_registry.host}/{unique}/a:1"
    store.tag(base_image.id, str(Reference.parse(first)))
    push(store, first, options=options)

    events: list[ev.Event] = []
    push(store, first, progress=events.append, options=options)
    assert not actions(events, ev.COMPRESSING) and not actions(events, ev.PUSHING)
    assert actions(events, ev.LAYER_EXISTS)

    second = f"{plain_registry.host}/{unique}/b:1"
    store.tag(base_image.id, str(Reference.parse(second)))
    events = []
    push(store, second, progress=events.append, options=options)
    assert not actions(events, ev.COMPRESSING)
    mounted = actions(events, ev.MOUNTED)
    assert mounted and mounted[0].detail == f"{unique}/a"


def test_pull_then_push_elsewhere_mounts_without_compressing(plain_registry, store, base_image,
                                                             fresh_store, options, unique):
    source = f"{plain_registry.host}/{unique}/src:1"
    store.tag(base_image.id, str(Reference.parse(source)))
    push(store, source, options=options)
    pull(fresh_store, source, options=options)

    target = f"{plain_registry.host}/{unique}/dst:1"
    fresh_store.tag(base_image.id, str(Reference.parse(target)))
    events: list[ev.Event] = []
    push(fresh_store, target, progress=events.append, options=options)
    assert actions(events, ev.MOUNTED) and not actions(events, ev.COMPRESSING)


def test_pull_by_digest(plain_registry, store, base_image, fresh_store, options, unique):
    name = f"{plain_registry.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    digest = push(store, name, options=options)
    by_digest = f"{plain_registry.host}/{unique}@{digest}"
    image = pull(fresh_store, by_digest, options=options)
    assert image.id == base_image.id
    assert fresh_store.lookup(by_digest, str(Reference.parse(by_digest))).id == image.id


def test_chunked_upload_honours_min_chunk_and_relative_location(basic_registry, store, base_image,
                                                                fresh_store, options, unique):
    """basic_registry answers with relative Locations; small limits force PATCH chunks."""
    from dockyard.registry import login

    login(basic_registry.host, "alice", "wonderland", options=options)
    chunky = replace(options, monolithic_max=64 << 10, chunk_size=100 << 10)
    name = f"{basic_registry.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    push(store, name, options=chunky)
    image = pull(fresh_store, name, options=options)
    assert image.diff_ids == base_image.diff_ids


def test_chunk_min_length_from_registry(fault_proxy, store, base_image, options, unique):
    fault_proxy.chunk_min = 300 << 10
    chunky = replace(options, monolithic_max=1, chunk_size=64 << 10)
    name = f"{fault_proxy.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    push(store, name, options=chunky)
    sessions: dict[str, list[int]] = {}
    for method, path, size, *_ in fault_proxy.log:
        if method == "PATCH":
            sessions.setdefault(path.split("/uploads/")[1].split("?")[0], []).append(size)
    assert any(len(sizes) > 1 for sizes in sessions.values()), "expected a chunked upload"
    # every chunk but the last of each upload is at least the registry's minimum
    assert all(size >= 300 << 10 for sizes in sessions.values() for size in sizes[:-1])


def test_multi_platform_push_and_pull_picks_platform(plain_registry, store, base_image, fresh_store,
                                                     options, unique):
    host = plain_registry.host
    images = {}
    for arch in ("arm64", "amd64"):
        config = dict(base_image.config, architecture=arch)
        images[arch] = store.put_image(json.dumps(config).encode())
    name = f"{host}/{unique}:multi"
    store.put_index(list(images.values()), tags=[str(Reference.parse(name))])
    digest = push(store, name, options=options)

    index = inspect_manifest(name, options=options)
    assert index["mediaType"] == mediatypes.OCI_INDEX
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["arm64", "amd64"]
    repo = open_repository(Reference.parse(name), options)
    assert str(repo.get_manifest("multi").digest) == digest

    host_arch = Platform.host().architecture
    if host_arch in images:
        assert pull(fresh_store, name, options=options).id == images[host_arch].id
    arm = pull(fresh_store, name, platform="linux/arm64", options=options)
    assert arm.id == images["arm64"].id
    assert fresh_store.lookup(name, str(Reference.parse(name))).id == arm.id
    with pytest.raises(RegistryError, match="no matching manifest for linux/s390x"):
        pull(fresh_store, name, platform="linux/s390x", options=options)


def test_pull_index_made_by_hand(plain_registry, store, base_image, fresh_store, options, unique):
    """An index whose entries were pushed by digest; Docker's manifest-list type."""
    host = plain_registry.host
    name = f"{host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    digest = push(store, name, options=options)
    repo = open_repository(Reference.parse(name), options, push=True)
    size = len(repo.get_manifest(digest).data)
    host_platform = Platform.host()
    entries = [Descriptor(mediatypes.OCI_MANIFEST, digest, size, platform=host_platform)]
    repo.put_manifest("list", index_json(entries, media_type=mediatypes.DOCKER_MANIFEST_LIST),
                      mediatypes.DOCKER_MANIFEST_LIST)
    assert pull(fresh_store, f"{host}/{unique}:list", options=options).id == base_image.id


def test_wrong_blob_digest_is_refused_and_nothing_kept(plain_registry, store, base_image, fresh_store,
                                                       options, unique):
    name = f"{plain_registry.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    push(store, name, options=options)
    layer = inspect_manifest(name, options=options)["layers"][0]["digest"]
    path = plain_registry.blob_path(layer)
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))  # same size, other bytes
        with pytest.raises(DigestMismatch) as info:
            pull(fresh_store, name, options=options)
        assert plain_registry.host in str(info.value) and unique in str(info.value)
        assert not fresh_store.blobs.has(base_image.diff_ids[0])
        assert not fresh_store.blobs.has(layer)
        assert fresh_store.images() == []
        assert list(fresh_store.tmp_dir.iterdir()) == []
    finally:
        path.write_bytes(original)


def test_wrong_manifest_digest_is_refused(fault_proxy, store, base_image, fresh_store, options, unique):
    name = f"{fault_proxy.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    digest = push(store, name, options=options)
    fault_proxy.add("GET", r"/manifests/", "corrupt", times=10)
    with pytest.raises(DigestMismatch, match=digest.split(":")[1][:12]):
        pull(fresh_store, f"{fault_proxy.host}/{unique}@{digest}", options=options)
    assert fresh_store.images() == []


def test_missing_image_errors_name_registry_repository_and_status(plain_registry, fresh_store, options,
                                                                  unique):
    with pytest.raises(RegistryError) as info:
        pull(fresh_store, f"{plain_registry.host}/{unique}:nope", options=options)
    text = str(info.value)
    assert plain_registry.host in text and unique in text and "404" in text
    assert "MANIFEST_UNKNOWN" in text


def test_push_unknown_local_image(plain_registry, fresh_store, options):
    with pytest.raises(ImageNotFound, match="does not exist locally"):
        push(fresh_store, f"{plain_registry.host}/nothing:here", options=options)

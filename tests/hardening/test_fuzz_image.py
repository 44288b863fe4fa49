"""Fuzzing image documents: manifests, indexes and configs (and the digests,
platforms and descriptors in them), whole or mutated from the OCI spec's
examples, and the manifest.json/index.json of an archive given to `load`.
The answer is a value or an ImageFormatError (a store or layer error for
`load`), one line, quickly; a decoded document encodes back to itself."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from hardening_lib import TESTS, clear_errors, corpus_files, fuzz_settings, sha256
from hypothesis import example, given
from hypothesis import strategies as st

from dockyard.errors import DockyardError, LayerError, StoreError
from dockyard.image import (
    Digest,
    ImageFormatError,
    Platform,
    parse_config,
    parse_index,
    parse_manifest,
)
from dockyard.image.descriptor import Descriptor
from dockyard.store import Store

FUZZ = fuzz_settings()
SPEC = TESTS / "data" / "oci-image-spec"


def _seed_documents() -> list[object]:
    docs: list[object] = []
    for path in sorted((SPEC / "examples").glob("*.json")):
        docs.append(json.loads(path.read_text()))
    for path in sorted((SPEC / "fixtures").glob("*.json")):
        for case in json.loads(path.read_text()).get("cases", []):
            try:
                docs.append(json.loads(case["body"]))
            except (KeyError, ValueError):
                pass
    for path in corpus_files("image"):
        docs.append(json.loads(path.read_text()))
    return docs


SEEDS = _seed_documents()
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from([
                        "sha256:" + "a" * 64, "sha512:" + "b" * 128, "sha256:" + "A" * 64,
                        "application/vnd.oci.image.manifest.v1+json",
                        "application/vnd.oci.image.index.v1+json",
                        "application/vnd.docker.distribution.manifest.v2+json",
                        "application/vnd.docker.distribution.manifest.list.v2+json",
                        "application/vnd.oci.image.layer.v1.tar+zstd", "linux", "amd64", "arm64",
                        "v8", "2020-09-13T12:26:40Z", "layers", 2, 1, -1, 2**63, "", "\u0000"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from([
                               "schemaVersion", "mediaType", "config", "layers", "manifests",
                               "digest", "size", "platform", "annotations", "urls", "subject",
                               "artifactType", "data", "architecture", "os", "variant",
                               "os.version", "os.features", "rootfs", "diff_ids", "type",
                               "history", "created", "Env", "Cmd", "Entrypoint", "ExposedPorts",
                               "Volumes", "Labels", "User", "WorkingDir", "Healthcheck", "x",
                           ]) | st.text(max_size=6), inner, max_size=6), max_leaves=25)


@st.composite
def mutated(draw):
    """A spec example with one value somewhere replaced, removed or added."""
    doc = json.loads(json.dumps(draw(st.sampled_from(SEEDS))))
    for _ in range(draw(st.integers(1, 3))):
        node, path = doc, []
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            key = draw(st.sampled_from(list(node) if isinstance(node, dict) else range(len(node))))
            path.append((node, key))
            node = node[key]
        if not path:
            continue
        parent, key = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[key] = draw(json_values)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return doc


def decode_all(data: bytes | str) -> None:
    for parse in (parse_manifest, parse_index):
        doc = clear_errors(parse, data)
        if not isinstance(doc, DockyardError):
            assert parse(doc.to_json()) == doc  # encodes back to itself
        else:
            assert isinstance(doc, ImageFormatError)
    result = clear_errors(parse_config, data)
    assert not isinstance(result, DockyardError) or isinstance(result, ImageFormatError)


def _dump(doc) -> str:
    return json.dumps(doc, allow_nan=True)


@FUZZ
@given(json_values.map(_dump) | mutated().map(_dump))
@example('{"schemaVersion": 2, "config": {"digest": "sha256:' + "a" * 64 + '", "size": 1e400}}')
@example('{"schemaVersion": 2, "manifests": [{"digest": "sha256:", "size": -1}]}')
@example('{"schemaVersion": 2.0, "layers": null, "config": {}}')
@example('{"schemaVersion": true}')
@example('[' * 200 + ']' * 200)
@example('{"a": ' * 200 + '1' + '}' * 200)
@example('{"rootfs": {"type": "layers", "diff_ids": [1]}, "architecture": "amd64", "os": "linux"}')
@example('"\\ud800"')
@example('{"created": "0000-00-00T00:00:00Z", "architecture": "amd64", "os": "linux"}')
def test_fuzz_image_documents(text):
    decode_all(text)


@FUZZ
@given(st.binary(max_size=200))
@example(b"\xef\xbb\xbf{}")
@example(b"\xff\xfe{\x00}\x00")
def test_fuzz_image_bytes(data):
    decode_all(data)


@FUZZ
@given(st.text(max_size=80) | st.sampled_from(["sha256:" + "a" * 64, "linux/arm64/v8", "linux/arm/v7",
                                               "windows/amd64", "sha256+b64:" + "a" * 64]))
@example("sha256:" + "a" * 100000)
@example("/" * 1000)
def test_fuzz_digests_and_platforms(text):
    for parse in (Digest.parse, Platform.parse):
        result = clear_errors(parse, text)
        assert not isinstance(result, DockyardError) or isinstance(result, ImageFormatError)
    result = clear_errors(Descriptor.from_json, {"mediaType": text, "digest": text, "size": 1})
    assert not isinstance(result, DockyardError) or isinstance(result, ImageFormatError)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    """One store for all the examples (module scope: hypothesis reruns the test body)."""
    return tmp_path_factory.mktemp("fuzz-store")
_LAYER = b"\0" * 1024
_CONFIG = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": [sha256(_LAYER)]}}).encode()


def archive(index_name: str, index: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in ((sha256(_CONFIG)[7:] + ".json", _CONFIG), ("layer.tar", _LAYER),
                           ("blobs/sha256/" + sha256(_CONFIG)[7:], _CONFIG),
                           ("blobs/sha256/" + sha256(_LAYER)[7:], _LAYER), (index_name, index)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


docker_manifests = st.lists(st.fixed_dictionaries({}, optional={
    "Config": st.sampled_from([sha256(_CONFIG)[7:] + ".json", "layer.tar", "../x", "/etc/passwd", ""])
    | json_values,
    "Layers": st.lists(st.sampled_from(["layer.tar", "../layer.tar", "/layer.tar", "missing",
                                        sha256(_CONFIG)[7:] + ".json"]), max_size=3) | json_values,
    "RepoTags": st.lists(st.sampled_from(["a:b", "A", "busybox", "", "x@sha256:" + "a" * 64]),
                         max_size=2) | json_values,
}), max_size=3)


def load_clearly(store_dir: Path, data: bytes) -> None:
    """A load: images, or a clear error that leaves no blob or ingest file behind."""
    from dockyard.archive import load

    store = Store(store_dir)
    try:
        before = set(store.blobs.all())
        result = clear_errors(load, store, io.BytesIO(data))
        if isinstance(result, DockyardError):
            assert isinstance(result, (StoreError, LayerError, ImageFormatError)), type(result)
            assert set(store.blobs.all()) <= before | {r[0] for r in store.db.execute(
                "SELECT id FROM images")} | set(store.referenced_blobs())
        assert list(store.blobs.ingest_dir.iterdir()) == []
    finally:
        store.db.close()


@FUZZ
@given(st.one_of(docker_manifests.map(lambda m: ("manifest.json", json.dumps(m).encode())),
                 json_values.map(lambda v: ("manifest.json", _dump(v).encode())),
                 mutated().map(lambda v: ("index.json", _dump(v).encode())),
                 st.binary(max_size=64).map(lambda b: ("index.json", b))))
def test_fuzz_archive_indexes(store_dir, item):
    """A load of any manifest.json or index.json."""
    load_clearly(store_dir, archive(*item))


_MANIFEST = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": sha256(_CONFIG), "size": len(_CONFIG)},
             "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                         "digest": sha256(_LAYER), "size": len(_LAYER)}]}
MEDIA = ["application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
         "application/vnd.docker.distribution.manifest.v2+json", "text/plain"]


def oci_archive(manifest: bytes, media: str) -> bytes:
    """An OCI layout whose index.json names one (hostile) manifest blob."""
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": media, "digest": sha256(manifest), "size": len(manifest)}]}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index),
                           ("blobs/sha256/" + sha256(_CONFIG)[7:], _CONFIG),
                           ("blobs/sha256/" + sha256(_LAYER)[7:], _LAYER),
                           ("blobs/sha256/" + sha256(manifest)[7:], manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@st.composite
def hostile_manifests(draw):
    doc = json.loads(json.dumps(_MANIFEST))
    where = draw(st.sampled_from(["config", "layers", "mediaType", "schemaVersion", "manifests",
                                  "config.digest", "config.size", "layer", "layer.digest"]))
    value = draw(json_values)
    if where == "layer":
        doc["layers"][0] = value
    elif "." in where:
        key, field = where.split(".")
        (doc["config"] if key == "config" else doc["layers"][0])[field] = value
    else:
        doc[where] = value
    return doc


@FUZZ
@given(hostile_manifests(), st.sampled_from(MEDIA))
@example(_MANIFEST, MEDIA[0])
@example({**_MANIFEST, "layers": [{**_MANIFEST["layers"][0], "digest": "sha256:" + "0" * 64}]}, MEDIA[0])
@example({**_MANIFEST, "config": {**_MANIFEST["config"], "digest": "sha256:../../x"}}, MEDIA[0])
def test_fuzz_archive_manifests(store_dir, manifest, media):
    """A load whose index names a hostile manifest (or index) blob."""
    load_clearly(store_dir, oci_archive(json.dumps(manifest).encode(), media))


@pytest.mark.parametrize("path", corpus_files("archive"), ids=lambda p: p.name)
def test_archive_corpus(path: Path, tmp_path):
    case = json.loads(path.read_text())
    if "index" in case:
        load_clearly(tmp_path, archive("index.json", json.dumps(case["index"]).encode()))
    else:
        load_clearly(tmp_path, oci_archive(json.dumps(case["manifest"]).encode(), case["media"]))


@pytest.mark.parametrize("text", ["[" * 100000 + "]" * 100000, '{"a":' * 50000 + "1" + "}" * 50000],
                         ids=["arrays", "objects"])
def test_deeply_nested_json_is_a_format_error(text):
    for parse in (parse_manifest, parse_index, parse_config):
        assert isinstance(clear_errors(parse, text), ImageFormatError)


@pytest.mark.parametrize("path", corpus_files("image"), ids=lambda p: p.name)
def test_image_corpus(path: Path):
    decode_all(path.read_bytes())

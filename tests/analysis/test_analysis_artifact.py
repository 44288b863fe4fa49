"""The SBOM artifact in a real registry (CNCF Distribution, Debian's
``docker-registry``): pushed after the image, with the pushed manifest as
its subject, and listed under the referrers fallback tag for registries
without the referrers API. This is the sequence `build --sbom` performs."""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import socket
import subprocess
import time

import pytest
from analysis_images import DPKG_STATUS

from dockyard import api
from dockyard.analysis import referrers_index, referrers_tag, sbom_artifact
from dockyard.image import mediatypes
from dockyard.reference import Reference
from dockyard.registry import RegistryOptions
from dockyard.registry.push import push
from dockyard.registry.remote import open_repository

REGISTRY = shutil.which("docker-registry")


@pytest.fixture
def registry(tmp_path):
    if REGISTRY is None:
        pytest.skip("docker-registry (CNCF Distribution) is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {tmp_path / 'registry'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n  secret: dockyard-tests\n")
    log = open(tmp_path / "registry.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/v2/")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.time() < deadline, "docker-registry did not start"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _ranges(data: bytes):
    def read_range(offset: int, length: int):
        yield data[offset:offset + length]
    return read_range


def test_attach_sbom_to_a_pushed_image(registry, store, base_image, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "no-config.toml"))
    ctx = tmp_path / "ctx"
    (ctx / "status").parent.mkdir()
    (ctx / "status").write_text(DPKG_STATUS)
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nCOPY status /var/lib/dpkg/status\n")
    name = f"{registry}/sbom/demo:1"
    image = api.build(ctx, store=store, tags=[name])
    digest = push(store, name)

    ref = Reference.parse(name)
    repo = open_repository(ref, RegistryOptions(), push=True)
    try:
        pushed = repo.get_manifest(digest)
        subject = {"mediaType": mediatypes.OCI_MANIFEST, "digest": digest, "size": len(pushed.data)}
        manifest, blobs = sbom_artifact(store, image, "spdx-json", subject=subject)
        for blob_digest, data in blobs.items():
            if repo.blob_size(blob_digest) is None:
                repo.upload_blob(blob_digest, len(data), _ranges(data))
        artifact_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        assert str(repo.put_manifest(artifact_digest, manifest, mediatypes.OCI_MANIFEST)) == \
            artifact_digest
        # Distribution 2.8 has no referrers API: the fallback tag lists the artifact
        tag = referrers_tag(digest)
        repo.put_manifest(tag, referrers_index(manifest), mediatypes.OCI_INDEX)

        back = json.loads(repo.get_manifest(artifact_digest).data)
        assert back["subject"] == subject
        assert back["artifactType"] == "application/spdx+json"
        (layer,) = back["layers"]
        sbom = json.loads(repo.read_blob(layer["digest"], layer["size"]))
        assert {p["name"] for p in sbom["packages"]} >= {"libfoo1", "bar-utils"}
        assert sbom["packages"][0]["versionInfo"] == digest  # the image as pushed
        index = json.loads(repo.get_manifest(tag).data)
        assert [m["digest"] for m in index["manifests"]] == [artifact_digest]
        assert index["manifests"][0]["artifactType"] == "application/spdx+json"
        # the image itself is untouched
        assert str(repo.head_manifest(ref.tag)) == digest
    finally:
        repo.registry.close()


def test_referrers_index_merges():
    a = json.dumps({"mediaType": mediatypes.OCI_MANIFEST, "artifactType": "application/spdx+json",
                    "annotations": {"k": "v"}}).encode()
    b = json.dumps({"mediaType": mediatypes.OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.example+json"}}).encode()
    one = referrers_index(a)
    two = referrers_index(b, one)
    index = json.loads(two)
    assert index["mediaType"] == mediatypes.OCI_INDEX and index["schemaVersion"] == 2
    assert [m["artifactType"] for m in index["manifests"]] == ["application/spdx+json",
                                                              "application/vnd.example+json"]
    assert index["manifests"][0]["annotations"] == {"k": "v"}
    again = json.loads(referrers_index(a, two))
    assert len(again["manifests"]) == 2  # listed once
    assert referrers_tag("sha256:" + "ab" * 32) == "sha256-" + "ab" * 32

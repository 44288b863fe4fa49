"""`dockyard sbom`: SPDX 2.3 and CycloneDX 1.5 JSON of the packages found in
an image built by dockyard (dpkg status, apk database, Python dist-info),
and the OCI artifact manifest that attaches the SBOM to the image."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from dockyard import api
from dockyard.analysis import MEDIA_TYPES, sbom_artifact, sbom_document
from dockyard.analysis.licenses import KNOWN_IDS
from dockyard.cli.inspect_cmds import sbom
from dockyard.errors import DockyardError
from dockyard.image import mediatypes, parse_manifest

EXPECTED = {  # (type, name) -> (version, purl)
    ("deb", "libfoo1"): ("1.4-2+deb12u1", "pkg:deb/debian/libfoo1@1.4-2%2Bdeb12u1?arch=amd64&distro=debian-12"),
    ("deb", "bar-utils"): ("2:0.9.1-1", "pkg:deb/debian/bar-utils@2%3A0.9.1-1?arch=all&distro=debian-12"),
    # the image says it is Debian: apk packages keep Alpine's namespace, no distro
    ("apk", "musl"): ("1.2.4-r2", "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64"),
    ("apk", "zlib"): ("1.3.1-r0", "pkg:apk/alpine/zlib@1.3.1-r0?arch=x86_64"),
    ("python", "foo"): ("1.2", "pkg:pypi/foo@1.2"),
}
SPDX_ID = re.compile(r"^SPDXRef-[A-Za-z0-9.-]+$")
DATA = Path(__file__).resolve().parent.parent / "data" / "oci-image-spec"


@pytest.fixture(autouse=True)
def _fixed_time(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")


def _doc(store, fmt, name="pkgs:1"):
    return sbom_document(store, api.get_image(store, name), fmt)


def test_spdx_packages(analysis_store):
    doc = _doc(analysis_store, "spdx-json")
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["dataLicense"] == "CC0-1.0"
    assert doc["SPDXID"] == "SPDXRef-DOCUMENT"
    assert doc["creationInfo"] == {"created": "2023-11-14T22:13:20Z", "creators": ["Tool: dockyard-0.1.0"]}
    assert doc["documentNamespace"].startswith("https://")
    found = {}
    for p in doc["packages"]:
        refs = [r["referenceLocator"] for r in p.get("externalRefs", []) if r["referenceType"] == "purl"]
        found[p["name"]] = (p["versionInfo"], refs[0] if refs else None, p)
    for (_, name), (version, purl) in EXPECTED.items():
        assert found[name][:2] == (version, purl), name
    assert "gone-pkg" not in found  # "deinstall ok config-files" is not installed
    root = found["pkgs:1"][2]
    assert root["SPDXID"] == "SPDXRef-Image" and root["primaryPackagePurpose"] == "CONTAINER"
    assert root["versionInfo"] == api.get_image(analysis_store, "pkgs:1").manifest_digest
    assert found["debian"][2]["primaryPackagePurpose"] == "OPERATING-SYSTEM"
    libfoo = found["libfoo1"][2]
    assert libfoo["supplier"] == "Organization: Foo Maintainers (foo@example.org)"
    assert libfoo["homepage"] == "https://foo.example.org"
    assert libfoo["summary"] == "the foo library"
    assert "/var/lib/dpkg/status" in libfoo["sourceInfo"]
    assert found["musl"][2]["licenseDeclared"] == "MIT"
    assert found["zlib"][2]["licenseDeclared"] == "Zlib"
    assert found["foo"][2]["licenseDeclared"] == "MIT"
    assert found["foo"][2]["supplier"] == "Person: Jane Doe"
    assert found["bar-utils"][2]["licenseDeclared"] == "NOASSERTION"


def test_spdx_structure(analysis_store):
    doc = _doc(analysis_store, "spdx")
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(ids) == len(set(ids)) == 2 + len(EXPECTED)  # image, OS, packages
    required = ("name", "SPDXID", "downloadLocation", "filesAnalyzed", "licenseConcluded",
                "licenseDeclared", "copyrightText", "versionInfo", "supplier")
    for p in doc["packages"]:
        assert SPDX_ID.match(p["SPDXID"]), p["SPDXID"]
        assert all(k in p for k in required), p
        assert p["filesAnalyzed"] is False
    rels = doc["relationships"]
    assert {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
            "relatedSpdxElement": "SPDXRef-Image"} in rels
    contained = {r["relatedSpdxElement"] for r in rels if r["relationshipType"] == "CONTAINS"}
    assert contained == set(ids) - {"SPDXRef-Image"}
    assert all(r["spdxElementId"] in set(ids) | {"SPDXRef-DOCUMENT"} for r in rels)


def test_cyclonedx(analysis_store):
    doc = _doc(analysis_store, "cyclonedx-json")
    assert (doc["bomFormat"], doc["specVersion"], doc["version"]) == ("CycloneDX", "1.5", 1)
    assert re.match(r"^urn:uuid:[0-9a-f-]{36}$", doc["serialNumber"])
    meta = doc["metadata"]
    assert meta["timestamp"] == "2023-11-14T22:13:20Z"
    assert meta["component"]["type"] == "container" and meta["component"]["name"] == "pkgs:1"
    assert meta["tools"]["components"][0]["name"] == "dockyard"
    libs = {c["name"]: c for c in doc["components"] if c["type"] == "library"}
    assert {(k[1], v[0], v[1]) for k, v in EXPECTED.items()} == \
        {(c["name"], c["version"], c["purl"]) for c in libs.values()}
    osc = [c for c in doc["components"] if c["type"] == "operating-system"]
    assert osc == [{"type": "operating-system", "bom-ref": "os", "name": "debian", "version": "12",
                    "description": "Debian GNU/Linux 12 (bookworm)"}]
    refs = [c["bom-ref"] for c in doc["components"]]
    assert len(refs) == len(set(refs))
    assert libs["musl"]["licenses"] == [{"license": {"id": "MIT"}}]
    for c in libs.values():
        for lic in c.get("licenses", []):
            assert lic.get("license", {}).get("id", "MIT") in KNOWN_IDS
    props = {p["name"]: p["value"] for p in libs["foo"]["properties"]}
    assert props["dockyard:package:type"] == "python"
    assert props["dockyard:location"] == "/usr/lib/python3.11/site-packages/foo-1.2.dist-info/METADATA"
    assert props["dockyard:layer"] in api.get_image(analysis_store, "pkgs:1").diff_ids


def test_images_without_packages(analysis_store):
    doc = _doc(analysis_store, "spdx", name="busybox:latest")
    assert [p["SPDXID"] for p in doc["packages"]] == ["SPDXRef-Image"]
    assert _doc(analysis_store, "cyclonedx", name="busybox:latest")["components"] == []


def test_documents_are_reproducible(analysis_store):
    assert _doc(analysis_store, "spdx") == _doc(analysis_store, "spdx")
    assert _doc(analysis_store, "cyclonedx") == _doc(analysis_store, "cyclonedx")
    assert _doc(analysis_store, "spdx")["documentNamespace"] != \
        _doc(analysis_store, "spdx", "pkgs:2")["documentNamespace"]


def test_cli(analysis_store, tmp_path):
    runner = CliRunner()
    obj = {"store": analysis_store}
    res = runner.invoke(sbom, ["pkgs:1"], obj=obj)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["spdxVersion"] == "SPDX-2.3"
    out = tmp_path / "bom.json"
    res = runner.invoke(sbom, ["pkgs:2", "--format", "cyclonedx-json", "-o", str(out)], obj=obj)
    assert res.exit_code == 0, res.output
    names = {c["name"] for c in json.loads(out.read_text())["components"]}
    assert "newtool" in names and "bar-utils" not in names
    with pytest.raises(DockyardError, match="unknown SBOM format"):
        sbom_document(analysis_store, api.get_image(analysis_store, "pkgs:1"), "xml")


def _manifest_schema_errors(doc: dict) -> list[str]:
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from referencing.jsonschema import DRAFT4

    aliases = json.loads((DATA / "schema_aliases.json").read_text())["aliases"]
    resources = []
    for name, uris in aliases.items():
        resource = DRAFT4.create_resource(json.loads((DATA / name).read_text()))
        resources += [(uri, resource) for uri in uris]
    registry = referencing.Registry().with_resources(resources)
    schema = json.loads((DATA / "image-manifest-schema.json").read_text())
    validator = jsonschema.Draft4Validator(schema, registry=registry)
    return [e.message for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("fmt", ["spdx-json", "cyclonedx-json"])
def test_artifact_manifest(analysis_store, fmt):
    image = api.get_image(analysis_store, "pkgs:1")
    data, blobs = sbom_artifact(analysis_store, image, fmt)
    doc = json.loads(data)
    assert _manifest_schema_errors(doc) == []
    manifest = parse_manifest(data)
    assert manifest.media_type == mediatypes.OCI_MANIFEST
    assert manifest.artifact_type == MEDIA_TYPES[fmt]
    assert manifest.subject is not None
    assert str(manifest.subject.digest) == image.manifest_digest
    assert manifest.subject.size == len(analysis_store.blobs.read_bytes(image.manifest_digest))
    assert manifest.subject.media_type == mediatypes.OCI_MANIFEST
    # the empty config, as OCI 1.1 artifacts carry it
    assert manifest.config.media_type == "application/vnd.oci.empty.v1+json"
    assert manifest.config.size == 2 and blobs[str(manifest.config.digest)] == b"{}"
    assert base64.b64decode(doc["config"]["data"]) == b"{}"
    (layer,) = manifest.layers
    assert layer.media_type == MEDIA_TYPES[fmt]
    body = blobs[str(layer.digest)]
    assert "sha256:" + hashlib.sha256(body).hexdigest() == str(layer.digest) and layer.size == len(body)
    assert json.loads(body) == sbom_document(analysis_store, image, fmt)
    assert set(blobs) == {str(manifest.config.digest), str(layer.digest)}
    assert doc["annotations"]["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    # same inputs, same bytes: pushing twice makes one artifact
    assert sbom_artifact(analysis_store, image, fmt)[0] == data


def test_artifact_for_a_pushed_manifest(analysis_store):
    """A pushed image has its own manifest (compressed layers): the subject is the caller's."""
    image = api.get_image(analysis_store, "pkgs:1")
    subject = {"mediaType": mediatypes.OCI_MANIFEST, "digest": "sha256:" + "ab" * 32, "size": 1234}
    data, blobs = sbom_artifact(analysis_store, image, "spdx", subject=subject)
    doc = json.loads(data)
    assert doc["subject"] == subject
    # the document names the image by the pushed manifest, as the subject does
    sbom = json.loads(blobs[doc["layers"][0]["digest"]])
    (root,) = [p for p in sbom["packages"] if p["SPDXID"] == "SPDXRef-Image"]
    assert root["versionInfo"] == subject["digest"]

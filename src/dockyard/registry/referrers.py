"""Attaching artifacts (an SBOM, a signature) to an image in a registry.

The artifact is a manifest whose `subject` names the image. Registries with
the OCI 1.1 referrers API index it themselves; for the others (Distribution
2.8 among them) the referrers tag schema is kept up to date: an index at
tag `sha256-<hex>` listing every artifact of that image.
"""

from __future__ import annotations

import hashlib
import json

from ..image import mediatypes
from ..reference import Reference
from .errors import RegistryHTTPError
from .options import RegistryOptions, load_options
from .remote import open_repository


def referrers_tag(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}-{hexpart}"


def _ranges(data: bytes):
    def read_range(offset: int, length: int):
        yield data[offset:offset + length]
    return read_range


def subject_of(name: str, digest: str, options: RegistryOptions | None = None) -> dict:
    """The descriptor of a pushed manifest, as an artifact's `subject`."""
    ref = Reference.parse(name)
    repo = open_repository(ref, options or load_options())
    try:
        fetched = repo.get_manifest(digest)
        media_type = json.loads(fetched.data).get("mediaType") or mediatypes.OCI_MANIFEST
        return {"mediaType": media_type, "digest": digest, "size": len(fetched.data)}
    finally:
        repo.registry.close()


def attach(name: str, subject_digest: str, manifest: bytes, blobs: dict[str, bytes],
           options: RegistryOptions | None = None) -> str:
    """Push an artifact manifest and its blobs next to `name`; returns its digest."""
    ref = Reference.parse(name)
    repo = open_repository(ref, options or load_options(), push=True)
    try:
        for digest, data in blobs.items():
            if repo.blob_size(digest) is None:
                repo.upload_blob(digest, len(data), _ranges(data))
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        repo.put_manifest(digest, manifest, mediatypes.OCI_MANIFEST)
        response = repo.send("GET", repo.url_for(f"referrers/{subject_digest}"), "list referrers")
        supported = response.status == 200
        response.close()
        if supported:
            return digest            # the registry keeps its own referrers index
        tag = referrers_tag(subject_digest)
        artifact = json.loads(manifest)
        entry = {"mediaType": mediatypes.OCI_MANIFEST, "digest": digest, "size": len(manifest)}
        if artifact.get("artifactType"):
            entry["artifactType"] = artifact["artifactType"]
        if artifact.get("annotations"):
            entry["annotations"] = artifact["annotations"]
        try:
            index = json.loads(repo.get_manifest(tag).data)
        except RegistryHTTPError:
            index = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": []}
        index["manifests"] = [m for m in index.get("manifests", []) if m.get("digest") != digest] + [entry]
        data = json.dumps(index, separators=(",", ":")).encode()
        repo.put_manifest(tag, data, mediatypes.OCI_INDEX)
        return digest
    finally:
        repo.registry.close()

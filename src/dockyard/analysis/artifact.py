"""The OCI 1.1 artifact that attaches an SBOM to an image in a registry.

The artifact is an image manifest with ``artifactType`` set to the SBOM's
media type, the empty config (``{}``), one layer holding the document, and
``subject`` naming the image's manifest. Registries with the referrers API
index it themselves; for the others, the distribution spec's fallback is an
image index tagged ``sha256-<hex of the subject digest>`` that lists the
referrers; referrers_tag and referrers_index make that tag's content.
"""

from __future__ import annotations

import hashlib
import json

from ..image import Descriptor, Digest, Manifest, mediatypes
from ..store import Image, Store
from .sbom import (
    FILE_NAMES,
    MEDIA_TYPES,
    SPDX_JSON,
    document_bytes,
    sbom_document,
    sbom_format,
    timestamp,
)

EMPTY_JSON = b"{}"


def sbom_artifact(store: Store, image: Image, fmt: str = SPDX_JSON, *,
                  subject: Descriptor | dict | None = None, document: dict | None = None,
                  name: str | None = None, created: str | None = None) -> tuple[bytes, dict[str, bytes]]:
    """An OCI 1.1 artifact manifest carrying the image's SBOM, and its blobs.

    ``subject`` is the descriptor of the manifest the SBOM describes; by
    default the local manifest. A pushed image has another manifest (its
    layers are compressed on the way out): pass the pushed descriptor then.
    Returns (manifest bytes, {digest: bytes}) with the empty config blob and
    the document blob; push the blobs, then the manifest by its digest.
    """
    fmt = sbom_format(fmt)
    created = timestamp(created)
    media_type = MEDIA_TYPES[fmt]
    if subject is None:
        subject = Descriptor(mediatypes.OCI_MANIFEST, Digest.parse(image.manifest_digest),
                             store.blobs.size(image.manifest_digest))
    elif isinstance(subject, dict):
        subject = Descriptor(subject.get("mediaType", mediatypes.OCI_MANIFEST),
                             Digest.parse(subject["digest"]),
                             int(subject["size"]))
    if document is None:
        document = sbom_document(store, image, fmt, name=name, created=created,
                                 digest=str(subject.digest))
    body = document_bytes(document)
    config = Descriptor(mediatypes.OCI_EMPTY, Digest.parse(_digest(EMPTY_JSON)), len(EMPTY_JSON),
                        data=EMPTY_JSON)
    layer = Descriptor(media_type, Digest.parse(_digest(body)), len(body),
                       annotations={"org.opencontainers.image.title": FILE_NAMES[fmt]})
    manifest = Manifest(config, (layer,), mediatypes.OCI_MANIFEST, subject=subject,
                        artifact_type=media_type,
                        annotations={"org.opencontainers.image.created": created})
    return manifest.to_json(), {_digest(EMPTY_JSON): EMPTY_JSON, _digest(body): body}


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def referrers_tag(subject_digest: str) -> str:
    """The fallback tag listing the referrers of a manifest: sha256-<hex>."""
    algorithm, _, hexpart = subject_digest.partition(":")
    return f"{algorithm}-{hexpart}"[:128]


def referrers_index(artifact: bytes, existing: bytes | None = None) -> bytes:
    """The referrers index with ``artifact`` (manifest bytes) added to ``existing``
    (the index now under referrers_tag, if any); an artifact already listed is
    not added twice."""
    doc = json.loads(artifact)
    entry: dict = {"mediaType": doc.get("mediaType", mediatypes.OCI_MANIFEST),
                   "digest": _digest(artifact), "size": len(artifact)}
    kind = doc.get("artifactType") or doc.get("config", {}).get("mediaType")
    if kind:
        entry["artifactType"] = kind
    if doc.get("annotations"):
        entry["annotations"] = doc["annotations"]
    index: dict = (json.loads(existing) if existing else
                   {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": []})
    manifests = [m for m in index.get("manifests") or [] if m.get("digest") != entry["digest"]]
    index["manifests"] = manifests + [entry]
    return json.dumps(index, separators=(",", ":")).encode()

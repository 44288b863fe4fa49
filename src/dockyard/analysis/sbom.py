"""Software bills of materials for images: SPDX 2.3 JSON and CycloneDX 1.5
JSON (artifact.py wraps one in an OCI artifact for a registry).

The packages come from packages.find_packages over one layer scan. The
image is the document's root element; each package is contained in it.
Timestamps follow SOURCE_DATE_EPOCH when it is set, and the document's
unique ids derive from the image and the timestamp, so the same inputs give
the same bytes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import uuid

from .. import __version__
from ..errors import DockyardError
from ..store import Image, Store
from .licenses import License, parse_license
from .packages import Package, find_packages, is_package_db, os_release, purl
from .report import image_name
from .scan import scan_image

SPDX_JSON = "spdx-json"
CYCLONEDX_JSON = "cyclonedx-json"
FORMATS = (SPDX_JSON, CYCLONEDX_JSON)
_ALIASES = {"spdx": SPDX_JSON, "spdx-json": SPDX_JSON, "cyclonedx": CYCLONEDX_JSON,
            "cyclonedx-json": CYCLONEDX_JSON, "cdx": CYCLONEDX_JSON}
MEDIA_TYPES = {SPDX_JSON: "application/spdx+json", CYCLONEDX_JSON: "application/vnd.cyclonedx+json"}
FILE_NAMES = {SPDX_JSON: "sbom.spdx.json", CYCLONEDX_JSON: "sbom.cdx.json"}
_NS = uuid.UUID("6f1c1a52-3d0e-4c55-9a51-0d0c6b7d2f10")  # dockyard's own namespace for uuid5


def sbom_format(fmt: str) -> str:
    try:
        return _ALIASES[fmt.lower()]
    except KeyError:
        raise DockyardError(f"unknown SBOM format {fmt!r}: use spdx-json or cyclonedx-json") from None


def timestamp(created: str | None = None) -> str:
    """``created`` as given, else SOURCE_DATE_EPOCH, else now; ISO 8601 UTC."""
    if created:
        return created
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (_dt.datetime.fromtimestamp(int(epoch), _dt.UTC) if epoch and epoch.isdigit()
            else _dt.datetime.now(_dt.UTC))
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def sbom_document(store: Store, image: Image, fmt: str = SPDX_JSON, *, name: str | None = None,
                  created: str | None = None, digest: str | None = None) -> dict:
    """The SBOM of ``image`` as a JSON-ready dict. ``digest`` names the image's
    manifest (default: the local one; a pushed image has its own)."""
    fmt = sbom_format(fmt)
    scan = scan_image(store, image, capture=is_package_db)
    packages = find_packages(scan.files)
    distro = os_release(scan.files)
    build = spdx_document if fmt == SPDX_JSON else cyclonedx_document
    return build(image, packages, distro, name=image_name(image, name), created=timestamp(created),
                 digest=digest)


def document_bytes(doc: dict) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


def _package_license(p: Package) -> License:
    return parse_license(p.license, spaces_separate=p.type == "apk")


def _image_purl(digest: str, name: str) -> str:
    repo = name.rsplit("@", 1)[0]
    base = repo.rsplit(":", 1)[0] if ":" in repo.rsplit("/", 1)[-1] else repo
    return purl("oci", "", base.rsplit("/", 1)[-1], digest, {})


def _agent(text: str, kind: str) -> str:
    """'Name <mail>' as SPDX's 'Organization: Name (mail)'."""
    text = " ".join(text.split())
    if not text:
        return "NOASSERTION"
    m = re.match(r"^(.*?)\s*<([^>]*)>\s*$", text)
    return f"{kind}: {m.group(1)} ({m.group(2)})" if m else f"{kind}: {text}"


def _spdx_id(prefix: str, *parts: str) -> str:
    tag = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
    body = re.sub(r"[^A-Za-z0-9.-]+", "-", parts[0])[:48].strip("-")
    return f"SPDXRef-{prefix}-{body}-{tag}"


def spdx_document(image: Image, packages: list[Package], distro: dict[str, str], *,
                  name: str, created: str,
                  digest: str | None = None) -> dict:
    digest = digest or image.manifest_digest
    ns = uuid.uuid5(_NS, f"spdx\0{digest}\0{created}")
    root = {
        "name": name, "SPDXID": "SPDXRef-Image", "versionInfo": digest,
        "supplier": "NOASSERTION", "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION", "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256",
                       "checksumValue": digest.removeprefix("sha256:")}],
        "externalRefs": [_purl_ref(_image_purl(digest, name))],
    }
    out_packages = [root]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": "SPDXRef-Image"}]
    if distro.get("ID"):
        out_packages.append({
            "name": distro["ID"], "SPDXID": "SPDXRef-OperatingSystem",
            "versionInfo": distro.get("VERSION_ID", "") or "NOASSERTION", "supplier": "NOASSERTION",
            "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION", "primaryPackagePurpose": "OPERATING-SYSTEM",
            **({"description": distro["PRETTY_NAME"]} if distro.get("PRETTY_NAME") else {}),
        })
        relationships.append({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS",
                              "relatedSpdxElement": "SPDXRef-OperatingSystem"})
    extracted: dict[str, str] = {}
    layers = image.diff_ids
    for p in packages:
        lic = _package_license(p)
        extracted.update(lic.refs)
        spdx_id = _spdx_id("Package-" + p.type, p.name, p.version, p.location)
        entry = {
            "name": p.name, "SPDXID": spdx_id, "versionInfo": p.version or "NOASSERTION",
            "supplier": _agent(p.supplier, "Person" if p.type == "python" else "Organization"),
            "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION", "licenseDeclared": lic.expression or "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "sourceInfo": f"read from /{p.location} (layer {p.layer}"
                          + (f", {layers[p.layer]})" if p.layer < len(layers) else ")"),
            "externalRefs": [_purl_ref(p.purl)],
        }
        if p.homepage.startswith(("http://", "https://")):
            entry["homepage"] = p.homepage
        if p.description:
            entry["summary"] = p.description
        if p.type == "python":
            entry["primaryPackagePurpose"] = "LIBRARY"
        out_packages.append(entry)
        relationships.append({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS",
                              "relatedSpdxElement": spdx_id})
    doc = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"https://spdx.org/spdxdocs/dockyard/{_slug(name)}-{ns}",
        "creationInfo": {"created": created, "creators": [f"Tool: dockyard-{__version__}"]},
        "packages": out_packages,
        "relationships": relationships,
    }
    if extracted:
        doc["hasExtractedLicensingInfos"] = [
            {"licenseId": ref, "name": text, "extractedText": text}
            for ref, text in sorted(extracted.items())]
    return doc


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "image"


def _purl_ref(locator: str) -> dict:
    return {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
            "referenceLocator": locator}


def cyclonedx_document(image: Image, packages: list[Package], distro: dict[str, str], *,
                       name: str, created: str,
                       digest: str | None = None) -> dict:
    digest = digest or image.manifest_digest
    serial = uuid.uuid5(_NS, f"cyclonedx\0{digest}\0{created}")
    components: list[dict] = []
    if distro.get("ID"):
        components.append({
            "type": "operating-system", "bom-ref": "os", "name": distro["ID"],
            **({"version": distro["VERSION_ID"]} if distro.get("VERSION_ID") else {}),
            **({"description": distro["PRETTY_NAME"]} if distro.get("PRETTY_NAME") else {}),
        })
    refs: set[str] = set()
    layers = image.diff_ids
    for p in packages:
        ref = p.purl
        while ref in refs:
            ref += "#" + hashlib.sha256(p.location.encode()).hexdigest()[:8]
        refs.add(ref)
        comp: dict = {"type": "library", "bom-ref": ref, "name": p.name}
        if p.version:
            comp["version"] = p.version
        if p.supplier:
            comp["publisher"] = " ".join(p.supplier.split())
        if p.description:
            comp["description"] = p.description
        lic = _package_license(p)
        if lic.single_id:
            comp["licenses"] = [{"license": {"id": lic.single_id}}]
        elif lic.expression and len(lic.refs) == 1 and lic.expression in lic.refs:
            comp["licenses"] = [{"license": {"name": lic.refs[lic.expression]}}]
        elif lic.expression:
            comp["licenses"] = [{"expression": lic.expression}]
        comp["purl"] = p.purl
        if p.homepage.startswith(("http://", "https://")):
            comp["externalReferences"] = [{"type": "website", "url": p.homepage}]
        props = [("dockyard:package:type", p.type), ("dockyard:location", "/" + p.location),
                 ("dockyard:layer", layers[p.layer] if p.layer < len(layers) else str(p.layer))]
        if p.source:
            props.append(("dockyard:source", p.source))
        comp["properties"] = [{"name": k, "value": v} for k, v in props]
        components.append(comp)
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{serial}",
        "version": 1,
        "metadata": {
            "timestamp": created,
            "tools": {"components": [{"type": "application", "name": "dockyard",
                                      "version": __version__}]},
            "component": {"type": "container", "bom-ref": "image", "name": name,
                          "version": digest, "purl": _image_purl(digest, name)},
        },
        "components": components,
    }

"""OCI image layouts: writing them (as a tar or a directory) and reading their index.

The layout written is what BuildKit's oci exporter writes: ``oci-layout``,
``index.json`` and ``blobs/sha256/``. Each tag gets its own index entry with
the full name in ``io.containerd.image.name`` and the tag alone in
``org.opencontainers.image.ref.name``. Layers go out as the store keeps them
(uncompressed), so the manifests written are the store's own, byte for byte.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import InvalidReference, StoreError
from ..image import ImageFormatError
from ..image.manifest import Index, Manifest
from ..image.mediatypes import is_index, is_manifest
from ..image.platform import Platform
from ..reference import Reference
from ..store import Image, Store

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"


@dataclass
class Planned:
    """One image found in an archive, before anything is verified or stored."""

    config: bytes
    config_digest: str | None          # what the archive claims, if it says
    layers: list[tuple[str, str | None]]  # (path in the archive, claimed blob digest)
    tags: list[str] = field(default_factory=list)  # canonical references


# -- writing -------------------------------------------------------------------

def _ref_name(canonical: str) -> str:
    """What follows the repository ('latest'), which BuildKit puts in ref.name."""
    ref = Reference.parse(canonical)
    return (ref.tag or "") + (f"@{ref.digest}" if ref.digest else "") or canonical


def _index(store: Store, images: list[tuple[Image, list[str]]]) -> tuple[bytes, list[str]]:
    """index.json and every blob it needs, in first-use order."""
    entries: list[dict] = []
    blobs: dict[str, None] = {}
    for image, tags in images:
        size = store.blobs.size(image.manifest_digest)
        base = {"mediaType": OCI_MANIFEST, "digest": image.manifest_digest, "size": size}
        for tag in tags or [None]:
            entry = dict(base)
            if tag:
                entry["annotations"] = {IMAGE_NAME: tag, REF_NAME: _ref_name(tag)}
            entries.append(entry)
        for digest in [image.manifest_digest, image.id, *image.layer_digests]:
            blobs[digest] = None
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    return json.dumps(index, separators=(",", ":")).encode(), list(blobs)


def tar_entry(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0  # deterministic archives
    info.uname = info.gname = ""
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size, info.mode = size, 0o644
    return info


def add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    tf.addfile(tar_entry(name, len(data)), io.BytesIO(data))


def add_blob(tf: tarfile.TarFile, store: Store, name: str, digest: str) -> None:
    with store.blobs.open(digest) as f:
        tf.addfile(tar_entry(name, os.fstat(f.fileno()).st_size), f)


def save(store: Store, images: list[tuple[Image, list[str]]], out: BinaryIO) -> None:
    """Write an OCI image layout tarball (``skopeo ... oci-archive:``) to ``out``."""
    with store.lock():
        index, blobs = _index(store, images)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            add_bytes(tf, "oci-layout", LAYOUT)
            add_bytes(tf, "index.json", index)
            tf.addfile(tar_entry("blobs", directory=True))
            tf.addfile(tar_entry("blobs/sha256", directory=True))
            for digest in blobs:
                add_blob(tf, store, f"blobs/sha256/{digest[7:]}", digest)


def save_dir(store: Store, images: list[tuple[Image, list[str]]], path: str | Path) -> None:
    """Write (or add to) an OCI image layout directory."""
    root = Path(path)
    blob_dir = root / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    with store.lock():
        index, blobs = _index(store, images)
        for digest in blobs:
            target = blob_dir / digest[7:]
            if not target.exists():
                tmp = target.with_name(target.name + ".tmp")
                shutil.copyfile(store.blobs.path(digest), tmp)
                os.replace(tmp, target)
    entries = json.loads(index)["manifests"]
    existing = root / "index.json"
    if existing.exists():
        try:
            doc = json.loads(existing.read_bytes())
        except (ValueError, RecursionError):
            raise StoreError(f"{existing}: not valid JSON") from None
        old = doc.get("manifests") if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or not isinstance(old or [], list) \
                or not all(isinstance(e, dict) for e in old or []):
            raise StoreError(f"{existing}: not an OCI index (manifests must be a list of descriptors)")
        old = old or []
        # A name written again replaces its old entry, as BuildKit does.
        names = {_names(e) for e in entries if e.get("annotations")}
        old = [e for e in old if _names(e) not in names and e not in entries]
        entries = old + entries
    _write_atomic(root / "oci-layout", LAYOUT)
    index_doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    _write_atomic(existing, json.dumps(index_doc, separators=(",", ":")).encode())


def _names(entry: dict) -> tuple:
    annotations = entry.get("annotations") or {}
    return annotations.get(REF_NAME), annotations.get(IMAGE_NAME)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -- reading -------------------------------------------------------------------

def blob_path(digest: str, where: str) -> str:
    algo, _, hexpart = str(digest).partition(":")
    if algo != "sha256" or len(hexpart) != 64:
        raise StoreError(f"{where}: unsupported or invalid digest {digest!r}")
    return f"blobs/sha256/{hexpart}"


def _tags(annotations: dict | None) -> list[str]:
    """Full names from an index entry: containerd's annotation, else a ref.name that is a name."""
    annotations = annotations or {}
    name = annotations.get(IMAGE_NAME)
    if not name:
        # ref.name is usually just a tag ('latest'), which names no repository.
        ref = annotations.get(REF_NAME) or ""
        name = ref if ("/" in ref or ":" in ref) else None
    if not name:
        return []
    try:
        ref = Reference.parse(name)
    except InvalidReference:
        return []
    return [str(ref)] if ref.tag else []  # the store's tags are name:tag references


def one_line(text: str) -> str:
    """A message made of hostile text, kept on one line: characters that
    are not printable appear as Go-style escapes (\\n, \\x00, \\u2028)."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch) or
                       (f"\\x{code:02x}" if code < 0x80 else
                        f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"))
    return "".join(out)


def _checked(source, what: str, parse, doc: object, where: str):
    """``parse(doc, where)`` (Index.from_json or Manifest.from_json): a document
    of the wrong shape is a StoreError naming the archive file it came from."""
    try:
        return parse(doc, where)
    except ImageFormatError as exc:
        raise StoreError(f"{source.name}: {what}: {one_line(str(exc))}") from None


def _doc(source, desc: dict, where: str) -> dict:
    """A JSON blob an index entry points at, checked against its digest and size."""
    data = source.blob(desc.get("digest"), where)
    if isinstance(desc.get("size"), int) and desc["size"] != len(data):
        raise StoreError(f"{where}: {desc.get('digest')} is {len(data)} bytes, "
                         f"its descriptor says {desc['size']}")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        raise StoreError(f"{where}: {desc.get('digest')} is not a JSON object")
    return doc


def _kind(desc: dict, doc: dict) -> str:
    media = desc.get("mediaType") or doc.get("mediaType") or ""
    if is_index(media) or (not media and "manifests" in doc):
        return "index"
    if is_manifest(media) or (not media and "layers" in doc and "config" in doc):
        return "manifest"
    return "other"


def _pick(descs: list[dict], host: Platform) -> dict | None:
    """The entry for the best platform this host runs (Docker's preference order)."""
    for want in host.compatible():
        for desc in descs:
            plat = desc.get("platform")
            if plat and Platform.from_json(plat).matches(want):
                return desc
    return None


def plan(source, host: Platform | None = None) -> list[Planned]:
    """The images an OCI layout's index.json names (host platform out of nested indexes).

    index.json and every index and manifest it leads to must have the OCI
    shape (Index/Manifest.from_json), so what follows may index them freely."""
    host = host or Platform.host()
    index = source.json("index.json")
    _checked(source, "index.json", Index.from_json, index, "index")
    descs = [d for d in index.get("manifests") or [] if isinstance(d, dict)]
    # Top-level entries for other platforms are dropped when one fits this host.
    if any(d.get("platform") for d in descs) and _pick(descs, host):
        descs = [d for d in descs
                 if not d.get("platform") or any(Platform.from_json(d["platform"]).matches(p)
                                                 for p in host.compatible())]
    found: dict[str, Planned] = {}
    for desc in descs:
        manifest = _resolve(source, desc, host, depth=0)
        if manifest is None:
            continue
        cfg = manifest["config"]
        where = f"{source.name}: manifest {desc.get('digest')}"
        config = source.blob(cfg["digest"], where)
        layers = [(blob_path(layer["digest"], where), layer["digest"])
                  for layer in manifest.get("layers") or []]
        item = found.setdefault(cfg["digest"], Planned(config, cfg["digest"], layers))
        item.tags += [t for t in _tags(desc.get("annotations")) if t not in item.tags]
    if not found:
        raise StoreError(f"{source.name}: index.json lists no image for {host}")
    return list(found.values())


def _resolve(source, desc: dict, host: Platform, depth: int) -> dict | None:
    """Follow an index entry down to an image manifest (None for non-images)."""
    if depth > 4:
        raise StoreError(f"{source.name}: indexes nested too deeply")
    doc = _doc(source, desc, f"{source.name}: index.json")
    kind = _kind(desc, doc)
    blob = blob_path(desc["digest"], f"{source.name}: index.json")
    if kind == "manifest":
        _checked(source, blob, Manifest.from_json, doc, "manifest")
        return doc
    if kind != "index":
        return None
    _checked(source, blob, Index.from_json, doc, "index")
    chosen = _pick([d for d in doc.get("manifests") or [] if isinstance(d, dict)], host)
    if chosen is None:
        raise StoreError(f"{source.name}: index {desc.get('digest')} has no image for {host}")
    return _resolve(source, chosen, host, depth + 1)

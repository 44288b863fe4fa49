"""docker-archive tarballs: what `docker save` writes and `docker load` reads.

Written in the layout Docker 20.10 uses: ``<config hex>.json``, one
``<dir>/layer.tar`` per layer, ``manifest.json`` and ``repositories``. The
layer directories are named by the layer's diff id rather than Docker's
legacy v1 ids, so a layer shared by several images is written once.
``docker load`` reads only manifest.json and the files it names, so the
per-layer ``VERSION`` and ``json`` files of the legacy format are left out.
"""

from __future__ import annotations

import json
import re
import tarfile
from typing import BinaryIO

from ..errors import InvalidReference, StoreError
from ..reference import Reference
from ..store import Image, Store
from .oci import Planned, add_blob, add_bytes, one_line, tar_entry

_HEX = re.compile(r"[a-f0-9]{64}")


def _familiar_tags(canonical: list[str]) -> list[tuple[str, str, str]]:
    """(familiar 'name:tag', familiar repository, tag) for each tagged reference."""
    out = []
    for name in canonical:
        ref = Reference.parse(name)
        if ref.tag and not ref.digest:  # docker save lists only name:tag references
            out.append((ref.familiar, ref.familiar_name, ref.tag))
    return out


def _merged(images: list[tuple[Image, list[str]]]) -> list[tuple[Image, list[str]]]:
    """One entry per image, tags merged, first-seen order (as docker save does)."""
    by_id: dict[str, tuple[Image, list[str]]] = {}
    for image, tags in images:
        entry = by_id.setdefault(image.id, (image, []))
        entry[1].extend(t for t in tags if t not in entry[1])
    return list(by_id.values())


def save(store: Store, images: list[tuple[Image, list[str]]], out: BinaryIO) -> None:
    """Write a docker-archive tarball of ``images`` (with their canonical tags) to ``out``."""
    manifest: list[dict] = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    with store.lock(), tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for image, tags in _merged(images):
            config_name = image.id[7:] + ".json"
            add_bytes(tf, config_name, image.config_bytes)
            if image.layer_digests != image.diff_ids:
                # Local layers are stored uncompressed; anything else is a broken store.
                raise StoreError(f"image {image.id}: layer blobs do not match its diff ids")
            layers = []
            for digest in image.layer_digests:
                layer_dir = digest[7:]
                if layer_dir not in written:
                    tf.addfile(tar_entry(layer_dir, directory=True))
                    add_blob(tf, store, f"{layer_dir}/layer.tar", digest)
                    written.add(layer_dir)
                layers.append(f"{layer_dir}/layer.tar")
            repo_tags = []
            for familiar, repo, tag in _familiar_tags(tags):
                repo_tags.append(familiar)
                if layers:
                    repositories.setdefault(repo, {})[tag] = layers[-1].split("/")[0]
            manifest.append({"Config": config_name, "RepoTags": repo_tags or None,
                             "Layers": layers})
        add_bytes(tf, "manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
        if repositories:
            add_bytes(tf, "repositories", json.dumps(repositories, separators=(",", ":")).encode())


def _claimed(path: str) -> str | None:
    """The digest a file name promises: '<hex>.json' or 'blobs/sha256/<hex>'."""
    base = path.rsplit("/", 1)[-1]
    if path.startswith("blobs/sha256/") and _HEX.fullmatch(base):
        return "sha256:" + base
    if "/" not in path and base.endswith(".json") and _HEX.fullmatch(base[:-5]):
        return "sha256:" + base[:-5]
    return None  # legacy '<v1 id>/layer.tar' names say nothing about content


def plan(source) -> list[Planned]:
    """The images manifest.json lists (docker save from 20.10 and from 25+)."""
    items = source.json("manifest.json")
    if not isinstance(items, list):
        raise StoreError(f"{source.name}: manifest.json is not a list")
    found: dict[str, Planned] = {}
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            raise StoreError(f"{source.name}: manifest.json entry {n} has no Config")
        config_path = item["Config"]
        layers = item.get("Layers") or []
        if not isinstance(layers, list) or not all(isinstance(p, str) for p in layers):
            raise StoreError(f"{source.name}: manifest.json entry {n}: Layers is not a list of paths")
        config = source.read(config_path)
        claimed = _claimed(config_path)
        key = claimed or config_path
        planned = found.setdefault(key, Planned(
            config, claimed, [(p, _claimed(p)) for p in layers]))
        repo_tags = item.get("RepoTags") or []
        if not isinstance(repo_tags, list) or not all(isinstance(t, str) for t in repo_tags):
            raise StoreError(f"{source.name}: manifest.json entry {n}: RepoTags is not a list of names")
        for familiar in repo_tags:
            try:
                canonical = str(Reference.parse(familiar))
            except InvalidReference as exc:
                raise StoreError(f"{source.name}: manifest.json: bad tag {familiar!r}: "
                                 f"{one_line(str(exc))}") from None
            if canonical not in planned.tags:
                planned.tags.append(canonical)
    return list(found.values())

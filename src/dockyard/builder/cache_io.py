"""Sharing the build cache: --cache-to and --cache-from.

An exported cache is an ordinary OCI image whose config also lists the
cache entries (`dockyard.cache.v1`: step key -> layer diff id). Any
registry or OCI layout directory can hold it. An importer reads only the
manifest and config; a layer is fetched when a later step needs its files
or the final image needs it, so steps that nothing depends on cost no
download at all.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from ..errors import BuildError, DockyardError
from ..store import Image, Store
from ..store.store import canonical_json

CACHE_KEY = "dockyard.cache.v1"


def parse_spec(spec: str, flag: str) -> dict[str, str]:
    """`type=registry,ref=R[,mode=max]`, `type=local,dest=DIR|src=DIR`, or a bare ref."""
    if "=" not in spec.split(",", 1)[0]:
        return {"type": "registry", "ref": spec}
    out: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise BuildError(f"invalid {flag} {spec!r}: {part!r} is not key=value")
        out[key.strip()] = value.strip()
    kind = out.get("type")
    if kind == "registry" and not out.get("ref"):
        raise BuildError(f"invalid {flag} {spec!r}: ref= is required")
    if kind == "local" and not (out.get("dest") if flag == "--cache-to" else out.get("src")):
        raise BuildError(f"invalid {flag} {spec!r}: {'dest' if flag == '--cache-to' else 'src'}= is required")
    if kind not in ("registry", "local"):
        raise BuildError(f"invalid {flag} {spec!r}: type must be registry or local")
    if out.get("mode", "min") not in ("min", "max"):
        raise BuildError(f"invalid {flag} {spec!r}: mode must be min or max")
    return out


class ImportedCache:
    """Cache entries from elsewhere, with a way to fetch each layer."""

    def __init__(self, where: str, entries: dict[str, dict], fetchers: dict[str, Callable[[Store], None]]):
        self.where = where
        self.entries = entries
        self._fetchers = fetchers

    def has_layer(self, diff_id: str) -> bool:
        return diff_id in self._fetchers

    def fetch(self, store: Store, diff_id: str) -> None:
        if not store.blobs.has(diff_id):
            self._fetchers[diff_id](store)


def _entries(config: dict, where: str) -> dict[str, dict]:
    raw = config.get(CACHE_KEY)
    if not isinstance(raw, list):
        raise BuildError(f"{where} is not a dockyard build cache")
    return {e["key"]: e for e in raw if isinstance(e, dict) and "key" in e and "diff_id" in e}


def _store_layer(store: Store, path_or_stream, diff_id: str) -> None:
    from ..layer import open_layer

    with open_layer(path_or_stream) as stream:
        store.blobs.put_stream(stream, expected=diff_id)


def import_cache(spec: dict[str, str]) -> ImportedCache:
    if spec["type"] == "local":
        return _import_local(Path(spec["src"]))
    return _import_registry(spec["ref"])


def _import_local(root: Path) -> ImportedCache:
    try:
        index = json.loads((root / "index.json").read_text())
        manifest = json.loads(_blob(root, index["manifests"][0]["digest"]).read_bytes())
        config = json.loads(_blob(root, manifest["config"]["digest"]).read_bytes())
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise BuildError(f"--cache-from {root}: not a readable cache layout ({e})") from None
    fetchers = {}
    for diff_id, layer in zip(config["rootfs"]["diff_ids"], manifest["layers"]):
        path = _blob(root, layer["digest"])
        fetchers[diff_id] = lambda store, p=path, d=diff_id: _store_layer(store, p, d)
    return ImportedCache(str(root), _entries(config, str(root)), fetchers)


def _blob(root: Path, digest: str) -> Path:
    algorithm, _, hexpart = digest.partition(":")
    return root / "blobs" / algorithm / hexpart


def _import_registry(ref: str) -> ImportedCache:
    from ..reference import Reference
    from ..registry.remote import open_repository

    reference = Reference.parse(ref)
    repo = open_repository(reference)
    try:
        tag = reference.digest or reference.tag or "latest"
        manifest = json.loads(repo.get_manifest(tag).data)
        cfg = manifest["config"]
        config = json.loads(repo.read_blob(cfg["digest"], cfg["size"]))
    except DockyardError as e:
        repo.registry.close()
        raise BuildError(f"--cache-from {ref}: {e}") from None
    repo.registry.close()

    def fetcher(layer: dict, diff_id: str):
        def fetch(store: Store) -> None:
            again = open_repository(reference)
            try:
                with tempfile.TemporaryFile(dir=store.tmp_dir) as tmp:
                    again.fetch_blob(layer["digest"], tmp, size=layer.get("size"))
                    tmp.seek(0)
                    _store_layer(store, tmp, diff_id)
            finally:
                again.registry.close()
        return fetch

    fetchers = {d: fetcher(layer, d) for d, layer in zip(config["rootfs"]["diff_ids"], manifest["layers"])}
    return ImportedCache(ref, _entries(config, ref), fetchers)


def export_cache(store: Store, spec: dict[str, str], records: list[dict], final: Image,
                 fetch: Callable[[str], None]) -> None:
    """Write the cache entries of this build (mode=min: those behind the
    final image; mode=max: every step) to a registry or a layout dir."""
    if spec.get("mode", "min") == "min":
        wanted = set(final.diff_ids)
        records = [r for r in records if r["diff_id"] in wanted]
    seen: dict[str, dict] = {}
    for r in records:
        seen.setdefault(r["key"], {"key": r["key"], "diff_id": r["diff_id"], "created": r.get("created")})
    entries = list(seen.values())
    diff_ids = list(dict.fromkeys(e["diff_id"] for e in entries))
    for d in diff_ids:
        fetch(d)
    config = {"architecture": final.config.get("architecture", ""), "os": final.config.get("os", "linux"),
              "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}, CACHE_KEY: entries}
    image = store.put_image(canonical_json(config), layers=[(d, store.blobs.size(d)) for d in diff_ids])
    try:
        if spec["type"] == "local":
            from ..archive import oci

            dest = Path(spec["dest"])
            if dest.exists():
                shutil.rmtree(dest)
            oci.save_dir(store, [(image, [])], dest)
        else:
            from ..reference import Reference
            from ..registry import push

            ref = str(Reference.parse(spec["ref"]))
            store.tag(image.id, ref)
            try:
                push(store, ref)
            finally:
                store.untag(ref)
    finally:
        if not store.tags_of(image.id):
            store.delete_image(image.id)

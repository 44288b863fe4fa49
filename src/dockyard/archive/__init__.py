"""Moving images between the store and files.

``load`` reads a docker-archive (``docker save``) or an OCI image layout tar
(``skopeo copy ... oci-archive:``, BuildKit's oci exporter, ``oci.save``);
``docker.save`` and ``oci.save``/``oci.save_dir`` write them;
``import_rootfs`` is ``docker import``.

A load is all or nothing: every digest and diff id is checked before any
image is recorded, tags are applied last, and on failure the blobs this load
wrote are removed again unless some image uses them.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import ImageNotFound, LayerError, StoreError
from ..layer.digest import HashingWriter
from ..snapshots import unpack_images
from ..store import Store
from . import docker, oci
from .importer import CHUNK, HashingReader, decompressed, import_rootfs

__all__ = ["docker", "import_rootfs", "load", "oci"]

# Files up to this size (configs, manifests, tiny layers) are kept in memory
# until the archive's manifest says what they are; bigger ones go straight
# into the blob store, decompressed, while the tar streams past.
IN_MEMORY = 1 << 20
_MAX_LINKS = 16


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _norm(path: str) -> str:
    """Archive member names compare without './' prefixes or '..' escapes."""
    return posixpath.normpath("/" + path).lstrip("/")


@dataclass
class _Entry:
    data: bytes | None        # None once the content lives only in the store
    raw: str                  # digest of the bytes as they are in the archive
    stored: str | None = None  # blob digest of the uncompressed content


class _Source:
    """The files of one archive, read in a single pass over a (possibly unseekable) stream."""

    def __init__(self, store: Store, name: str):
        self.store = store
        self.name = name
        self.entries: dict[str, _Entry] = {}
        self.links: dict[str, str] = {}
        self.created: set[str] = set()  # blobs that were not in the store before this load

    def scan(self, stream: BinaryIO) -> None:
        try:
            with tarfile.open(fileobj=stream, mode="r|*") as tf:
                for member in tf:
                    path = _norm(member.name)
                    if member.issym():  # docker 20.10 links repeated layers to the first copy
                        self.links[path] = _norm(posixpath.join(posixpath.dirname(path),
                                                                member.linkname))
                    elif member.islnk():
                        self.links[path] = _norm(member.linkname)
                    elif member.isfile():
                        self._add(path, member, tf.extractfile(member))
        except (tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno:  # the disk, not the archive
                raise
            raise StoreError(f"{self.name}: not a readable tar archive: {exc}") from None

    def _add(self, path: str, member: tarfile.TarInfo, f: BinaryIO) -> None:
        if member.size <= IN_MEMORY:
            data = f.read()
            self.entries[path] = _Entry(data, _sha256(data))
            return
        raw = HashingReader(f)
        stored = self._store(path, raw)
        raw.drain()
        self.entries[path] = _Entry(None, raw.digest, stored)

    def _store(self, path: str, raw: BinaryIO) -> str:
        """Write a file's uncompressed content as a blob; returns its digest."""
        with self.store.blobs.writer() as writer:
            sink = HashingWriter(writer)
            stream = decompressed(raw)
            try:
                while chunk := stream.read(CHUNK):
                    sink.write(chunk)
            except LayerError as exc:
                raise LayerError(f"{self.name}: {path}: {exc}") from None
            finally:
                stream.close()
            existed = self.store.blobs.has(sink.digest)
            writer.commit(sink.digest)
        if not existed:
            self.created.add(sink.digest)
        return sink.digest

    # -- what the format readers use ----------------------------------------

    def __contains__(self, path: str) -> bool:
        return self._resolve(path) in self.entries

    def _resolve(self, path: str) -> str:
        path = _norm(path)
        for _ in range(_MAX_LINKS):
            if path not in self.links:
                return path
            path = self.links[path]
        raise StoreError(f"{self.name}: too many levels of links at {oci.one_line(path)}")

    def entry(self, path: str) -> _Entry:
        entry = self.entries.get(self._resolve(path))
        if entry is None:
            raise StoreError(f"{self.name}: {oci.one_line(path)} is missing from the archive")
        return entry

    def read(self, path: str) -> bytes:
        entry = self.entry(path)
        return entry.data if entry.data is not None else self.store.blobs.read_bytes(entry.stored)

    def json(self, path: str):
        try:
            return json.loads(self.read(path))
        except ValueError:
            raise StoreError(f"{self.name}: {path} is not valid JSON") from None
        except RecursionError:
            raise StoreError(f"{self.name}: {path} is not valid JSON: nested too deeply") from None

    def blob(self, digest: str, where: str) -> bytes:
        """An OCI layout blob, checked against its digest."""
        path = oci.blob_path(digest, where)
        entry = self.entry(path)
        if entry.raw != digest:
            raise StoreError(f"{self.name}: {oci.one_line(path)} does not match its digest "
                             f"(content is {entry.raw})")
        return self.read(path)

    def layer(self, path: str, claimed: str | None) -> tuple[str, int]:
        """Store a layer (uncompressed); returns its blob digest (= diff id) and size."""
        entry = self.entry(path)
        if claimed and entry.raw != claimed:
            raise LayerError(f"{self.name}: layer {oci.one_line(path)} does not match its digest {claimed} "
                             f"(content is {entry.raw})")
        if entry.stored is None:
            entry.stored = self._store(path, io.BytesIO(entry.data))
        return entry.stored, self.store.blobs.size(entry.stored)

    def cleanup(self) -> None:
        """Remove blobs this load wrote that no image uses."""
        if self.created:
            keep = self.store.referenced_blobs()
            for digest in self.created - keep:
                self.store.blobs.delete(digest)


def _verify(src: _Source, planned: oci.Planned) -> list[tuple[str, int]]:
    """Check one image's config and layers; returns its stored layers."""
    config_digest = _sha256(planned.config)
    if planned.config_digest and planned.config_digest != config_digest:
        raise StoreError(f"{src.name}: config {planned.config_digest} does not match its "
                         f"content ({config_digest})")
    try:
        diff_ids = json.loads(planned.config)["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise StoreError(f"{src.name}: config {config_digest} has no rootfs.diff_ids") from None
    if not isinstance(diff_ids, list):
        raise StoreError(f"{src.name}: config {config_digest}: rootfs.diff_ids is not a list")
    if len(diff_ids) != len(planned.layers):
        raise StoreError(f"{src.name}: config {config_digest} lists {len(diff_ids)} diff ids "
                         f"but the archive has {len(planned.layers)} layers for it")
    layers = []
    for (path, claimed), diff_id in zip(planned.layers, diff_ids):
        digest, size = src.layer(path, claimed)
        if digest != diff_id:
            raise LayerError(f"{src.name}: layer {oci.one_line(path)} has diff id {digest}, "
                             f"but its config says {oci.one_line(str(diff_id))}")
        layers.append((digest, size))
    return layers


def load(store: Store, stream: BinaryIO) -> list[tuple[str, list[str]]]:
    """Import every image in a docker-archive or OCI layout tar: [(image id, tags)]."""
    src = _Source(store, str(getattr(stream, "name", None) or "archive"))
    new_images: list[str] = []
    with store.lock():
        try:
            src.scan(stream)
            if "manifest.json" in src:
                plans = docker.plan(src)
            elif "index.json" in src:
                plans = oci.plan(src)
            else:
                raise StoreError(f"{src.name}: neither a docker-archive (manifest.json) "
                                 f"nor an OCI layout (index.json)")
            checked = [(p, _verify(src, p)) for p in plans]
            try:
                unpack_images(store, [[d for d, _ in layers] for _, layers in checked])
            except LayerError as exc:
                raise LayerError(f"{src.name}: {exc}") from None
            results = []
            for planned, layers in checked:
                image_id = _sha256(planned.config)
                if not _has_image(store, image_id):
                    if not store.blobs.has(image_id):
                        src.created.add(image_id)
                    new_images.append(image_id)
                    image = store.put_image(planned.config, layers)
                    src.created.add(image.manifest_digest)
                results.append((image_id, list(planned.tags)))
            for image_id, tags in results:  # last, so a failed load never moves a tag
                for tag in tags:
                    store.tag(image_id, tag)
        except BaseException:
            for image_id in new_images:
                store.delete_image(image_id)
            src.cleanup()
            raise
        src.cleanup()
    return results


def _has_image(store: Store, image_id: str) -> bool:
    try:
        store.image(image_id)
    except ImageNotFound:
        return False
    return True

"""Push: store -> registry.

Local layers are uncompressed. For each one, what the store remembers
about it (``records``) is tried first: HEAD the known compressed digest in
the target repository, or mount it from another repository of the same
registry. Only when neither works is the layer compressed (gzip, hashing
while compressing, once) and uploaded; the result is remembered, so the
next push of the same layer compresses nothing. Blobs go in parallel, the
config with them, the manifest last. A tag that names a multi-platform
image (an index in the store) pushes each image by digest, then the index.

First, when the records place every layer in the target repository, the
manifest we would push is built and one HEAD of the tag compares digests:
equal, and nothing else is sent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.errors import ImageNotFound
from dockyard.image import (
    Compression,
    Descriptor,
    Digest,
    ImageFormatError,
    Platform,
    index_json,
    manifest_json,
    mediatypes,
)
from dockyard.reference import Reference
from dockyard.registry import progress as ev
from dockyard.registry.client import Repository
from dockyard.registry.errors import RegistryError
from dockyard.registry.options import RegistryOptions, load_options
from dockyard.registry.records import (
    BlobSource,
    forget_blob,
    has_manifest,
    known_sources,
    remember_blobs,
    remember_manifest,
)
from dockyard.registry.remote import open_repository, scheme_memory
from dockyard.registry.transport import Transport
from dockyard.store import Image, Store

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["push"]

_CHUNK = 1 << 20
_MAX_CANDIDATES = 4


def push(store: Store, name: str, *, progress: ev.Listener | None = None,
         options: RegistryOptions | None = None, transport: Transport | None = None) -> str:
    """Push the local image tagged ``name``; returns the manifest digest."""
    ref = Reference.parse(name)
    if ref.digest is not None:
        raise RegistryError(f"cannot push to a digest reference: {name}")
    index_digest = store.index_of(str(ref))
    if index_digest is not None:
        images = store.index_images(index_digest)
    else:
        try:
            images = [store.lookup(name, str(ref))]
        except ImageNotFound:
            raise ImageNotFound(f"An image does not exist locally with the tag: {ref.familiar_name}") from None
    repo = open_repository(ref, options or load_options(), push=True, transport=transport)
    try:
        with store.lock(), scheme_memory(store, repo.registry):
            pusher = _Pusher(store, ref, repo, ev.locked(progress))
            return pusher.run(images, store.index(index_digest) if index_digest else None)
    finally:
        repo.registry.close()


@dataclass
class _Result:
    desc: Descriptor
    learnt: BlobSource | None = None
    stale: tuple[BlobSource, ...] = ()


class _Pusher:
    def __init__(self, store: Store, ref: Reference, repo: Repository, emit: ev.Listener):
        self.store = store
        self.ref = ref
        self.repo = repo
        self.emit = emit
        self.options = repo.registry.options

    def run(self, images: list[Image], local_index: dict | None) -> str:
        """One image, or (``local_index``) every image of a multi-platform one
        by digest and then the index under the tag. The manifest digest."""
        ref = self.ref
        tag = ref.tag or "latest"
        self.emit(ev.Event(ev.STATUS, ref.familiar,
                           detail=f"The push refers to repository [{ref.repository}]"))
        if local_index is None:
            digest, data = self._push_image(images[0], tag)
        else:
            entries = []
            for image in images:
                child, child_data = self._push_image(image, None)
                entries.append(Descriptor(mediatypes.OCI_MANIFEST, child, len(child_data),
                                          platform=_platform_of(image)))
            data = index_json(entries, local_index.get("annotations") or None, mediatypes.OCI_INDEX)
            digest = self.repo.put_manifest(tag, data, mediatypes.OCI_INDEX)
        self.emit(ev.Event(ev.DIGEST, ref.familiar, detail=f"{tag}: digest: {digest} size: {len(data)}"))
        return str(digest)

    def _push_image(self, image: Image, tag: str | None) -> tuple[Digest, bytes]:
        """Blobs in parallel, then the manifest: under ``tag``, or by digest."""
        local = image.manifest.get("layers", [])
        if len(local) != len(image.diff_ids):
            raise RegistryError(f"{self.repo.where}: local image {image.id} has {len(local)} layers "
                                f"but {len(image.diff_ids)} diff ids")
        # the records are read here, on the thread that owns the connection
        known = {d: known_sources(self.store, d) for d in image.diff_ids}
        if tag is not None:
            unchanged = self._unchanged(image, tag, known)
            if unchanged is not None:
                return unchanged
        for layer in local:
            self.emit(ev.Event(ev.PREPARING, ev.short(layer["digest"])))

        # imported here: a push with nothing to send never needs them
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        workers = max(1, self.options.upload_concurrency)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="push") as pool:
            config_future = pool.submit(self._push_config, image)
            unique = {layer["digest"]: (layer, diff_id) for layer, diff_id in zip(local, image.diff_ids)}
            layer_futures = {digest: pool.submit(self._push_layer, layer, diff_id, known[diff_id])
                             for digest, (layer, diff_id) in unique.items()}
            futures: list[Future[Any]] = [config_future, *layer_futures.values()]
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
        # the pool is shut down: every future is done or cancelled
        failures = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
        if failures:
            # what reached the registry is remembered, so pushing again neither
            # compresses nor uploads it (HEAD finds it)
            reached = [f.result() for f in layer_futures.values() if not f.cancelled() and f.exception() is None]
            remember_blobs(self.store, [r.learnt for r in reached if r.learnt is not None])
            raise failures[0]  # type: ignore[misc]
        results = {digest: f.result() for digest, f in layer_futures.items()}

        layers = [results[layer["digest"]].desc for layer in local]
        data = manifest_json(config_future.result(), layers, image.manifest.get("annotations") or None,
                             mediatypes.OCI_MANIFEST)
        digest = self.repo.put_manifest(tag or str(Digest.of_bytes(data)), data, mediatypes.OCI_MANIFEST)

        for result in results.values():
            for stale in result.stale:
                forget_blob(self.store, stale)
        remember_blobs(self.store, [r.learnt for r in results.values() if r.learnt is not None])
        remember_manifest(self.store, self.ref.domain, self.repo.path, str(digest), image.id)
        return digest, data

    def _unchanged(self, image: Image, tag: str, known: dict[str, list[BlobSource]]
                   ) -> tuple[Digest, bytes] | None:
        """The manifest, when ``tag`` already names exactly the one we would push.

        Built from what we know each layer is in this repository; one HEAD
        then compares digests. A registry that holds a manifest holds its
        blobs, so nothing else needs asking. None: push as usual.
        """
        layers = []
        for layer, diff_id in zip(image.manifest.get("layers", []), image.diff_ids):
            desc = self._known_here(layer, known[diff_id])
            if desc is None:
                return None
            layers.append(desc)
        config = Descriptor(mediatypes.OCI_CONFIG, Digest.of_bytes(image.config_bytes), len(image.config_bytes))
        data = manifest_json(config, layers, image.manifest.get("annotations") or None, mediatypes.OCI_MANIFEST)
        digest = Digest.of_bytes(data)
        if self.repo.head_manifest(tag) != digest:
            return None
        for layer in image.manifest.get("layers", []):
            self.emit(ev.Event(ev.LAYER_EXISTS, ev.short(layer["digest"])))
        if not has_manifest(self.store, self.ref.domain, self.repo.path, str(digest), image.id):
            remember_manifest(self.store, self.ref.domain, self.repo.path, str(digest), image.id)
        return digest, data

    def _known_here(self, layer: dict, known: list[BlobSource]) -> Descriptor | None:
        """The descriptor a push would give ``layer``, if we know it is in this repository."""
        try:
            compression = mediatypes.compression_of(layer.get("mediaType", mediatypes.OCI_LAYER))
            if compression is not Compression.UNCOMPRESSED:
                return Descriptor(mediatypes.layer_media_type(compression), Digest.parse(layer["digest"]),
                                  int(layer["size"]))
            here = [s for s in known if (s.registry, s.repository) == (self.ref.domain, self.repo.path)]
            for source in sorted(here, key=lambda s: 0 if s.media_type.endswith("gzip") else 1):
                return Descriptor(mediatypes.layer_media_type(mediatypes.compression_of(source.media_type)),
                                  Digest.parse(source.digest), source.size)
        except (ImageFormatError, KeyError, ValueError):
            pass  # the usual path reports what is wrong
        return None

    # -- blobs ------------------------------------------------------------------

    def _push_config(self, image: Image) -> Descriptor:
        data = image.config_bytes
        digest = Digest.of_bytes(data)
        if self.repo.blob_size(str(digest)) is None:
            self.repo.upload_blob(str(digest), len(data), _bytes_ranges(data))
        return Descriptor(mediatypes.OCI_CONFIG, digest, len(data))

    def _push_layer(self, layer: dict, diff_id: str, known: list[BlobSource]) -> _Result:
        digest, sid = layer["digest"], ev.short(layer["digest"])
        try:
            compression = mediatypes.compression_of(layer.get("mediaType", mediatypes.OCI_LAYER))
        except ImageFormatError as e:
            raise RegistryError(f"{self.repo.where}: layer {digest}: {e}") from None
        if compression is not Compression.UNCOMPRESSED:
            # already compressed locally: send the blob as it is
            desc = Descriptor(mediatypes.layer_media_type(compression), Digest.parse(digest), int(layer["size"]))
            self._upload_file(desc, self.store.blobs.path(digest), sid)
            return _Result(desc)

        result = self._reuse(diff_id, known, sid)
        if result is not None:
            return result
        self.emit(ev.Event(ev.COMPRESSING, sid))
        import tempfile

        fd, name = tempfile.mkstemp(dir=self.store.tmp_dir, prefix="push-")
        try:
            with os.fdopen(fd, "wb") as out, self.store.blobs.open(digest) as source:
                blob_digest, size = _gzip(source, out, self.options.gzip_level)
            desc = Descriptor(mediatypes.OCI_LAYER_GZIP, blob_digest, size)
            self._upload_file(desc, Path(name), sid)
        finally:
            Path(name).unlink(missing_ok=True)
        learnt = BlobSource(diff_id, str(blob_digest), desc.media_type, size, self.ref.domain, self.repo.path)
        return _Result(desc, learnt)

    def _reuse(self, diff_id: str, known: list[BlobSource], sid: str) -> _Result | None:
        """HEAD, then mount, what we know this layer as; None: upload it."""
        domain, path = self.ref.domain, self.repo.path

        def rank(s: BlobSource) -> tuple[int, int]:
            place = 0 if (s.registry, s.repository) == (domain, path) else 1 if s.registry == domain else 2
            return place, 0 if s.media_type.endswith("gzip") else 1

        stale: list[BlobSource] = []
        seen: set[str] = set()
        for source in sorted(known, key=rank)[:_MAX_CANDIDATES]:
            try:
                compression = mediatypes.compression_of(source.media_type)
            except ImageFormatError:
                continue
            desc = Descriptor(mediatypes.layer_media_type(compression), Digest.parse(source.digest), source.size)
            learnt = BlobSource(diff_id, source.digest, source.media_type, source.size, domain, path)
            if source.digest not in seen:
                seen.add(source.digest)
                if self.repo.blob_size(source.digest) is not None:
                    self.emit(ev.Event(ev.LAYER_EXISTS, sid))
                    return _Result(desc, learnt, tuple(stale))
            if source.registry != domain or source.repository == path:
                if source.registry == domain:
                    stale.append(source)  # we pushed it here once; it is gone
                continue
            if self.repo.mount_blob(source.digest, source.repository):
                self.emit(ev.Event(ev.MOUNTED, sid, detail=source.repository))
                return _Result(desc, learnt, tuple(stale))
        return None

    def _upload_file(self, desc: Descriptor, path: Path, sid: str) -> None:
        digest = str(desc.digest)
        if self.repo.blob_size(digest) is not None:
            self.emit(ev.Event(ev.LAYER_EXISTS, sid))
            return
        total = desc.size
        self.repo.upload_blob(digest, total, _file_ranges(path),
                              progress=lambda n: self.emit(ev.Event(ev.PUSHING, sid, n, total)))
        self.emit(ev.Event(ev.PUSHED, sid))


def _gzip(source, out, level: int) -> tuple[Digest, int]:
    """Compress ``source`` into ``out``; the digest and size of what was written."""
    try:  # optional: ~5x faster gzip (python-isal)
        from isal import isal_zlib as _zlib
    except ImportError:  # pragma: no cover - depends on the environment
        import zlib as _zlib  # type: ignore[no-redef]

    hasher = Digest.hasher_for()
    size = 0
    compressor = _zlib.compressobj(level, _zlib.DEFLATED, 31)  # 31: gzip framing
    while True:
        chunk = source.read(_CHUNK)
        data = compressor.compress(chunk) if chunk else compressor.flush()
        if data:
            out.write(data)
            hasher.update(data)
            size += len(data)
        if not chunk:
            return Digest.from_hash(hasher), size


def _file_ranges(path: Path):
    def read_range(offset: int, length: int) -> Iterator[bytes]:
        with open(path, "rb") as f:
            f.seek(offset)
            left = length
            while left > 0:
                chunk = f.read(min(_CHUNK, left))
                if not chunk:
                    raise RegistryError(f"{path} is shorter than expected")
                left -= len(chunk)
                yield chunk
    return read_range


def _bytes_ranges(data: bytes):
    def read_range(offset: int, length: int) -> Iterator[bytes]:
        yield data[offset:offset + length]
    return read_range


def _platform_of(image: Image) -> Platform:
    cfg = image.config
    return Platform(str(cfg.get("os") or "linux"), str(cfg.get("architecture") or ""),
                    cfg.get("variant") or None)

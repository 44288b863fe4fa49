"""Pull: registry -> store.

The manifest (or the index entry for the wanted platform) is resolved,
the config fetched, and missing layers downloaded in parallel: each into a
temporary file (resumable), checked against its digest, then decompressed
into the store and checked against its diff id. Only then is the image
stored and tagged; a wrong digest stores nothing of that blob. Where each
layer came from is remembered (``records``) so a later push can HEAD or
mount it instead of compressing again.

First, when the reference is tagged here, one HEAD of it: if the registry
still names the manifest this image was last pulled (or pushed) as, and
every layer is in the store, the pull is done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dockyard.errors import LayerError, StoreError
from dockyard.image import (
    Descriptor,
    ImageFormatError,
    Platform,
    mediatypes,
    parse_index,
    parse_manifest,
    select_platform,
)
from dockyard.reference import Reference
from dockyard.snapshots import Unpacker
from dockyard.registry import progress as ev
from dockyard.registry.client import Repository
from dockyard.registry.errors import DigestMismatch, RegistryError
from dockyard.registry.options import RegistryOptions, load_options
from dockyard.registry.records import (
    BlobSource,
    known_digests,
    manifests_of,
    remember_blobs,
    remember_manifest,
)
from dockyard.registry.remote import open_repository, scheme_memory
from dockyard.registry.transport import Transport
from dockyard.store import Image, Store

__all__ = ["pull"]

_CHUNK = 1 << 20


def pull(store: Store, name: str, *, platform: str | None = None, progress: ev.Listener | None = None,
         options: RegistryOptions | None = None, transport: Transport | None = None) -> Image:
    """Fetch ``name`` (``NAME[:TAG|@DIGEST]``) into the store and tag it there.

    ``platform`` (``os/arch[/variant]``) picks from an index; default: this
    machine. Always asks the registry, even when the tag is known locally.
    """
    ref = Reference.parse(name)
    repo = open_repository(ref, options or load_options(), transport=transport)
    try:
        with store.lock(), scheme_memory(store, repo.registry):
            return _Puller(store, ref, repo, ev.locked(progress), platform).run()
    finally:
        repo.registry.close()


@dataclass
class _Layer:
    desc: Descriptor
    diff_id: str


class _Puller:
    def __init__(self, store: Store, ref: Reference, repo: Repository, emit: ev.Listener,
                 platform: str | None):
        self.store = store
        self.ref = ref
        self.repo = repo
        self.emit = emit
        self.platform = platform

    def fail(self, message: str) -> RegistryError:
        return RegistryError(f"{self.repo.where}: {message}")

    def run(self) -> Image:
        ref, repo = self.ref, self.repo
        self.emit(ev.Event(ev.RESOLVING, ref.familiar))
        unchanged = self._unchanged()
        if unchanged is not None:
            return unchanged
        top = repo.get_manifest(ref.digest or ref.tag or "latest")
        manifest_data, check_platform = self._choose_manifest(top)
        try:
            manifest = parse_manifest(manifest_data)
        except ImageFormatError as e:
            raise self.fail(f"bad manifest: {e}") from None
        config_bytes = repo.read_blob(str(manifest.config.digest), manifest.config.size)
        layers = self._layers(manifest, config_bytes, check_platform)
        existed_before = self._has_image(str(manifest.config.digest))
        # Layers are unpacked while the others download (snapshots.Unpacker).
        self.unpacker = Unpacker(self.store, [l.diff_id for l in layers])
        try:
            self._download_all(layers)
        except BaseException:
            self.unpacker.cancel()
            raise
        self.unpacker.finish()

        sizes = [(l.diff_id, self.store.blobs.size(l.diff_id)) for l in layers]
        image = self.store.put_image(config_bytes, sizes)
        for tag in self._tags():
            self.store.tag(image.id, tag)  # also moves the name off a local index
        image = self.store.image(image.id)
        remember_blobs(self.store, [
            BlobSource(l.diff_id, str(l.desc.digest), l.desc.media_type, l.desc.size, ref.domain, ref.path)
            for l in layers])
        remember_manifest(self.store, ref.domain, ref.path, str(top.digest), image.id)
        self.emit(ev.Event(ev.DIGEST, ref.familiar, detail=f"Digest: {top.digest}"))
        verb = "Image is up to date for" if existed_before else "Downloaded newer image for"
        self.emit(ev.Event(ev.STATUS, ref.familiar, detail=f"Status: {verb} {ref.familiar}"))
        return image

    def _unchanged(self) -> Image | None:
        """The local image, when the registry's tag still names the manifest we
        last pulled (or pushed) it as and every layer is here; one HEAD asks.
        None: pull as usual."""
        ref, store = self.ref, self.store
        ids = {row[0] for tag in self._tags()
               for row in store.db.execute("SELECT image_id FROM tags WHERE name=?", (tag,))}
        if len(ids) != 1:
            return None  # not tagged here (or the names disagree): nothing to compare with
        image_id = ids.pop()
        known = manifests_of(store, ref.domain, ref.path, image_id)
        if not known:
            return None
        image = store.image(image_id)
        config = image.config
        have = Platform(str(config.get("os", "")), str(config.get("architecture", "")),
                        config.get("variant") or None)
        want = Platform.parse(self.platform) if self.platform else Platform.host()
        if not want.matches(have) or not all(store.blobs.has(d) for d in image.diff_ids):
            return None
        digest = self.repo.head_manifest(ref.digest or ref.tag or "latest")
        if digest is None or str(digest) not in known:
            return None
        shown = known_digests(store, ref.domain, ref.path)
        for diff_id in image.diff_ids:
            self.emit(ev.Event(ev.ALREADY_EXISTS, ev.short(shown.get(diff_id, diff_id))))
        self.emit(ev.Event(ev.DIGEST, ref.familiar, detail=f"Digest: {digest}"))
        self.emit(ev.Event(ev.STATUS, ref.familiar, detail=f"Status: Image is up to date for {ref.familiar}"))
        return image

    def _has_image(self, image_id: str) -> bool:
        row = self.store.db.execute("SELECT image_id FROM tags WHERE name=?", (str(self.ref),)).fetchone()
        return row is not None and row[0] == image_id

    def _tags(self) -> list[str]:
        ref = self.ref
        if ref.digest is None:
            return [str(ref)]
        by_digest = f"{ref.repository}@{ref.digest}"
        return [by_digest] if ref.tag is None else [by_digest, str(ref)]

    def _choose_manifest(self, top) -> tuple[bytes, Platform | None]:
        """The manifest's bytes, and the platform its config must still match."""
        want = Platform.parse(self.platform) if self.platform else None
        if mediatypes.is_index(top.media_type):
            try:
                index = parse_index(top.data)
            except ImageFormatError as e:
                raise self.fail(f"bad index: {e}") from None
            target = want or Platform.host()
            chosen = select_platform(index, target)
            if chosen is None:
                raise self.fail(f"no matching manifest for {target} in the manifest list entries")
            if not mediatypes.is_manifest(chosen.media_type):
                raise self.fail(f"the entry for {target} is a {chosen.media_type}, not an image manifest")
            return self.repo.get_manifest(str(chosen.digest)).data, None
        if not mediatypes.is_manifest(top.media_type):
            raise self.fail(f"{top.media_type} is not an image manifest or index")
        return top.data, want

    def _layers(self, manifest, config_bytes: bytes, want: Platform | None) -> list[_Layer]:
        try:
            config = json.loads(config_bytes)
            diff_ids = list(config["rootfs"]["diff_ids"])
        except (ValueError, KeyError, TypeError):
            raise self.fail("the image config has no rootfs.diff_ids") from None
        if want is not None:
            have = Platform(str(config.get("os", "")), str(config.get("architecture", "")),
                            config.get("variant") or None)
            if not want.matches(have):
                raise self.fail(f"the image is for {have}, not the requested platform {want}")
        if len(diff_ids) != len(manifest.layers):
            raise self.fail(f"the manifest has {len(manifest.layers)} layers but the config "
                            f"{len(diff_ids)} diff ids")
        out = []
        for desc, diff_id in zip(manifest.layers, diff_ids):
            if not mediatypes.is_layer(desc.media_type):
                raise self.fail(f"layer {desc.digest} has unsupported media type {desc.media_type}")
            out.append(_Layer(desc, diff_id))
        return out

    def _download_all(self, layers: list[_Layer]) -> None:
        todo: dict[str, _Layer] = {}
        for layer in layers:
            if self.store.blobs.has(layer.diff_id):
                self.emit(ev.Event(ev.ALREADY_EXISTS, ev.short(str(layer.desc.digest))))
            elif layer.diff_id not in todo:
                todo[layer.diff_id] = layer
                self.emit(ev.Event(ev.WAITING, ev.short(str(layer.desc.digest))))
        if not todo:
            return
        # imported here: a pull with nothing to fetch never needs them
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        workers = max(1, self.repo.registry.options.download_concurrency)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pull") as pool:
            futures = [pool.submit(self._download, layer) for layer in todo.values()]
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            for f in futures:
                if f.done() and not f.cancelled() and f.exception() is not None:
                    raise f.exception()  # type: ignore[misc]

    def _download(self, layer: _Layer) -> None:
        digest = str(layer.desc.digest)
        sid, total = ev.short(digest), layer.desc.size
        import tempfile

        from dockyard.layer.compress import open_layer

        with tempfile.TemporaryFile(dir=self.store.tmp_dir, prefix="pull-") as tmp:
            self.repo.fetch_blob(digest, tmp, size=total,
                                 progress=lambda n: self.emit(ev.Event(ev.DOWNLOADING, sid, n, total)))
            self.emit(ev.Event(ev.VERIFYING, sid))
            tmp.seek(0)
            self.emit(ev.Event(ev.EXTRACTING, sid, 0, total))
            try:
                with self.store.blobs.writer() as writer, open_layer(tmp) as stream:
                    while chunk := stream.read(_CHUNK):
                        writer.write(chunk)
                    writer.commit(layer.diff_id)
                self.unpacker.ready(layer.diff_id)
            except StoreError as e:
                raise DigestMismatch(f"{self.repo.where}: layer {digest}: uncompressed content does not "
                                     f"match diff id {layer.diff_id} ({e})") from None
            except (LayerError, OSError, EOFError, ValueError) as e:
                raise self.fail(f"layer {digest}: cannot decompress: {e}") from None
        self.emit(ev.Event(ev.PULL_COMPLETE, sid))

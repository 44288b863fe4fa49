"""The local image store: blobs, images, tags, snapshots and build cache.

Layout under the root directory::

    blobs/sha256/<hex>   content (configs, manifests, uncompressed layers)
    ingest/              blobs being written
    snapshots/<n>/       one extracted layer each (overlayfs lower dirs)
    tmp/                 build and container scratch space
    db.sqlite            metadata
    lock                 fcntl lock: shared for users, exclusive for GC

Layers are kept uncompressed: the blob digest of a local layer is its diff id.
Compression happens when an image leaves the machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..errors import ImageNotFound, StoreError
from .blobs import BlobStore
from .db import connect

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def default_root() -> Path:
    env = os.environ.get("DOCKYARD_ROOT")
    if env:
        return Path(env)
    from .. import rootless

    if os.geteuid() == 0 and not rootless.active():
        return Path("/var/lib/dockyard")
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(xdg) / "dockyard"


def canonical_json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class Image:
    id: str
    manifest_digest: str
    config: dict
    config_bytes: bytes
    manifest: dict
    tags: list[str] = field(default_factory=list)
    size: int = 0

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids", []))

    @property
    def layer_digests(self) -> list[str]:
        return [layer["digest"] for layer in self.manifest.get("layers", [])]


class Store:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root else default_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.blobs = BlobStore(self.root)
        self.snapshot_dir = self.root / "snapshots"
        self.tmp_dir = self.root / "tmp"
        self.snapshot_dir.mkdir(exist_ok=True)
        self.tmp_dir.mkdir(exist_ok=True)
        self.db = connect(self.root / "db.sqlite")
        self._lock_path = self.root / "lock"

    # -- locks --------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, exclusive: bool = False) -> Iterator[None]:
        """Shared while using content, exclusive while deleting it (GC)."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    # -- images -------------------------------------------------------------

    def put_image(self, config_bytes: bytes, layers: list[tuple[str, int]] | None = None,
                  tags: list[str] = (), annotations: dict | None = None) -> Image:
        """Store an image from its config and its (uncompressed) layer blobs.

        ``layers`` lists (digest, size) of layer blobs already in the store;
        by default they are taken from the config's diff ids.
        """
        config = json.loads(config_bytes)
        digests = [d for d, _ in layers] if layers is not None else config["rootfs"]["diff_ids"]
        for digest in digests:
            if not self.blobs.has(digest):
                raise StoreError(f"layer {digest} is missing from the store")
        if layers is None:
            layers = [(d, self.blobs.size(d)) for d in digests]
        config_digest = self.blobs.put_bytes(config_bytes)
        manifest: dict = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s in layers],
        }
        if annotations:
            manifest["annotations"] = annotations
        manifest_bytes = canonical_json(manifest)
        manifest_digest = self.blobs.put_bytes(manifest_bytes)
        size = sum(s for _, s in layers)
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO images(id, manifest, created, size, added) VALUES (?,?,?,?,?)",
                (config_digest, manifest_digest, config.get("created"), size, time.time()),
            )
            for tag in tags:
                self.db.execute("INSERT OR REPLACE INTO tags(name, image_id) VALUES (?,?)",
                                (tag, config_digest))
        return self.image(config_digest)

    def image(self, image_id: str) -> Image:
        row = self.db.execute("SELECT id, manifest, size FROM images WHERE id=?", (image_id,)).fetchone()
        if row is None:
            raise ImageNotFound(f"no such image: {image_id}")
        config_bytes = self.blobs.read_bytes(row[0])
        manifest = json.loads(self.blobs.read_bytes(row[1]))
        tags = [r[0] for r in self.db.execute(
            "SELECT name FROM tags WHERE image_id=? ORDER BY name", (row[0],))]
        return Image(id=row[0], manifest_digest=row[1], config=json.loads(config_bytes),
                     config_bytes=config_bytes, manifest=manifest, tags=tags, size=row[2])

    def lookup(self, name: str, canonical: str | None = None, platform: str | None = None) -> Image:
        """Find an image by canonical reference, full or short id, or digest.

        A name that refers to an index gives the image for `platform`
        (default: this machine's)."""
        if canonical is not None:
            row = self.db.execute("SELECT image_id FROM tags WHERE name=?", (canonical,)).fetchone()
            if row:
                return self.image(row[0])
            row = self.db.execute("SELECT index_digest FROM index_tags WHERE name=?", (canonical,)).fetchone()
            if row:
                return self.image_for_platform(row[0], platform)
            if "@" in canonical:
                digest = canonical.split("@", 1)[1]
                row = self.db.execute("SELECT id FROM images WHERE manifest=? OR id=?",
                                      (digest, digest)).fetchone()
                if row:
                    return self.image(row[0])
                if self.db.execute("SELECT 1 FROM indexes WHERE digest=?", (digest,)).fetchone():
                    return self.image_for_platform(digest, platform)
        hexpart = name[7:] if name.startswith("sha256:") else name
        if 4 <= len(hexpart) <= 64 and all(c in "0123456789abcdef" for c in hexpart):
            rows = self.db.execute("SELECT id FROM images WHERE id LIKE ?",
                                   ("sha256:" + hexpart + "%",)).fetchall()
            if len(rows) == 1:
                return self.image(rows[0][0])
            if len(rows) > 1:
                raise StoreError(f"ambiguous image id prefix: {name}")
        raise ImageNotFound(f"no such image: {name}")

    # -- indexes (multi-platform images) ---------------------------------------

    def put_index(self, images: list[Image], tags: list[str] = (), annotations: dict | None = None) -> str:
        """Store an OCI index over stored images and point `tags` at it."""
        manifests = []
        for image in images:
            cfg = image.config
            plat = {"architecture": cfg.get("architecture", ""), "os": cfg.get("os", "")}
            if cfg.get("variant"):
                plat["variant"] = cfg["variant"]
            manifests.append({"mediaType": image.manifest.get("mediaType", OCI_MANIFEST),
                              "digest": image.manifest_digest,
                              "size": self.blobs.size(image.manifest_digest), "platform": plat})
        index: dict = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        if annotations:
            index["annotations"] = annotations
        digest = self.blobs.put_bytes(canonical_json(index))
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO indexes(digest, added) VALUES (?,?)", (digest, time.time()))
            for tag in tags:
                self.db.execute("DELETE FROM tags WHERE name=?", (tag,))
                self.db.execute("INSERT OR REPLACE INTO index_tags(name, index_digest) VALUES (?,?)",
                                (tag, digest))
        return digest

    def index(self, digest: str) -> dict:
        return json.loads(self.blobs.read_bytes(digest))

    def index_of(self, canonical: str) -> str | None:
        row = self.db.execute("SELECT index_digest FROM index_tags WHERE name=?", (canonical,)).fetchone()
        return row[0] if row else None

    def index_images(self, digest: str) -> list[Image]:
        out = []
        for desc in self.index(digest).get("manifests", []):
            row = self.db.execute("SELECT id FROM images WHERE manifest=?", (desc["digest"],)).fetchone()
            if row is None:
                raise StoreError(f"index {digest} names manifest {desc['digest']}, which is not in the store")
            out.append(self.image(row[0]))
        return out

    def image_for_platform(self, index_digest: str, platform: str | None = None) -> Image:
        from ..image.platform import Platform

        want = Platform.parse(platform) if platform else Platform.host()
        candidates = want.compatible() if hasattr(want, "compatible") else (want,)
        images = self.index_images(index_digest)
        for cand in candidates:
            for image in images:
                cfg = image.config
                have = Platform(os=cfg.get("os", "linux"), architecture=cfg.get("architecture", ""),
                                variant=cfg.get("variant"))
                if cand.matches(have):
                    return image
        raise ImageNotFound(f"no image for platform {want} in index {index_digest}")

    def images(self) -> list[Image]:
        ids = [r[0] for r in self.db.execute("SELECT id FROM images ORDER BY added DESC")]
        return [self.image(i) for i in ids]

    def tag(self, image_id: str, name: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM index_tags WHERE name=?", (name,))
            self.db.execute("INSERT OR REPLACE INTO tags(name, image_id) VALUES (?,?)", (name, image_id))

    def untag(self, name: str) -> str | None:
        with self.transaction():
            row = self.db.execute("SELECT image_id FROM tags WHERE name=?", (name,)).fetchone()
            if row:
                self.db.execute("DELETE FROM tags WHERE name=?", (name,))
            else:
                row = self.db.execute("SELECT index_digest FROM index_tags WHERE name=?", (name,)).fetchone()
                self.db.execute("DELETE FROM index_tags WHERE name=?", (name,))
            return row[0] if row else None

    def tags_of(self, image_id: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM tags WHERE image_id=?", (image_id,))]

    def delete_image(self, image_id: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM tags WHERE image_id=?", (image_id,))
            self.db.execute("DELETE FROM images WHERE id=?", (image_id,))

    # -- build cache ----------------------------------------------------------

    def cache_get(self, key: str) -> dict | None:
        row = self.db.execute("SELECT value FROM cache WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        self.db.execute("UPDATE cache SET used=? WHERE key=?", (time.time(), key))
        return json.loads(row[0])

    def cache_put(self, key: str, value: dict, slot: str, inputs: dict) -> None:
        now = time.time()
        self.db.execute(
            "INSERT OR REPLACE INTO cache(key, value, slot, inputs, added, used) VALUES (?,?,?,?,?,?)",
            (key, json.dumps(value), slot, json.dumps(inputs), now, now),
        )

    def cache_previous(self, slot: str) -> dict | None:
        """The inputs of the most recently used step in this slot."""
        row = self.db.execute(
            "SELECT inputs FROM cache WHERE slot=? ORDER BY used DESC LIMIT 1", (slot,)).fetchone()
        return json.loads(row[0]) if row else None

    def cache_clear(self) -> int:
        with self.transaction():
            n = self.db.execute("DELETE FROM cache").rowcount
        return n

    # -- snapshots ------------------------------------------------------------

    def snapshot(self, chain_id: str) -> Path | None:
        row = self.db.execute("SELECT dir FROM snapshots WHERE chain_id=?", (chain_id,)).fetchone()
        if row is None:
            return None
        path = self.snapshot_dir / row[0]
        return path if path.is_dir() else None

    def new_snapshot_dir(self) -> Path:
        """A fresh directory to fill, later committed with add_snapshot()."""
        path = Path(os.path.realpath(self.snapshot_dir))
        for _ in range(1000):
            name = os.urandom(4).hex()
            try:
                (path / name).mkdir()
                return path / name
            except FileExistsError:
                continue
        raise StoreError("cannot allocate a snapshot directory")

    def add_snapshot(self, chain_id: str, path: Path, parent: str | None, diff_id: str) -> Path:
        with self.transaction():
            row = self.db.execute("SELECT dir FROM snapshots WHERE chain_id=?", (chain_id,)).fetchone()
            if row and (self.snapshot_dir / row[0]).is_dir():
                existing = self.snapshot_dir / row[0]
            else:
                self.db.execute(
                    "INSERT OR REPLACE INTO snapshots(chain_id, dir, parent, diff_id, added) VALUES (?,?,?,?,?)",
                    (chain_id, path.name, parent, diff_id, time.time()))
                return path
        remove_tree(path)
        return existing

    def remove_snapshot(self, chain_id: str) -> None:
        """Forget a snapshot and delete its directory (record first: a crash in
        between leaves an orphaned directory, which gc and fsck remove)."""
        with self.transaction():
            row = self.db.execute("SELECT dir FROM snapshots WHERE chain_id=?", (chain_id,)).fetchone()
            self.db.execute("DELETE FROM snapshots WHERE chain_id=?", (chain_id,))
        if row and row[0] and "/" not in row[0] and row[0] not in (".", "..", "empty"):
            remove_tree(self.snapshot_dir / row[0])

    # -- garbage collection ---------------------------------------------------

    def referenced_blobs(self) -> set[str]:
        keep: set[str] = set()
        for image_id, manifest_digest in self.db.execute("SELECT id, manifest FROM images").fetchall():
            keep.add(image_id)
            keep.add(manifest_digest)
            try:
                manifest = json.loads(self.blobs.read_bytes(manifest_digest))
            except StoreError:
                continue
            keep.update(layer["digest"] for layer in manifest.get("layers", []))
        for (digest,) in self.db.execute("SELECT DISTINCT index_digest FROM index_tags").fetchall():
            keep.add(digest)
        for (value,) in self.db.execute("SELECT value FROM cache").fetchall():
            data = json.loads(value)
            keep.update(data.get("blobs", []))
        return keep

    def gc(self, keep_images: set[str] = frozenset()) -> tuple[int, int]:
        """Delete unreferenced blobs and snapshots; returns (count, bytes).
        `keep_images` (ids) keep their content even when untagged."""
        with self.lock(exclusive=True):
            self.blobs.clean_ingest()
            keep = self.referenced_blobs()
            for image_id in keep_images:
                try:
                    config = json.loads(self.blobs.read_bytes(image_id))
                except (StoreError, ValueError):
                    continue
                keep.add(image_id)
                keep.update(config.get("rootfs", {}).get("diff_ids", []))
            count = freed = 0
            for digest in self.blobs.all():
                if digest not in keep:
                    freed += self.blobs.size(digest)
                    self.blobs.delete(digest)
                    count += 1
            live_diffs = keep
            rows = self.db.execute("SELECT chain_id, dir, diff_id FROM snapshots").fetchall()
            with self.transaction():
                for chain_id, name, diff_id in rows:
                    if diff_id not in live_diffs:
                        self.db.execute("DELETE FROM snapshots WHERE chain_id=?", (chain_id,))
                        remove_tree(self.snapshot_dir / name)
            known = {r[0] for r in self.db.execute("SELECT dir FROM snapshots")}
            for entry in self.snapshot_dir.iterdir():
                if entry.name not in known:
                    remove_tree(entry)
            for entry in self.tmp_dir.iterdir():
                remove_tree(entry)
            return count, freed


def remove_tree(path: Path) -> None:
    """rm -rf that never follows symlinks (shutil.rmtree does not): a
    directory goes with everything in it; anything else (a file, a symlink,
    a socket...) is unlinked; a missing path is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        Path(path).unlink(missing_ok=True)
        return
    shutil.rmtree(path, ignore_errors=True)

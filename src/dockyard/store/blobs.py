"""Content-addressed blob storage.

Blobs live at ``blobs/sha256/<hex>``. Writers stream into ``ingest/``, the
digest is computed while writing, the file is fsynced and then renamed into
place, so a crash leaves at worst a stray ingest file and never a blob whose
name does not match its bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

from ..errors import StoreError

_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
CHUNK = 1 << 20


def check_digest(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise StoreError(f"invalid digest: {digest!r}")
    return digest


class BlobWriter:
    """A file in the ingest area that becomes a blob on commit()."""

    def __init__(self, store: BlobStore):
        self._store = store
        fd, name = tempfile.mkstemp(dir=store.ingest_dir, prefix="ingest-")
        self._file = os.fdopen(fd, "wb")
        self._path = Path(name)
        self._hash = hashlib.sha256()
        self.size = 0
        self.digest: str | None = None

    def write(self, data: bytes) -> int:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def commit(self, expected: str | None = None) -> str:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = "sha256:" + self._hash.hexdigest()
        if expected is not None and expected != digest:
            self._path.unlink(missing_ok=True)
            raise StoreError(f"digest mismatch: expected {expected}, got {digest}")
        target = self._store.path(digest)
        if target.exists():
            self._path.unlink(missing_ok=True)
        else:
            os.chmod(self._path, 0o644)
            os.rename(self._path, target)
        self.digest = digest
        return digest

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.digest is None:
            self.abort()


class BlobStore:
    def __init__(self, root: Path):
        self.dir = root / "blobs" / "sha256"
        self.ingest_dir = root / "ingest"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.dir / check_digest(digest)[7:]

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if (expected is None or expected == digest) and self.has(digest):
            return digest    # already durable: a rebuild's config and manifest cost no fsync
        with self.writer() as w:
            w.write(data)
            return w.commit(expected)

    def put_stream(self, stream: BinaryIO, expected: str | None = None) -> str:
        with self.writer() as w:
            while chunk := stream.read(CHUNK):
                w.write(chunk)
            return w.commit(expected)

    def read_bytes(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store") from None

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def all(self) -> list[str]:
        return ["sha256:" + p.name for p in self.dir.iterdir() if len(p.name) == 64]

    def clean_ingest(self) -> None:
        for p in self.ingest_dir.iterdir():
            p.unlink(missing_ok=True)

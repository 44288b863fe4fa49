"""What the store remembers about registries, in two tables of its SQLite.

``registry_blobs``: a local (uncompressed) layer, by diff id, is known as
compressed blob ``digest`` (with ``media_type`` and ``size``) in
``registry``/``repository`` (the reference's domain and path), because we pulled it from there or pushed it
there. Push uses it to HEAD or mount instead of compressing again.

``registry_manifests``: image ``image_id`` is ``digest`` in
``registry``/``repository`` (Docker's RepoDigests).

``registry_schemes``: the scheme an insecure registry answered on last
time, tried first next time (a plain-HTTP one then costs no TLS attempt).

Only the thread that owns the pull or push touches these (one connection).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dockyard.store import Store

__all__ = ["BlobSource", "ensure_tables", "forget_blob", "has_manifest", "known_digests", "known_scheme",
           "known_sources", "manifests_of", "remember_blobs", "remember_manifest", "remember_scheme", "repo_digests"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registry_blobs (
    diff_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    added REAL NOT NULL,
    PRIMARY KEY (diff_id, digest, registry, repository)
);
CREATE INDEX IF NOT EXISTS registry_blobs_digest ON registry_blobs(digest);
CREATE TABLE IF NOT EXISTS registry_manifests (
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    image_id TEXT NOT NULL,
    added REAL NOT NULL,
    PRIMARY KEY (registry, repository, digest)
);
CREATE INDEX IF NOT EXISTS registry_manifests_image ON registry_manifests(image_id);
CREATE TABLE IF NOT EXISTS registry_schemes (
    host TEXT PRIMARY KEY,
    scheme TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class BlobSource:
    diff_id: str
    digest: str
    media_type: str
    size: int
    registry: str
    repository: str


def ensure_tables(store: Store) -> None:
    # once per store object: executescript commits, and this runs before every query
    if getattr(store, "_registry_tables", False):
        return
    store.db.executescript(_SCHEMA)
    store._registry_tables = True  # type: ignore[attr-defined]


def remember_blobs(store: Store, sources: list[BlobSource]) -> None:
    ensure_tables(store)
    now = time.time()
    with store.transaction():
        store.db.executemany(
            "INSERT OR REPLACE INTO registry_blobs(diff_id, digest, media_type, size, registry,"
            " repository, added) VALUES (?,?,?,?,?,?,?)",
            [(s.diff_id, s.digest, s.media_type, s.size, s.registry, s.repository, now)
             for s in sources])


def known_sources(store: Store, diff_id: str) -> list[BlobSource]:
    """Newest first."""
    ensure_tables(store)
    rows = store.db.execute(
        "SELECT diff_id, digest, media_type, size, registry, repository FROM registry_blobs"
        " WHERE diff_id=? ORDER BY added DESC", (diff_id,)).fetchall()
    return [BlobSource(*row) for row in rows]


def known_digests(store: Store, registry: str, repository: str) -> dict[str, str]:
    """diff id -> the blob digest it is known by in ``registry``/``repository`` (the newest)."""
    ensure_tables(store)
    rows = store.db.execute(
        "SELECT diff_id, digest FROM registry_blobs WHERE registry=? AND repository=? ORDER BY added",
        (registry, repository)).fetchall()
    return dict(rows)


def forget_blob(store: Store, source: BlobSource) -> None:
    """A recorded blob the registry no longer has."""
    ensure_tables(store)
    store.db.execute("DELETE FROM registry_blobs WHERE diff_id=? AND digest=? AND registry=?"
                     " AND repository=?",
                     (source.diff_id, source.digest, source.registry, source.repository))


def remember_manifest(store: Store, registry: str, repository: str, digest: str,
                      image_id: str) -> None:
    ensure_tables(store)
    store.db.execute(
        "INSERT OR REPLACE INTO registry_manifests(registry, repository, digest, image_id, added)"
        " VALUES (?,?,?,?,?)", (registry, repository, digest, image_id, time.time()))


def has_manifest(store: Store, registry: str, repository: str, digest: str, image_id: str) -> bool:
    ensure_tables(store)
    return store.db.execute(
        "SELECT 1 FROM registry_manifests WHERE registry=? AND repository=? AND digest=? AND image_id=?",
        (registry, repository, digest, image_id)).fetchone() is not None


def manifests_of(store: Store, registry: str, repository: str, image_id: str) -> set[str]:
    """The digests image ``image_id`` is known by in ``registry``/``repository``."""
    ensure_tables(store)
    rows = store.db.execute(
        "SELECT digest FROM registry_manifests WHERE registry=? AND repository=? AND image_id=?",
        (registry, repository, image_id)).fetchall()
    return {r[0] for r in rows}


def known_scheme(store: Store, host: str) -> str | None:
    ensure_tables(store)
    row = store.db.execute("SELECT scheme FROM registry_schemes WHERE host=?", (host,)).fetchone()
    return row[0] if row else None


def remember_scheme(store: Store, host: str, scheme: str) -> None:
    ensure_tables(store)
    store.db.execute("INSERT OR REPLACE INTO registry_schemes(host, scheme) VALUES (?,?)", (host, scheme))


def repo_digests(store: Store, image_id: str) -> list[str]:
    """``registry/repository@digest`` for each place the image is known to be."""
    ensure_tables(store)
    rows = store.db.execute(
        "SELECT registry, repository, digest FROM registry_manifests WHERE image_id=?"
        " ORDER BY added", (image_id,)).fetchall()
    return [f"{r}/{p}@{d}" for r, p, d in rows]

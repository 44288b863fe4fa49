"""SQLite metadata: tags, images, snapshots and the build cache.

Blobs are the truth for content; this database only says which content
matters. WAL mode and a busy timeout let several dockyard processes share it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,          -- config digest
    manifest TEXT NOT NULL,       -- manifest digest
    created TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,        -- normalised reference, e.g. docker.io/library/busybox:latest
    image_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS indexes (
    digest TEXT PRIMARY KEY,      -- an OCI image index over images in this store
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS index_tags (
    name TEXT PRIMARY KEY,        -- a tag that names an index instead of one image
    index_digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    chain_id TEXT PRIMARY KEY,
    dir TEXT NOT NULL,
    parent TEXT,
    diff_id TEXT NOT NULL,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,          -- JSON: what the step produced
    slot TEXT NOT NULL,           -- where the step sits (for explaining misses)
    inputs TEXT NOT NULL,         -- JSON: what the key was made of
    added REAL NOT NULL,
    used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_slot ON cache(slot, used);
CREATE TABLE IF NOT EXISTS filehash (
    path TEXT PRIMARY KEY,        -- a build context file, absolute
    stat TEXT NOT NULL,           -- "ino:size:mtime_ns:ctime_ns" when it was hashed
    digest TEXT NOT NULL          -- sha256 hex of its content
);
"""


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn

"""Digests of layer streams: a hashing writer and OCI chain IDs."""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO

from dockyard.errors import LayerError

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class HashingWriter:
    """Wraps a binary file: counts the bytes written and hashes them (sha256) on the way."""

    def __init__(self, fileobj: BinaryIO):
        self._file = fileobj
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        self._hash.update(view)
        done = 0
        while done < len(view):  # a raw file may take only part of it
            n = self._file.write(view[done:])
            done += len(view) - done if n is None else n
        self.size += len(view)
        return len(view)

    def flush(self) -> None:
        self._file.flush()

    def writable(self) -> bool:
        return True

    @property
    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def chain_id(diff_ids: list[str]) -> str:
    """The ChainID of a layer stack (OCI image spec, config.md):
    ChainID(L0) = DiffID(L0); ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln))."""
    if not diff_ids:
        raise LayerError("chain ID of an empty layer list")
    return chain_ids(diff_ids)[-1]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The ChainID of every prefix of the stack: chain_ids(d)[i] == chain_id(d[:i+1])."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not _DIGEST.fullmatch(diff_id):
            raise LayerError(f"not a sha256 diff ID: {diff_id!r}")
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out

"""Content digests: ``<algorithm>:<hex>``, the identity of every blob.

Only the algorithms the OCI image spec registers (sha256, sha512) are
accepted. The spec's grammar allows others, but a digest we cannot compute
is a digest we cannot verify, so we refuse it at the edge, as go-digest and
go-containerregistry do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from dockyard.errors import go_quote
from dockyard.image.errors import ImageFormatError

__all__ = ["SHA256", "SHA512", "Digest"]

SHA256 = "sha256"
SHA512 = "sha512"

# algorithm -> length of its lowercase hex encoding
_HEX_LENGTH = {SHA256: 64, SHA512: 128}
_HEX = re.compile(r"[a-f0-9]+")


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A validated digest. ``str(d)`` is the exact inverse of ``Digest.parse``."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        want = _HEX_LENGTH.get(self.algorithm)
        if want is None:
            raise ImageFormatError(
                f"invalid digest {go_quote(f'{self.algorithm}:{self.hex}')}: unsupported algorithm "
                f"{go_quote(self.algorithm)} (want sha256 or sha512)"
            )
        if len(self.hex) != want or not _HEX.fullmatch(self.hex):
            raise ImageFormatError(
                f"invalid digest {go_quote(f'{self.algorithm}:{self.hex}')}: {self.algorithm} needs "
                f"{want} lowercase hex characters"
            )

    @classmethod
    def parse(cls, s: str) -> Digest:
        if not isinstance(s, str):
            raise ImageFormatError(f"invalid digest {s!r}: not a string")
        algorithm, sep, encoded = s.partition(":")
        if not sep or not algorithm or not encoded:
            raise ImageFormatError(f"invalid digest {go_quote(s)}: want <algorithm>:<hex>")
        return cls(algorithm, encoded)

    @classmethod
    def of_bytes(cls, data: bytes, algorithm: str = SHA256) -> Digest:
        return cls.from_hash(cls.hasher_for(algorithm, data))

    @staticmethod
    def hasher_for(algorithm: str = SHA256, data: bytes = b"") -> Any:
        """A fresh hashlib object, for digesting a stream chunk by chunk."""
        if algorithm not in _HEX_LENGTH:
            raise ImageFormatError(f"unsupported digest algorithm {algorithm!r}")
        return hashlib.new(algorithm, data)

    @classmethod
    def from_hash(cls, h: Any) -> Digest:
        """The digest of a finished hashlib object made by ``hasher_for``."""
        return cls(h.name, h.hexdigest())

    def hasher(self) -> Any:
        """A fresh hashlib object of this digest's algorithm, for verifying."""
        return hashlib.new(self.algorithm)

    def matches(self, data: bytes) -> bool:
        return Digest.of_bytes(data, self.algorithm) == self

    @property
    def short(self) -> str:
        """The 12-character prefix Docker shows for image IDs."""
        return self.hex[:12]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

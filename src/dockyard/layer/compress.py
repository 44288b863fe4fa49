"""Open a layer blob, decompressing it by sniffing its first bytes."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
from typing import BinaryIO

from dockyard.errors import LayerError

try:  # optional: zstd layers (application/vnd.oci.image.layer.v1.tar+zstd)
    import zstandard
except ImportError:  # pragma: no cover - depends on the environment
    zstandard = None  # type: ignore[assignment]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
_SNIFF = 6
_BUFSIZE = 1 << 20


class _Prefixed(io.RawIOBase):
    """A read-only stream that yields the sniffed bytes again, then the rest."""

    def __init__(self, head: bytes, rest: BinaryIO, owned: list):
        self._head = head
        self._rest = rest
        self._owned = owned

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            for obj in reversed(self._owned):
                obj.close()
        super().close()


def _read_head(stream: BinaryIO) -> bytes:
    head = b""
    while len(head) < _SNIFF:
        chunk = stream.read(_SNIFF - len(head))
        if not chunk:
            break
        head += chunk
    return head


def compression_of(head: bytes) -> str | None:
    """The compression named by a blob's first bytes: gzip, zstd, bzip2, xz or None."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(XZ_MAGIC):
        return "xz"
    return None


def open_layer(path_or_stream: str | os.PathLike | BinaryIO) -> BinaryIO:
    """A readable binary stream of the uncompressed tar. gzip, bzip2 and xz are
    decompressed with the standard library, zstd when `zstandard` is importable.
    Closing the result closes a file this function opened, not a caller's stream."""
    owned: list = []
    if isinstance(path_or_stream, (str, os.PathLike)):
        try:
            stream: BinaryIO = open(path_or_stream, "rb")  # noqa: SIM115 - the result owns it
        except OSError as exc:
            raise LayerError(f"cannot open layer {os.fspath(path_or_stream)}: {exc.strerror}") from None
        owned.append(stream)
    else:
        stream = path_or_stream
    head = _read_head(stream)
    raw = _Prefixed(head, stream, [])
    kind = compression_of(head)
    if kind is None:
        return io.BufferedReader(_Prefixed(head, stream, owned), _BUFSIZE)  # type: ignore[return-value]
    if kind == "gzip":
        inner: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    elif kind == "bzip2":
        inner = bz2.BZ2File(raw, "rb")  # type: ignore[assignment]
    elif kind == "xz":
        inner = lzma.LZMAFile(raw, "rb")  # type: ignore[assignment,arg-type]  # noqa: SIM115
    else:
        if zstandard is None:
            for obj in owned:
                obj.close()
            raise LayerError("layer is zstd-compressed but the zstandard module is not installed")
        inner = zstandard.ZstdDecompressor().stream_reader(raw, read_size=_BUFSIZE)  # type: ignore[arg-type]
    return io.BufferedReader(_Prefixed(b"", inner, owned + [inner]), _BUFSIZE)  # type: ignore[return-value]

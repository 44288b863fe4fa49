"""HTTP/1.1 on a socket: write one request, read one response, keep the
connection for the next when both sides allow it.

Only what a registry client needs: Content-Length, chunked and read-to-close
bodies, keep-alive, a CONNECT tunnel. Every line and the header count are
bounded, since the other end may be hostile. Written here rather than taken
from ``http.client``, whose import (it loads ``ssl`` and the ``email``
package) cost more than a whole no-op pull otherwise does; ``ssl`` is
imported only for a connection that needs it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

__all__ = ["BadRequest", "Connection", "ProtocolError", "Reply", "Stale"]

MAX_LINE = 65536
MAX_HEADERS = 128
MAX_INTERIM = 16  # 1xx answers before the real one: a server could send them forever
_NO_BODY = frozenset({204, 304})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ProtocolError(Exception):
    """The other end does not speak HTTP/1.1 as it should (or hung up mid-answer)."""


class BadRequest(ProtocolError):
    """A request we refuse to write (a control character in its target, say)."""


class Stale(ProtocolError):
    """Closed before any answer: on a kept-alive connection, the server let it go."""


class Connection:
    """One socket, plain or TLS, to an origin or (``tunnel``) through a proxy."""

    def __init__(self, host: str, port: int, *, timeout: float, tls=None, server_name: str = "",
                 tunnel: tuple[str, dict[str, str]] | None = None):
        # an ASCII name as bytes: a str would import the idna codec on every start
        sock = socket.create_connection((host.encode() if host.isascii() else host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tunnel is not None:
                _connect_tunnel(sock, *tunnel)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=server_name or host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.rfile = sock.makefile("rb", buffering=1 << 16)

    def settimeout(self, seconds: float) -> None:
        self.sock.settimeout(seconds)

    def close(self) -> None:
        try:
            self.rfile.close()
        finally:
            self.sock.close()

    def send(self, method: str, target: str, host: str, headers: list[tuple[str, str]],
             body: bytes | Iterable[bytes] | None) -> None:
        _check_token(method)
        if not target or any(c <= " " or c >= "\x7f" for c in target):
            raise BadRequest(f"refusing a request target with spaces or control characters: {target!r}")
        names = {k.lower() for k, _ in headers}
        lines = [f"{method} {target} HTTP/1.1"]
        if "host" not in names:
            if any(c <= " " or c >= "\x7f" for c in host):
                raise BadRequest(f"refusing a host with spaces or control characters: {host!r}")
            lines.append(f"Host: {host}")
        for k, v in headers:
            _check_token(k)
            if any((c < " " and c != "\t") or c == "\x7f" or c > "\xff" for c in v):
                raise BadRequest(f"refusing a line break or control character in header {k}")
            lines.append(f"{k}: {v}")
        chunked = False
        if "content-length" not in names and "transfer-encoding" not in names:
            if isinstance(body, bytes):
                lines.append(f"Content-Length: {len(body)}")
            elif body is not None:
                chunked = True
                lines.append("Transfer-Encoding: chunked")
            elif method in _BODY_METHODS:
                lines.append("Content-Length: 0")
        if "accept-encoding" not in names:
            lines.append("Accept-Encoding: identity")  # blobs are hashed as sent: no decoding
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if isinstance(body, bytes) and len(body) <= 65536:
            self.sock.sendall(head + body)
            return
        self.sock.sendall(head)
        if isinstance(body, bytes):
            self.sock.sendall(body)
        elif body is not None:
            for chunk in body:
                if chunk:
                    self.sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                self.sock.sendall(b"0\r\n\r\n")

    def reply(self, method: str) -> Reply:
        return Reply(self.rfile, method)


class Reply:
    """Status, headers and a reader for the body, framed as RFC 9112 says."""

    def __init__(self, rfile, method: str):
        self._rfile = rfile
        for _ in range(MAX_INTERIM + 1):
            try:
                line = rfile.readline(MAX_LINE + 1)
            except ConnectionResetError:
                raise Stale("connection reset before an answer") from None
            if not line:
                raise Stale("connection closed before an answer")
            version, status, reason = _status_line(line)
            headers = _header_lines(rfile)
            if 100 <= status < 200 and status != 101:
                continue  # an interim answer; the real one follows
            break
        else:
            raise ProtocolError(f"more than {MAX_INTERIM} interim answers")
        self.status, self.reason, self.headers = status, reason, headers
        connection = {t.strip().lower() for v in self.get_all("connection") for t in v.split(",")}
        self.will_close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
        self.chunked = False
        self.remaining: int | None = None  # bytes left with Content-Length; None: chunked or to close
        self._chunk_left = 0
        self.done = False
        encodings = [t.strip().lower() for v in self.get_all("transfer-encoding") for t in v.split(",")]
        lengths = {v.strip() for v in self.get_all("content-length")}
        if method in ("HEAD", "CONNECT") or status in _NO_BODY or status < 200:
            self.remaining = 0
        elif encodings:
            if encodings[-1] != "chunked":
                raise ProtocolError(f"unsupported transfer encoding {', '.join(encodings)}")
            self.chunked = True
        elif lengths:
            if len(lengths) != 1 or not _is_number(next(iter(lengths))):
                raise ProtocolError(f"bad Content-Length {', '.join(sorted(lengths))}")
            self.remaining = int(lengths.pop())
        else:
            self.will_close = True  # the body runs until the server closes
        if self.remaining == 0:
            self.done = True

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes of the body; b"" at its end. A body cut short raises."""
        if self.done:
            return b""
        if self.chunked:
            return self._read_chunked(n)
        if self.remaining is None:
            data = self._rfile.read1(n)
            if not data:
                self.done = True
            return data
        data = self._rfile.read1(min(n, self.remaining))
        if not data:
            raise ProtocolError(f"the body ended {self.remaining} bytes early")
        self.remaining -= len(data)
        if self.remaining == 0:
            self.done = True
        return data

    def _read_chunked(self, n: int) -> bytes:
        if self._chunk_left == 0:
            line = self._rfile.readline(MAX_LINE + 1)
            size = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not size or any(c not in b"0123456789abcdefABCDEF" for c in size):
                raise ProtocolError("bad chunk size line" if line else "the body ended inside a chunk")
            self._chunk_left = int(size, 16)
            if self._chunk_left == 0:
                _header_lines(self._rfile)  # trailers, dropped
                self.done = True
                return b""
        data = self._rfile.read1(min(n, self._chunk_left))
        if not data:
            raise ProtocolError("the body ended inside a chunk")
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and self._rfile.readline(3) not in (b"\r\n", b"\n"):
            raise ProtocolError("a chunk is not followed by a line break")
        return data


def _status_line(line: bytes) -> tuple[str, int, str]:
    if len(line) > MAX_LINE:
        raise ProtocolError("status line too long")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or parts[0] not in ("HTTP/1.1", "HTTP/1.0") or len(parts[1]) != 3 \
            or not _is_number(parts[1]):
        raise ProtocolError(f"not an HTTP/1.1 answer: {line[:40]!r}")
    return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else ""


def _is_number(text: str) -> bool:
    """ASCII digits only (str.isdigit also takes "²", which int() refuses), and
    few enough for int(): its digit limit would raise, and 19 is 10**19 bytes."""
    return 0 < len(text) <= 19 and text.isascii() and text.isdigit()


def _header_lines(rfile) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    while True:
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise ProtocolError("header line too long")
        if not line:
            raise ProtocolError("connection closed inside the headers")
        if line in (b"\r\n", b"\n"):
            return headers
        if len(headers) >= MAX_HEADERS:
            raise ProtocolError(f"more than {MAX_HEADERS} headers")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"bad header line {line[:40]!r}")
        headers.append((name, value.strip()))


def _check_token(word: str) -> None:
    if not word or any(c <= " " or c >= "\x7f" or c in '()<>@,;:\\"/[]?={}' for c in word):
        raise BadRequest(f"not an HTTP token: {word!r}")


def _connect_tunnel(sock: socket.socket, authority: str, headers: dict[str, str]) -> None:
    """CONNECT through an HTTP proxy; afterwards the socket reaches ``authority``."""
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    rfile = sock.makefile("rb", buffering=0)  # unbuffered: nothing of the tunnel may be read ahead
    try:
        reply = Reply(_LineReader(rfile), "CONNECT")
    finally:
        rfile.close()
    if not 200 <= reply.status < 300:
        raise ProtocolError(f"the proxy refused to connect to {authority}: HTTP {reply.status} {reply.reason}")


class _LineReader:
    """readline() one byte at a time on an unbuffered socket file (a CONNECT answer is short)."""

    def __init__(self, raw):
        self._raw = raw

    def readline(self, limit: int) -> bytes:
        out = bytearray()
        while len(out) < limit:
            b = self._raw.read(1)
            if not b:
                break
            out += b
            if b == b"\n":
                break
        return bytes(out)

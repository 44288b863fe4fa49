"""Fuzzing the HTTP/1.1 wire module with answers a hostile registry could
send: any bytes, or a response whose status line, headers, framing or chunks
are subtly wrong. Reading one is a body or a ProtocolError, never another
exception, never a hang, never more than a bounded read ahead of the caller;
a well-formed answer gives back its exact body and leaves the stream at the
next one. Requests with line breaks or control characters are refused before
a byte is written."""

from __future__ import annotations

import io
import signal
import socket
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from hardening_lib import corpus_files, fuzz_settings
from hypothesis import example, given
from hypothesis import strategies as st

from dockyard.registry.http_wire import (MAX_HEADERS, MAX_LINE, BadRequest, Connection, ProtocolError, Reply,
                                        _connect_tunnel)

FUZZ = fuzz_settings()
READ_AHEAD = 1 << 16  # the buffer Connection gives its socket file
BODY_CAP = 1 << 20    # what a test reads of a body at most


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: float = 5.0):
    def alarm(signum, frame):
        raise Hang("no answer within the time limit")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Source(io.RawIOBase):
    """Bytes as a server would send them, then (``endless``) the same byte
    forever; counts what was taken from it."""

    def __init__(self, data: bytes, endless: bytes = b""):
        self.data, self.pos, self.endless, self.served = data, 0, endless, 0

    def readable(self):
        return True

    def readinto(self, buf):
        if self.pos < len(self.data):
            n = min(len(buf), len(self.data) - self.pos)
            buf[:n] = self.data[self.pos:self.pos + n]
            self.pos += n
        elif self.endless:
            n, k = len(buf), len(self.endless)
            phase = self.served - len(self.data)
            buf[:n] = (self.endless * (n // k + 2))[phase % k:phase % k + n]
        else:
            return 0
        self.served += n
        return n


def reader(data: bytes, endless: bytes = b"") -> tuple[io.BufferedReader, Source]:
    source = Source(data, endless)
    return io.BufferedReader(source, buffer_size=READ_AHEAD), source


def read_body(reply: Reply, sizes) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < BODY_CAP:
        n = sizes[i % len(sizes)]
        i += 1
        data = reply.read(n)
        assert len(data) <= n
        if not data:
            assert reply.done
            break
        out += data
    return bytes(out)


def answer(data: bytes, method: str = "GET", sizes=(65536,)) -> bytes | ProtocolError:
    """The body of the answer in ``data``, or the ProtocolError reading it raised."""
    rfile, _ = reader(data)
    with time_limit():
        try:
            return read_body(Reply(rfile, method), sizes)
        except ProtocolError as e:
            assert str(e)
            return e


# -- well-formed answers -----------------------------------------------------------

tokens = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~",
                 min_size=1, max_size=20)
field_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                       max_size=40).map(str.strip)
extra_headers = st.lists(st.tuples(tokens, field_values), max_size=6).map(
    lambda hs: [(k, v) for k, v in hs if k.lower() not in ("content-length", "transfer-encoding", "connection")])


def head(status: str, headers) -> bytes:
    return (f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1")


def chunked(body: bytes, cuts: list[int], extension: str, trailers) -> bytes:
    out = bytearray()
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    for a, b in zip(points, points[1:]):
        out += b"%x%s\r\n%s\r\n" % (b - a, extension.encode(), body[a:b])
    out += b"0\r\n" + b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in trailers) + b"\r\n"
    return bytes(out)


@st.composite
def well_formed(draw):
    body = draw(st.binary(max_size=3000))
    headers = draw(extra_headers)
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    if framing == "length":
        wire = head("200 OK", headers + [("Content-Length", str(len(body)))]) + body
    elif framing == "chunked":
        te = draw(st.sampled_from(["chunked", "Chunked", " chunked "]))
        ext = draw(st.sampled_from(["", ";a=b", ';name="x;y"', " ;a", ";"]))
        wire = head("200 OK", headers + [("Transfer-Encoding", te)]) + chunked(
            body, draw(st.lists(st.integers(0, 3000), max_size=8)), ext, draw(extra_headers))
    else:
        wire = head("200 OK", headers + [("Connection", "close")]) + body
    interim = draw(st.sampled_from([b"", b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early\r\nLink: x\r\n\r\n"]))
    return interim + wire, body, framing


@FUZZ
@given(well_formed(), st.lists(st.integers(1, 5000), min_size=1, max_size=4))
def test_well_formed_answers_round_trip(case, sizes):
    wire, body, framing = case
    after = head("204 No Content", [])
    rfile, _ = reader(wire + (after if framing != "close" else b""))
    with time_limit():
        reply = Reply(rfile, "GET")
        assert reply.status == 200
        assert read_body(reply, sizes) == body
        assert reply.will_close == (framing == "close")
        if framing != "close":  # kept alive: the next answer starts right after this one
            nxt = Reply(rfile, "GET")
            assert nxt.status == 204 and nxt.done


@pytest.mark.parametrize("method,status", [("HEAD", "200 OK"), ("GET", "204 No Content"),
                                           ("GET", "304 Not Modified"), ("CONNECT", "200 OK")])
def test_answers_without_a_body_do_not_read_one(method, status):
    wire = head(status, [("Content-Length", "10")])
    rfile, _ = reader(wire + head("200 OK", [("Content-Length", "2")]) + b"ok")
    reply = Reply(rfile, method)
    assert reply.done and reply.read(10) == b""
    assert read_body(Reply(rfile, "GET"), [7]) == b"ok"


def test_an_advertised_huge_body_is_not_read_ahead():
    """10 GB announced and an endless stream: the headers take one buffer, and
    every read takes no more than the caller asked for (plus one buffer)."""
    for framing in ([("Content-Length", str(10 << 30))], [("Transfer-Encoding", "chunked")]):
        prefix = b"" if framing[0][0] == "Content-Length" else b"%x\r\n" % (10 << 30)
        rfile, source = reader(head("200 OK", framing) + prefix, endless=b"x")
        with time_limit():
            reply = Reply(rfile, "GET")
            assert source.served <= READ_AHEAD
            got = 0
            for _ in range(64):
                data = reply.read(4096)
                assert 0 < len(data) <= 4096
                got += len(data)
            assert source.served <= got + 2 * READ_AHEAD
            assert not reply.done


def test_endless_headers_and_interim_answers_stop():
    with time_limit():
        for endless in (b"X-A: b\r\n", b"HTTP/1.1 100 Continue\r\n\r\n", b"a"):
            rfile, source = reader(head("200 OK", [])[:-2] if endless != b"HTTP/1.1 100 Continue\r\n\r\n"
                                   else b"", endless=endless)
            with pytest.raises(ProtocolError):
                Reply(rfile, "GET")
            assert source.served <= (MAX_HEADERS + 2) * (MAX_LINE + READ_AHEAD)


# -- malformed answers ---------------------------------------------------------------

status_lines = st.sampled_from([
    b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 200", b"HTTP/1.1 200 ", b"HTTP/2 200 OK", b"HTTP/1.1 20 OK",
    b"HTTP/1.1 2000 OK", b"HTTP/1.1 -20 OK", b"HTTP/1.1 2\xb20 OK", b"HTTP/1.1 \xb9\xb2\xb3 OK", b"HTTP/1.1  200 OK",
    b"HTTP/1.1 +20 OK", b"http/1.1 200 OK", b"HTTP/1.1 000 Zero", b"HTTP/1.1 199 Odd", b"HTTP/1.1 101 Switch",
    b"HTTP/1.1 999 High", b"HTTP/1.1 200 OK\x00", b"\x00HTTP/1.1 200 OK", b"HTTP/1.1\t200 OK", b"",
    b"HTTP/1.1 \xd9\xa2\xd9\xa0\xd9\xa0 OK", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
])
lengths = st.sampled_from([
    b"0", b"5", b"10", b"-1", b"+5", b" 5 ", b"5 5", b"0x10", b"1e3", b"", b"\xb2", b"\xb9\xb2", b"5\x00",
    b"1" * 30, b"9" * 5000, b"10737418240", b"5, 5", b"5,6", b"\xd9\xa5", b"\xef\xbc\x95", b"00000000005",
])
encodings = st.sampled_from([
    b"chunked", b"gzip", b"gzip, chunked", b"chunked, gzip", b"chunked, chunked", b"", b",", b"identity",
    b"\xe9chunked", b"chunked\x00", b"CHUNKED",
])
header_lines = st.one_of(
    st.tuples(st.just(b"Content-Length: "), lengths).map(b"".join),
    st.tuples(st.just(b"Transfer-Encoding: "), encodings).map(b"".join),
    st.sampled_from([b"Connection: close", b"Connection: keep-alive", b" folded: value", b"\tX: y", b"X-A:",
                     b": novalue", b"no colon", b"X-A : b", b"X\x00A: b", b"X-\xe9: \xff\xfe", b"X-A: a\rb",
                     b"Content-Length:5", b"Content-Length : 5", b"\r", b"X-A: " + b"a" * (MAX_LINE + 5)]),
    st.binary(max_size=30).filter(lambda b: b"\n" not in b),
)
chunk_size_lines = st.sampled_from([
    b"5", b"0", b"-5", b"+5", b"0x5", b" 5", b"5 ", b"5;", b"5;a=b", b"5 ; a", b"", b";", b"g", b"\xb2",
    b"\xd9\xa5", b"5\x00", b"f" * 20, b"f" * 5000, b"5\r", b"5\n", b"5;" + b"x" * (MAX_LINE + 5), b"5a5a",
])
line_ends = st.sampled_from([b"\r\n", b"\n", b"\r", b"", b"\n\r", b"\r\r\n"])


@st.composite
def malformed(draw):
    out = bytearray(draw(status_lines) + draw(line_ends))
    for _ in range(draw(st.integers(0, 5))):
        out += draw(header_lines) + draw(line_ends)
    out += draw(st.sampled_from([b"\r\n", b"\n", b""]))
    for _ in range(draw(st.integers(0, 4))):
        out += draw(chunk_size_lines) + draw(line_ends) + draw(st.binary(max_size=12)) + draw(line_ends)
    out += draw(st.binary(max_size=20))
    cut = draw(st.integers(0, len(out)))
    return bytes(out[:cut]) if draw(st.booleans()) else bytes(out)


@FUZZ
@given(malformed() | st.binary(max_size=400), st.sampled_from(["GET", "HEAD", "PUT"]),
       st.lists(st.integers(1, 300), min_size=1, max_size=3))
@example(b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n", "GET", [10])
@example(b"HTTP/1.1 2\xb20 OK\r\n\r\n", "GET", [10])
@example(b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", "GET", [10])
def test_malformed_answers_are_a_protocol_error(data, method, sizes):
    answer(data, method, sizes)


@FUZZ
@given(malformed() | st.binary(max_size=400))
def test_malformed_answers_over_a_socket(data):
    """The same through a real socket the server closes after its bytes: no hang."""
    ours, theirs = socket.socketpair()
    ours.settimeout(5)

    def serve():
        with theirs:
            try:
                theirs.sendall(data)
            except OSError:
                pass  # we stopped reading
    sender = threading.Thread(target=serve)
    sender.start()
    rfile = ours.makefile("rb", buffering=READ_AHEAD)
    try:
        with time_limit(10):
            try:
                read_body(Reply(rfile, "GET"), [4096])
            except ProtocolError:
                pass
    finally:
        rfile.close()
        ours.close()
        sender.join(5)


@FUZZ
@given(malformed() | st.binary(max_size=400) | st.just(b"HTTP/1.1 200 Connection established\r\n\r\n"))
@example(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
def test_proxy_answers_to_connect(data):
    """A proxy's answer to CONNECT opens the tunnel (2xx) or is a ProtocolError;
    not a byte after its head is taken from the socket (it belongs to TLS)."""
    rfile, _ = reader(data + b"\x16TLS")
    try:
        opens = 200 <= Reply(rfile, "CONNECT").status < 300
        after = rfile.read()
    except ProtocolError:
        opens = False
    ours, theirs = socket.socketpair()
    ours.settimeout(5)
    with theirs:
        theirs.sendall(data + b"\x16TLS")
        theirs.shutdown(socket.SHUT_WR)
        try:
            with time_limit(10):
                try:
                    _connect_tunnel(ours, "registry.example:443", {})
                except ProtocolError:
                    assert not opens
                    return
            assert opens
            assert ours.recv(len(after) + 10) == after
        finally:
            ours.close()


@pytest.mark.parametrize("path", corpus_files("http"), ids=lambda p: p.name)
def test_http_corpus(path: Path):
    """Each kept answer is read to its end or refused with a ProtocolError."""
    answer(path.read_bytes())


# -- requests -------------------------------------------------------------------------

class Wire:
    def __init__(self):
        self.sent = bytearray()

    def sendall(self, data):
        self.sent += data


def connection() -> tuple[Connection, Wire]:
    conn = Connection.__new__(Connection)
    conn.sock = Wire()
    return conn, conn.sock


def bad_value(v: str) -> bool:
    return any((c < " " and c != "\t") or c == "\x7f" or c > "\xff" for c in v)


def bad_token(w: str) -> bool:
    return not w or any(c <= " " or c >= "\x7f" or c in '()<>@,;:\\"/[]?={}' for c in w)


hostile_text = st.text(st.sampled_from("aZ0-/:; \t\r\n\x00\x01\x7f\x85\xe9\u2028\u20ac\U0001f600"), max_size=12)


@FUZZ
@given(st.sampled_from(["GET", "PUT", "G ET", "GET\r\n", "", "G\x00"]) | hostile_text,
       st.sampled_from(["/v2/", "/v2/a?b=c", "http://h/v2/"]) | hostile_text,
       st.lists(st.tuples(tokens | hostile_text, field_values | hostile_text), max_size=3),
       st.sampled_from(["registry.example:5000", "h\r\nX: y", "h h", ""]))
@example("GET", "/v2/", [("X-A", "b\r\nInjected: yes")], "h")
@example("GET", "/v2/", [("X-A", "\u20ac")], "h")
@example("GET", "/v2/", [("X-A", "a\x00b")], "h")
def test_requests_with_line_breaks_or_controls_are_refused(method, target, headers, host):
    conn, wire = connection()
    refused = (bad_token(method) or not target or any(c <= " " or c >= "\x7f" for c in target)
               or any(bad_token(k) or bad_value(v) for k, v in headers)
               or (not any(k.lower() == "host" for k, _ in headers) and any(c <= " " or c >= "\x7f" for c in host)))
    try:
        conn.send(method, target, host, headers, b"")
    except BadRequest as e:
        assert refused, e
        assert wire.sent == b""
        return
    assert not refused
    text = bytes(wire.sent).decode("latin-1")
    assert text.endswith("\r\n\r\n") and text.count("\r\n\r\n") == 1
    lines = text[:-4].split("\r\n")
    assert lines[0] == f"{method} {target} HTTP/1.1"
    assert not any("\r" in line or "\n" in line or "\x00" in line for line in lines)
    assert len(lines) >= 1 + len(headers)

"""HTTP/1.1 framing against a raw socket server that answers with exact bytes:
chunked and Content-Length bodies, keep-alive, idle connections the server
closed, and answers a hostile server could send."""

from __future__ import annotations

import socket
import threading

import pytest

from dockyard.registry.http_transport import HttpTransport
from dockyard.registry.transport import Headers, Request, TransportError


class RawServer:
    """Each accepted connection is served by ``answer(n)`` -> list of raw replies,
    one per request read on it (then the connection is closed)."""

    def __init__(self, answer):
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn, self.connections), daemon=True).start()

    def _one(self, conn, n):
        with conn:
            rfile = conn.makefile("rb")
            for reply in self.answer(n):
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = rfile.readline()
                    if not line:
                        return
                    head += line
                length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                body = rfile.read(length[0]) if length else b""
                self.requests.append(head + body)
                conn.sendall(reply)

    def close(self):
        self.sock.close()


@pytest.fixture
def serve():
    servers = []

    def make(answer):
        server = RawServer(answer)
        servers.append(server)
        return server
    yield make
    for server in servers:
        server.close()


def get(transport, server, path="/v2/"):
    return transport.handle(Request("GET", f"http://{server.host}{path}", Headers({"User-Agent": "t"})))


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def test_keep_alive_reuses_one_connection(serve):
    server = serve(lambda n: [OK, OK, OK])
    transport = HttpTransport(lambda host: False)
    for _ in range(3):
        assert get(transport, server).read() == b"hello"
    assert server.connections == 1
    transport.close()


def test_a_connection_the_server_closed_is_replaced(serve):
    server = serve(lambda n: [OK])  # one answer per connection, then it hangs up
    transport = HttpTransport(lambda host: False)
    assert [get(transport, server).read() for _ in range(3)] == [b"hello"] * 3
    assert server.connections == 3
    transport.close()


def test_chunked_body_with_extensions_and_trailers(serve):
    reply = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n")
    server = serve(lambda n: [reply, OK])
    transport = HttpTransport(lambda host: False)
    assert get(transport, server).read() == b"hello world"
    assert get(transport, server).read() == b"hello"  # the connection was left at the right place
    assert server.connections == 1
    transport.close()


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",                       # cut short
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",              # inside a chunk
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",  # bad size
])
def test_a_truncated_or_garbled_body_is_a_temporary_error(serve, reply):
    server = serve(lambda n: [reply])
    transport = HttpTransport(lambda host: False)
    response = get(transport, server)
    with pytest.raises(TransportError) as info:
        response.read()
    assert info.value.temporary and server.host in str(info.value)
    transport.close()


@pytest.mark.parametrize("reply", [
    b"SSH-2.0-OpenSSH_9.2\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 1000 + b"\r\n",
    b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 100_000 + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
])
def test_hostile_answers_are_refused(serve, reply):
    server = serve(lambda n: [reply])
    transport = HttpTransport(lambda host: False)
    with pytest.raises(TransportError):
        get(transport, server)
    transport.close()


def test_no_line_breaks_or_spaces_go_out_in_a_request(serve):
    server = serve(lambda n: [OK])
    transport = HttpTransport(lambda host: False)
    bad_header = Request("GET", f"http://{server.host}/v2/", Headers({"X-A": "b\r\nInjected: yes"}))
    bad_target = Request("GET", f"http://{server.host}/v2/a b")
    for request in (bad_header, bad_target):
        with pytest.raises(TransportError) as info:
            transport.handle(request)
        assert not info.value.temporary
    assert server.requests == []
    transport.close()


def test_request_body_from_an_opener_is_framed(serve):
    server = serve(lambda n: [b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"])
    transport = HttpTransport(lambda host: False)
    request = Request("PUT", f"http://{server.host}/v2/x", Headers({"Content-Length": "6"}),
                      body=lambda: iter([b"abc", b"def"]))
    response = transport.handle(request)
    assert response.status == 201
    response.close()
    assert server.requests[0].endswith(b"\r\n\r\nabcdef")
    assert b"Host: " + server.host.encode() in server.requests[0]
    transport.close()

"""Real HTTP/1.1 for the registry client (on ``http_wire``'s sockets).

``HttpTransport`` keeps a few idle keep-alive connections per (scheme,
host, proxy), sets TLS per host (``options.RegistryOptions.tls_for``),
goes through an HTTP proxy when ``proxy_for`` names one (absolute-form
requests for http, a CONNECT tunnel for https) and follows redirects by
hand so credentials never leave their host. ``ssl`` is imported only when
a connection needs TLS: a plain-HTTP registry never pays for it.

A body shorter than its framing, a reset or a timeout becomes a temporary
``TransportError``; a TLS failure a final one.
"""

from __future__ import annotations

import base64
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from urllib.parse import unquote, urljoin, urlsplit

from dockyard.registry.errors import TransportError
from dockyard.registry.http_wire import BadRequest, Connection, ProtocolError, Reply, Stale
from dockyard.registry.transport import Headers, Request, Response

__all__ = ["HttpTransport"]

TlsChooser = Callable[[str], object]  # host -> ssl.SSLContext, or False: no verification
ProxyChooser = Callable[[str, str], "str | None"]
_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 1 << 20
_MAX_IDLE = 8
_Key = tuple[str, str, "str | None"]


class HttpTransport:
    max_redirects = 5

    def __init__(self, tls_for: TlsChooser, *, connect_timeout: float = 15.0,
                 read_timeout: float = 60.0, proxy_for: ProxyChooser | None = None):
        self._tls_for = tls_for
        self._proxy_for = proxy_for or (lambda scheme, host: None)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._idle: dict[_Key, list[Connection]] = {}
        self._contexts: dict[str, object] = {}
        self._lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        for _ in range(self.max_redirects + 1):
            response = self._send(request)
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or not location or request.method not in ("GET", "HEAD"):
                return response
            response.close()
            target = urljoin(request.url, location)
            headers = request.headers
            if urlsplit(target).netloc != request.host:
                # blob storage elsewhere (S3, a CDN): our credentials stay home
                headers = headers.without("Authorization")
            request = replace(request, url=target, headers=headers)
        raise TransportError(f"too many redirects fetching {request.url}", request.host)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    # -- one exchange -------------------------------------------------------------

    def _send(self, request: Request) -> Response:
        parts = urlsplit(request.url)
        scheme, host = parts.scheme, parts.netloc
        if scheme not in ("http", "https") or not host:
            raise TransportError(f"unsupported URL {request.url}", host, temporary=False)
        proxy = self._proxy_for(scheme, host)
        key = (scheme, host, proxy)
        target = request.url if proxy and scheme == "http" else (parts.path or "/") + (
            f"?{parts.query}" if parts.query else "")
        headers = request.headers.items()
        if proxy and scheme == "http":
            headers += list(_proxy_headers(proxy).items())
        while True:
            conn, reused = self._checkout(key)
            try:
                conn.send(request.method, target, host, headers, request.content())
                reply = conn.reply(request.method)
                break
            except (Stale, ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
                conn.close()
                if not reused:  # else a kept-alive connection closed meanwhile: try a fresh one
                    raise _translate(e, host) from None
            except (OSError, ProtocolError, ValueError) as e:
                conn.close()
                raise _translate(e, host) from None
            except BaseException:
                conn.close()  # the body could not be read: the connection is mid-request
                raise
        return self._response(key, conn, reply, request)

    def _response(self, key: _Key, conn: Connection, reply: Reply, request: Request) -> Response:
        host = key[1]

        def stream() -> Iterator[bytes]:
            try:
                while chunk := reply.read(_CHUNK):
                    yield chunk
            except (OSError, ProtocolError) as e:
                raise _translate(e, host) from None

        def close() -> None:
            if reply.done and not reply.will_close:
                self._checkin(key, conn)
            else:
                conn.close()  # an unread body or a closing server: the connection is spent

        return Response(reply.status, Headers(reply.headers), request.url, reason=reply.reason,
                        stream=stream(), close=close)

    def _checkout(self, key: _Key) -> tuple[Connection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        try:
            conn = self._connect(*key)
        except (OSError, ProtocolError, ValueError) as e:
            raise _translate(e, key[1]) from None
        conn.settimeout(self._read_timeout)
        return conn, False

    def _checkin(self, key: _Key, conn: Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < _MAX_IDLE:
                idle.append(conn)
                return
        conn.close()

    def _connect(self, scheme: str, host: str, proxy: str | None) -> Connection:
        origin = urlsplit(f"//{host}")
        name = origin.hostname or host
        port = origin.port or (443 if scheme == "https" else 80)
        tls = self._context(host) if scheme == "https" else None
        timeout = self._connect_timeout
        if not proxy:
            return Connection(name, port, timeout=timeout, tls=tls)
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if p.scheme != "http" or not p.hostname:
            raise TransportError(f"unsupported proxy {proxy!r}: only http:// proxies are supported",
                                 host, temporary=False)
        tunnel = (f"{_bracketed(name)}:{port}", _proxy_headers(proxy)) if tls is not None else None
        return Connection(p.hostname, p.port or 80, timeout=timeout, tls=tls, server_name=name, tunnel=tunnel)

    def _context(self, host: str):
        with self._lock:
            ctx = self._contexts.get(host)
            if ctx is None:
                import ssl

                ctx = self._tls_for(host)
                if ctx is False or ctx is None:
                    # no verification: loading the system's CA store would be wasted time
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                elif ctx is True:
                    ctx = ssl.create_default_context()
                self._contexts[host] = ctx
            return ctx


def _proxy_headers(proxy: str) -> dict[str, str]:
    p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if not p.username:
        return {}
    raw = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(raw).decode()}


def _bracketed(name: str) -> str:
    return f"[{name}]" if ":" in name else name


def _translate(e: BaseException, host: str) -> TransportError:
    """Socket and protocol errors -> ours, at the boundary; TLS failures are final."""
    ssl = sys.modules.get("ssl")
    if ssl is not None and isinstance(e, ssl.SSLError):
        return TransportError(f"TLS with {host} failed: {e}", host, temporary=False)
    if isinstance(e, (BadRequest, UnicodeError)):
        return TransportError(f"request to {host} not sent: {e}", host, temporary=False)
    if isinstance(e, TimeoutError):
        return TransportError(f"connection to {host} failed: timed out", host)
    if isinstance(e, ProtocolError) and not isinstance(e, Stale):
        return TransportError(f"connection to {host} failed: {e}", host)
    return TransportError(f"connection to {host} failed: {type(e).__name__}: {e or 'no detail'}", host)

"""Real HTTP/1.1 for the registry client, on the standard library.

``HttpTransport`` keeps a few idle keep-alive connections per (scheme,
host, proxy), sets TLS per host (``options.RegistryOptions.tls_for``),
goes through an HTTP proxy when ``proxy_for`` names one (absolute-form
requests for http, a CONNECT tunnel for https) and follows redirects by
hand so credentials never leave their host. ``ssl`` is imported only when
a connection needs TLS: a plain-HTTP registry never pays for it.

A body shorter than its Content-Length, a reset or a timeout becomes a
temporary ``TransportError``; a TLS failure a final one.
"""

from __future__ import annotations

import base64
import http.client
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from urllib.parse import unquote, urljoin, urlsplit

from dockyard.registry.errors import TransportError
from dockyard.registry.transport import Headers, Request, Response

__all__ = ["HttpTransport"]

TlsChooser = Callable[[str], "object"]  # host -> ssl.SSLContext, or False: no verification
ProxyChooser = Callable[[str, str], "str | None"]
_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 1 << 20
_MAX_IDLE = 8
# a kept-alive connection the server has meanwhile closed fails like this, before any answer
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)


class HttpTransport:
    max_redirects = 5

    def __init__(self, tls_for: TlsChooser, *, connect_timeout: float = 15.0,
                 read_timeout: float = 60.0, proxy_for: ProxyChooser | None = None):
        self._tls_for = tls_for
        self._proxy_for = proxy_for or (lambda scheme, host: None)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._idle: dict[tuple[str, str, str | None], list[http.client.HTTPConnection]] = {}
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
        if scheme not in ("http", "https"):
            raise TransportError(f"unsupported URL scheme in {request.url}", host, temporary=False)
        proxy = self._proxy_for(scheme, host)
        key = (scheme, host, proxy)
        target = request.url if proxy and scheme == "http" else (parts.path or "/") + (
            f"?{parts.query}" if parts.query else "")
        headers = dict(request.headers.items())
        while True:
            conn, reused = self._checkout(key)
            try:
                if conn.sock is None:
                    conn.connect()
                    conn.sock.settimeout(self._read_timeout)
                conn.request(request.method, target, body=request.content(), headers=headers)
                resp = conn.getresponse()
                break
            except _STALE as e:
                conn.close()
                if not reused:  # a kept-alive connection closed meanwhile: try a fresh one
                    raise _translate(e, host) from None
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise _translate(e, host) from None
            except BaseException:
                conn.close()  # the body could not be read: the connection is mid-request
                raise
        return _wrap(self, key, conn, resp, request)

    def _checkout(self, key) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        return self._connection(*key), False

    def _checkin(self, key, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < _MAX_IDLE:
                idle.append(conn)
                return
        conn.close()

    def _connection(self, scheme: str, host: str, proxy: str | None) -> http.client.HTTPConnection:
        timeout = self._connect_timeout
        if proxy:
            p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            if p.scheme != "http":
                raise TransportError(f"unsupported proxy {p.scheme}://{p.hostname}: only http:// proxies "
                                     f"are supported", host, temporary=False)
            proxy_headers = {}
            if p.username:
                raw = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
                proxy_headers["Proxy-Authorization"] = "Basic " + base64.b64encode(raw).decode()
            if scheme == "http":
                return _ProxiedHTTP(p.hostname, p.port or 80, proxy_headers, timeout=timeout)
            conn = http.client.HTTPSConnection(p.hostname, p.port or 80, timeout=timeout,
                                               context=self._context(host))
            origin = urlsplit(f"//{host}")
            conn.set_tunnel(origin.hostname or host, origin.port or 443, headers=proxy_headers)
            return conn
        if scheme == "http":
            return http.client.HTTPConnection(host, timeout=timeout)
        return http.client.HTTPSConnection(host, timeout=timeout, context=self._context(host))

    def _context(self, host: str):
        with self._lock:
            ctx = self._contexts.get(host)
            if ctx is None:
                ctx = self._tls_for(host)
                if ctx is False or ctx is None:
                    import ssl

                    # no verification: loading the system's CA store would be wasted time
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                elif ctx is True:
                    import ssl

                    ctx = ssl.create_default_context()
                self._contexts[host] = ctx
            return ctx


class _ProxiedHTTP(http.client.HTTPConnection):
    """Plain HTTP through a proxy: absolute-form targets, proxy credentials on each request."""

    def __init__(self, host: str, port: int, proxy_headers: dict[str, str], **kwargs):
        super().__init__(host, port, **kwargs)
        self._proxy_headers = proxy_headers

    def request(self, method, url, body=None, headers=None, **kwargs):  # type: ignore[override]
        headers = dict(headers or {})
        headers.update(self._proxy_headers)
        # the Host header must name the origin, not the proxy
        headers.setdefault("Host", urlsplit(url).netloc)
        super().request(method, url, body=body, headers=headers, **kwargs)


def _wrap(transport: HttpTransport, key, conn: http.client.HTTPConnection,
          resp: http.client.HTTPResponse, request: Request) -> Response:
    host = key[1]
    done = False

    def stream() -> Iterator[bytes]:
        nonlocal done
        try:
            while True:
                chunk = resp.read1(_CHUNK)
                if not chunk:
                    if resp.length:  # http.client returns b"" on a short body; it is an error
                        raise TransportError(f"connection to {host} failed: the body ended "
                                             f"{resp.length} bytes early", host)
                    done = True
                    return
                yield chunk
        except (OSError, ValueError, http.client.HTTPException) as e:
            raise _translate(e, host) from None

    def close() -> None:
        reusable = not resp.will_close and conn.sock is not None
        if reusable and not done:
            if request.method == "HEAD" or resp.length == 0:
                try:
                    resp.read()  # nothing to read: lets http.client finish the exchange
                except (OSError, http.client.HTTPException):
                    reusable = False
            else:
                reusable = False  # unread body: the connection cannot carry another request
        if reusable and resp.isclosed():
            transport._checkin(key, conn)
        else:
            resp.close()
            conn.close()

    return Response(resp.status, Headers(resp.getheaders()), request.url, reason=resp.reason or "",
                    stream=stream(), close=close)


def _translate(e: BaseException, host: str) -> TransportError:
    """Socket and protocol errors -> ours, at the boundary; TLS failures are final."""
    ssl = sys.modules.get("ssl")
    cause: BaseException | None = e
    while ssl is not None and cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__context__
    if ssl is not None and cause is not None:
        return TransportError(f"TLS with {host} failed: {cause}", host, temporary=False)
    if isinstance(e, socket.timeout):
        return TransportError(f"connection to {host} failed: timed out", host)
    return TransportError(f"connection to {host} failed: {type(e).__name__}: {e or 'no detail'}", host)

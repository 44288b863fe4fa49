"""Servers of the tests' own: a token server for Distribution's token auth,
and a fault-injecting HTTP proxy in front of a registry. Both listen on
127.0.0.1 only, run in threads, and stop with the test."""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_signing_cert():
    """An RSA key and a self-signed certificate (PEM) for signing tokens."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard test token issuer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Threaded:
    handler: type

    def start(self) -> None:
        self.port = free_port()
        self.httpd = _Server(("127.0.0.1", self.port), self.handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- token server ---------------------------------------------------------------

class _TokenHandler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _answer(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        owner: TokenServer = self.server.owner  # type: ignore[attr-defined]
        query = parse_qs(urlsplit(self.path).query)
        user = None
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if owner.users.get(name) != password:
                owner.requests.append(("denied", name, query.get("scope", [])))
                return self._answer(401, {"errors": [{"code": "UNAUTHORIZED",
                                                      "message": "bad credentials"}]})
            user = name
        scopes = query.get("scope", [])
        owner.requests.append(("GET", user, scopes))
        self._answer(200, owner.issue(user, scopes, query.get("service", [""])[0]))

    def do_POST(self) -> None:
        owner: TokenServer = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        refresh = form.get("refresh_token", [""])[0]
        user = refresh.removeprefix("refresh-") if refresh.startswith("refresh-") else None
        if user not in owner.users:
            return self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad token"}]})
        scopes = form.get("scope", [""])[0].split()
        owner.requests.append(("POST", user, scopes))
        self._answer(200, owner.issue(user, scopes, form.get("service", [""])[0]))


class TokenServer(_Threaded):
    """Grants what it is asked to known users; anonymous users may pull public/*."""

    handler = _TokenHandler

    def __init__(self, key, cert_pem: bytes, *, issuer: str, service: str, users: dict[str, str],
                 lifetime: int = 300):
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        self.key = key
        cert = x509.load_pem_x509_certificate(cert_pem)
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.issuer, self.service, self.users, self.lifetime = issuer, service, users, lifetime
        self.requests: list[tuple] = []

    def issue(self, user: str | None, scopes: list[str], service: str) -> dict:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        access = []
        for scope in scopes:
            kind, name, actions = scope.rsplit(":", 2) if scope.count(":") >= 2 else ("", "", "")
            if kind != "repository":
                continue
            wanted = actions.split(",")
            granted = wanted if user else [a for a in wanted if a == "pull" and name.startswith("public/")]
            if granted:
                access.append({"type": "repository", "name": name, "actions": granted})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": user or "", "aud": service or self.service,
                  "exp": now + self.lifetime, "nbf": now - 30, "iat": now, "jti": uuid.uuid4().hex,
                  "access": access}
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = f"{signing_input}.{_b64url(signature)}"
        doc = {"token": token, "access_token": token, "expires_in": self.lifetime,
               "issued_at": datetime.datetime.now(datetime.UTC).isoformat()}
        if user:
            doc["refresh_token"] = f"refresh-{user}"
        return doc


# -- fault-injecting proxy --------------------------------------------------------

@dataclass
class Fault:
    method: str
    pattern: str            # regex searched in the request path
    # "drop" (half the body, then close), "reset" (close, no answer), "500", "429", "corrupt";
    # "short" (half the body, framed as complete), "long" (arg appended, framed as complete),
    # "substitute" (the body of the path in arg, under the asked path's headers),
    # "stall" (wait arg seconds, then close with no answer and nothing forwarded)
    kind: str
    times: int = 1
    after: int = 0  # let this many matching requests through first
    arg: str = ""


_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"}


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection keeps the proxy simple

    def log_message(self, *args) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _proxy(self) -> None:
        owner: FaultProxy = self.server.owner  # type: ignore[attr-defined]
        body = self._body()
        fault = owner.take(self.command, self.path)
        owner.log.append((self.command, self.path, len(body), fault.kind if fault else "",
                          self.headers.get("Range", "")))
        if fault is not None and fault.kind == "stall":
            time.sleep(float(fault.arg or 30))
            fault = Fault(self.command, "", "reset")
        if fault is not None and fault.kind == "reset":
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if fault is not None and fault.kind in ("500", "429"):
            payload = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
            self.send_response(int(fault.kind))
            if fault.kind == "429":
                self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        conn = http.client.HTTPConnection("127.0.0.1", owner.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        if body or self.command in ("PUT", "PATCH", "POST"):
            headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body or None, headers=headers)
        upstream = conn.getresponse()
        data = upstream.read()
        conn.close()
        out_headers = [(k, v) for k, v in upstream.getheaders() if k.lower() not in _HOP]
        if owner.chunk_min and self.command == "POST" and upstream.status == 202:
            out_headers.append(("OCI-Chunk-Min-Length", str(owner.chunk_min)))
        if fault is not None and fault.kind == "corrupt" and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        if fault is not None and fault.kind in ("short", "long", "substitute") and self.command == "GET":
            if fault.kind == "short":
                data = data[: len(data) // 2]
            elif fault.kind == "long":
                data = data + (fault.arg.encode() or b"x")
            else:
                conn = http.client.HTTPConnection("127.0.0.1", owner.upstream, timeout=30)
                conn.request("GET", fault.arg, headers=headers)
                data = conn.getresponse().read()
                conn.close()
            out_headers = [(k, v) for k, v in out_headers if k.lower() != "content-length"]
            out_headers.append(("Content-Length", str(len(data))))
        self.send_response(upstream.status, upstream.reason)
        for k, v in out_headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault is not None and fault.kind == "drop" and len(data) > 1:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _proxy


class FaultProxy(_Threaded):
    """Forwards to a registry on 127.0.0.1:upstream, misbehaving as told."""

    handler = _ProxyHandler

    def __init__(self, upstream: int):
        self.upstream = upstream
        self.faults: list[Fault] = []
        self.log: list[tuple] = []
        self.chunk_min = 0
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, method: str, pattern: str, kind: str, times: int = 1, *, after: int = 0,
            arg: str = "") -> None:
        with self._lock:
            self.faults.append(Fault(method, pattern, kind, times, after, arg))

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and re.search(fault.pattern, path):
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.times -= 1
                    return fault
        return None

    def injected(self) -> list[tuple]:
        return [entry for entry in self.log if entry[3]]


def make_tls_files(directory) -> tuple:
    """A CA, and a server certificate it signed for 127.0.0.1: (ca.crt, server.crt, server.key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = (directory / "ca.crt", directory / "server.crt", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths

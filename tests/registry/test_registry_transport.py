"""Transport: retries and back-off (with a fake transport), insecure-registry
decisions, and TLS with a registry's own CA from certs.d (a real registry)."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from dockyard.reference import Reference
from dockyard.registry import (
    MockTransport,
    RegistryHTTPError,
    RegistryOptions,
    Request,
    Response,
    RetryPolicy,
    TransportError,
    pull,
    push,
)
from dockyard.registry.client import Registry
from dockyard.registry.options import load_options
from dockyard.registry.transport import Headers, RetryTransport

FAST = RetryPolicy(attempts=5, base_delay=0.0, max_delay=0.0, sleep=lambda s: None)


def scripted(*answers):
    """A transport answering from a list: a status, or an exception to raise."""
    seen: list[Request] = []
    queue = list(answers)

    def handle(request: Request) -> Response:
        seen.append(request)
        answer = queue.pop(0) if queue else 200
        if isinstance(answer, Exception):
            raise answer
        return Response(answer, Headers({"Retry-After": "0"} if answer == 429 else {}), request.url)
    return MockTransport(handle), seen


@pytest.mark.parametrize("answers", [
    [500, 200], [429, 200], [502, 503, 504, 200], [408, 200],
    [TransportError("connection reset by peer"), 200],
])
def test_retry_transport_retries_temporary_failures(answers):
    transport, _ = scripted(*answers)
    response = RetryTransport(transport, FAST).handle(Request("GET", "http://r.test/v2/"))
    assert response.status == 200
    assert response.attempts == len(answers)


def test_retry_gives_up_after_the_last_try_and_says_so():
    transport, seen = scripted(*[500] * 10)
    response = RetryTransport(transport, FAST).handle(Request("GET", "http://r.test/v2/"))
    assert response.status == 500 and response.attempts == 5 and len(seen) == 5


def test_unsafe_requests_are_not_retried_by_the_transport():
    transport, seen = scripted(500, 200)
    response = RetryTransport(transport, FAST).handle(Request("PATCH", "http://r.test/upload"))
    assert response.status == 500 and len(seen) == 1


def test_backoff_grows_and_honours_retry_after():
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    assert 0.5 <= policy.delay(1) <= 1.0
    assert 2.0 <= policy.delay(3) <= 4.0
    assert policy.delay(10) <= 8.0
    assert policy.delay(1, "3") == 3.0
    assert policy.delay(1, "3600") == 8.0


def test_error_after_last_try_names_registry_repository_and_status():
    transport, _ = scripted(*[503] * 10)
    options = RegistryOptions(retry=FAST)
    registry = Registry("r.test:5000", options=options, transport=transport)
    registry._base = "https://r.test:5000"
    repo = registry.repository("team/app")
    with pytest.raises(RegistryHTTPError) as info:
        repo.get_manifest("v1")
    assert str(info.value) == ("registry r.test:5000, repository team/app: fetching manifest v1: "
                               "HTTP 503 after 5 tries")
    assert info.value.status == 503 and info.value.temporary


def test_headers_never_show_authorization():
    headers = Headers({"Authorization": "Basic c2VjcmV0OnNlY3JldA==", "Accept": "x"})
    assert "c2VjcmV0" not in repr(headers) and "Accept" in repr(headers)


# -- insecure registries ------------------------------------------------------------

@pytest.mark.parametrize("host, insecure", [
    ("127.0.0.1:5000", True), ("localhost:5000", True), ("[::1]:5000", True), ("127.3.4.5", True),
    ("registry.example.com", False), ("10.1.2.3:5000", False),
])
def test_loopback_registries_may_use_http(host, insecure):
    options = RegistryOptions()
    assert options.is_insecure(host) is insecure
    assert options.schemes(host) == (("https", "http") if insecure else ("https",))


def test_insecure_registry_flag_and_config_file(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('[registry]\ninsecure = ["registry.lan:5000", "10.0.0.0/8"]\n')
    monkeypatch.setenv("DOCKYARD_CONFIG", str(config))
    options = load_options(["other.lan"])
    assert options.is_insecure("registry.lan:5000")
    assert options.is_insecure("10.9.8.7:443")
    assert options.is_insecure("other.lan")
    assert not options.is_insecure("registry.lan:6000")
    assert not options.is_insecure("secure.example.com")


# -- TLS with a registry's own CA ---------------------------------------------------

@pytest.fixture
def strict(options, tmp_path):
    """Loopback treated like any other host: HTTPS, verified."""
    return replace(options, loopback_insecure=False, certs_dir=tmp_path / "certs.d")


def test_tls_registry_with_ca_from_certs_d(tls_registry, strict, store, base_image, fresh_store, unique):
    own = strict.certs_dir / tls_registry.host
    own.mkdir(parents=True)
    shutil.copy(tls_registry.ca, own / "ca.crt")
    name = f"{tls_registry.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    push(store, name, options=strict)
    assert pull(fresh_store, name, options=strict).id == base_image.id


def test_tls_registry_without_its_ca_is_refused(tls_registry, strict, fresh_store, unique):
    with pytest.raises(TransportError, match="TLS|certificate"):
        pull(fresh_store, f"{tls_registry.host}/{unique}:1", options=strict)


def test_plain_http_refused_unless_insecure(plain_registry, strict, store, base_image, unique):
    name = f"{plain_registry.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    with pytest.raises(TransportError):
        push(store, name, options=strict)
    push(store, name, options=strict.with_insecure([plain_registry.host]))


# -- Docker Hub, redirects, proxies -------------------------------------------------

def test_docker_hub_names_go_to_registry_1(fresh_store, options):
    seen: list[Request] = []

    def handle(request: Request) -> Response:
        seen.append(request)
        return Response(404, Headers(), request.url, reason="Not Found")

    with pytest.raises(RegistryHTTPError) as info:
        pull(fresh_store, "busybox", options=options, transport=MockTransport(handle))
    # no separate /v2/ ping: the first request finds the scheme (and any challenge) itself
    assert [r.url for r in seen] == ["https://registry-1.docker.io/v2/library/busybox/manifests/latest"]
    assert "application/vnd.oci.image.index.v1+json" in seen[0].headers.get("Accept")
    assert "registry registry-1.docker.io, repository library/busybox" in str(info.value)


def test_redirects_are_followed_without_credentials_to_other_hosts():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = {}

    class Storage(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen["storage"] = self.headers.get("Authorization")
            self.send_response(200)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"blob")

    storage = ThreadingHTTPServer(("127.0.0.1", 0), Storage)

    class Registry_(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen["registry"] = self.headers.get("Authorization")
            self.send_response(307)
            # 127.0.0.2 is another host to the client, and still loopback
            self.send_header("Location", f"http://127.0.0.2:{storage.server_address[1]}/data")
            self.send_header("Content-Length", "0")
            self.end_headers()

    registry = ThreadingHTTPServer(("127.0.0.1", 0), Registry_)
    storage.server_close()
    storage = ThreadingHTTPServer(("127.0.0.2", storage.server_address[1]), Storage)
    for server in (storage, registry):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        from dockyard.registry.http_transport import HttpTransport

        transport = HttpTransport(lambda host: False)
        request = Request("GET", f"http://127.0.0.1:{registry.server_address[1]}/v2/x/blobs/y",
                          Headers({"Authorization": "Bearer secret"}))
        response = transport.handle(request)
        assert response.read() == b"blob"
        assert seen == {"registry": "Bearer secret", "storage": None}
        transport.close()
    finally:
        for server in (storage, registry):
            server.shutdown()
            server.server_close()


def test_proxy_from_environment(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.lan:3128")
    monkeypatch.setenv("NO_PROXY", "internal.lan,.corp.example")
    options = RegistryOptions()
    assert options.proxy_for("https", "ghcr.io") == "http://proxy.lan:3128"
    assert options.proxy_for("https", "internal.lan:5000") is None
    assert options.proxy_for("https", "reg.corp.example") is None
    assert options.proxy_for("https", "127.0.0.1:5000") is None
    assert options.proxy_for("http", "ghcr.io") is None


def test_plain_http_goes_through_the_proxy_with_its_credentials():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from dockyard.registry.http_transport import HttpTransport

    seen = []

    class Proxy(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append((self.path, self.headers.get("Host"), self.headers.get("Proxy-Authorization")))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        url = f"http://user:p%40ss@127.0.0.1:{proxy.server_address[1]}"
        transport = HttpTransport(lambda host: False, proxy_for=lambda scheme, host: url)
        response = transport.handle(Request("GET", "http://registry.example:5000/v2/"))
        assert (response.status, response.read()) == (200, b"{}")
        assert seen == [("http://registry.example:5000/v2/", "registry.example:5000", "Basic dXNlcjpwQHNz")]
        transport.close()
    finally:
        proxy.shutdown()
        proxy.server_close()

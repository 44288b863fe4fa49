"""Real registries for the registry tests: CNCF Distribution (Debian's
``docker-registry``) on 127.0.0.1 in three set-ups (no auth, htpasswd,
token auth with a token server of our own), and a fault-injecting proxy.

Registries are started once per session and share nothing but their
repositories: every test pushes to names of its own. Nothing here touches
``~/.docker``: DOCKER_CONFIG points into a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from registry_servers import (
    FaultProxy,
    TokenServer,
    free_port,
    make_signing_cert,
    make_tls_files,
)

from dockyard.registry import RegistryOptions, RetryPolicy

REGISTRY_BIN = shutil.which("docker-registry")
USER, PASSWORD = "alice", "wonderland"


class RegistryProcess:
    """``docker-registry serve`` with a config of ours, on a free port."""

    def __init__(self, root: Path, auth: str = "", relative_urls: bool = False,
                 tls: tuple[Path, Path] | None = None):
        self.root = root
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        (root / "data").mkdir(parents=True, exist_ok=True)
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {root / 'data'}\n"
            "  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            "http:\n"
            f"  addr: {self.host}\n"
            "  secret: dockyard-tests\n"
            f"  relativeurls: {'true' if relative_urls else 'false'}\n"
            + (f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n" if tls else "")
            + auth)
        self.tls = tls is not None
        self.log = open(root / "registry.log", "wb")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self._wait()

    def _wait(self) -> None:
        import http.client

        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(self.root / 'registry.log').read_text()}")
            try:
                if self.tls:
                    import ssl

                    conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=1,
                                                       context=ssl._create_unverified_context())
                else:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/v2/")
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def blob_path(self, digest: str) -> Path:
        hexpart = digest.split(":", 1)[1]
        return (self.root / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
                / hexpart[:2] / hexpart / "data")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _needs_registry() -> None:
    if REGISTRY_BIN is None:
        pytest.skip("docker-registry (CNCF Distribution) is not installed")


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory):
    """No auth, absolute Location headers."""
    _needs_registry()
    reg = RegistryProcess(tmp_path_factory.mktemp("registry-plain"))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory):
    """htpasswd (Basic) auth, relative Location headers."""
    _needs_registry()
    root = tmp_path_factory.mktemp("registry-basic")
    line = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True,
                          check=True).stdout.strip()
    (root / "htpasswd").write_text(line + "\n")
    auth = f"auth:\n  htpasswd:\n    realm: dockyard-tests\n    path: {root / 'htpasswd'}\n"
    reg = RegistryProcess(root, auth, relative_urls=True)
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory):
    """Token auth: a token server of ours signs JWTs the registry trusts."""
    _needs_registry()
    root = tmp_path_factory.mktemp("registry-token")
    key, cert_pem = make_signing_cert()
    (root / "token.crt").write_bytes(cert_pem)
    server = TokenServer(key, cert_pem, issuer="dockyard-test-issuer", service="dockyard-test-registry",
                         users={USER: PASSWORD})
    server.start()
    auth = ("auth:\n  token:\n"
            f"    realm: http://127.0.0.1:{server.port}/token\n"
            "    service: dockyard-test-registry\n"
            "    issuer: dockyard-test-issuer\n"
            f"    rootcertbundle: {root / 'token.crt'}\n")
    reg = RegistryProcess(root, auth)
    reg.token_server = server
    yield reg
    reg.stop()
    server.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory):
    """HTTPS with a certificate from a CA of our own (``.ca`` is its file)."""
    _needs_registry()
    root = tmp_path_factory.mktemp("registry-tls")
    ca, cert, key = make_tls_files(root)
    reg = RegistryProcess(root, "", tls=(cert, key))
    reg.ca = ca
    yield reg
    reg.stop()


@pytest.fixture
def fault_proxy(plain_registry):
    proxy = FaultProxy(plain_registry.port)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(autouse=True)
def docker_config(tmp_path, monkeypatch) -> Path:
    """A private DOCKER_CONFIG, and no dockyard config file from the machine."""
    directory = tmp_path / "docker-config"
    directory.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "no-dockyard-config.toml"))
    return directory


@pytest.fixture
def options(docker_config) -> RegistryOptions:
    """Fast retries; small chunks are set per test where they matter."""
    return RegistryOptions(retry=RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05),
                           docker_config=docker_config)


@pytest.fixture
def fresh_store(tmp_path):
    from dockyard.store import Store

    return Store(tmp_path / "store2")


@pytest.fixture
def unique(request) -> str:
    """A repository name of this test's own."""
    name = request.node.name.lower()
    return "t/" + "".join(c if c.isalnum() else "-" for c in name).strip("-")[:60] + f"-{os.getpid()}"

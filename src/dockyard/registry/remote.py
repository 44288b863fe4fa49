"""Entry points that take strings: login, logout, manifest inspect, and the
one place a reference becomes a ``Repository`` with credentials."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dockyard.reference import DOCKER_HUB_REGISTRY, Reference
from dockyard.registry.auth import Credential, TokenCache
from dockyard.registry.client import Registry, Repository
from dockyard.registry.credentials import HUB_SERVER, DockerConfig, server_key
from dockyard.registry.errors import (
    RegistryError,
    RegistryHTTPError,
    Unauthorized,
    error_detail,
)
from dockyard.registry.options import RegistryOptions, load_options
from dockyard.registry.records import known_scheme, remember_scheme
from dockyard.registry.transport import Transport
from dockyard.store import Store

__all__ = ["inspect_manifest", "login", "logout", "open_repository", "scheme_memory"]


def open_repository(ref: Reference, options: RegistryOptions | None = None, *, push: bool = False,
                    transport: Transport | None = None) -> Repository:
    """The repository of ``ref``, authenticating with the credentials Docker
    would use for its domain (read only if the registry asks for them)."""
    options = options or load_options()
    key = server_key(ref.domain)

    def credential() -> Credential | None:
        return DockerConfig(options.docker_config).get(key)

    registry = Registry(ref.registry_host, options=options, transport=transport, credential=credential)
    return registry.repository(ref.path, push=push)


@contextmanager
def scheme_memory(store: Store, registry: Registry) -> Iterator[None]:
    """For a registry reachable on more than one scheme (an insecure one), try
    first the scheme it answered on last time, and note the one it answers on."""
    if len(registry.options.schemes(registry.host)) < 2:
        yield
        return
    known = known_scheme(store, registry.host)
    registry.preferred_scheme = known
    try:
        yield
    finally:
        if registry.scheme is not None and registry.scheme != known:
            remember_scheme(store, registry.host, registry.scheme)


def _host_of(key: str) -> str:
    return DOCKER_HUB_REGISTRY if key == HUB_SERVER else key


def login(server: str | None, username: str, password: str, *,
          options: RegistryOptions | None = None, transport: Transport | None = None) -> None:
    """Check the credentials against the registry's ``/v2/``, then save them
    (in Docker's config.json or its credential helper)."""
    if not username or not password:
        raise RegistryError("login: a user name and a password are required")
    options = options or load_options()
    key = server_key(server)
    host = _host_of(key)
    credential = Credential(username, password)
    # a private token cache: the check must really reach the token server
    registry = Registry(host, options=options, transport=transport, credential=lambda: credential,
                        tokens=TokenCache())
    try:
        first = registry.ping()
        if first.status == 401:
            response = registry.send("GET", "/v2/")
            body = response.read(1 << 16)
            if response.status in (401, 403):
                raise Unauthorized(host, None, "logging in", response.status, response.reason,
                                   error_detail(body) or "incorrect username or password")
            if response.status != 200:
                raise RegistryHTTPError(host, None, "logging in", response.status, response.reason,
                                        error_detail(body), response.attempts)
        elif first.status != 200:
            raise RegistryHTTPError(host, None, "logging in", first.status, first.reason)
    finally:
        registry.close()
    DockerConfig(options.docker_config).store(key, credential)


def logout(server: str | None, *, options: RegistryOptions | None = None) -> bool:
    """Forget the server's credentials; False when there were none."""
    options = options or load_options()
    return DockerConfig(options.docker_config).erase(server_key(server))


def inspect_manifest(name: str, *, options: RegistryOptions | None = None,
                     transport: Transport | None = None) -> dict:
    """The manifest or index that ``name`` points to, as the registry has it."""
    ref = Reference.parse(name)
    repo = open_repository(ref, options, transport=transport)
    try:
        return repo.get_manifest(ref.digest or ref.tag or "latest").json()
    finally:
        repo.registry.close()

"""An OCI distribution client: pull, push, login, logout, manifest inspect.

Modules, bottom up: ``transport`` (the I/O boundary and retries),
``http_transport`` (HTTP/1.1 on the standard library), ``auth``
(challenges, tokens, the auth flow), ``credentials`` (Docker's config.json
and credential helpers), ``options`` (TLS, insecure registries, tuning),
``client`` (manifest and blob verbs of one repository, verified),
``records`` (what the store remembers about registries), and the entry
points ``pull``, ``push`` and ``remote``. Nothing here prints.
"""

from __future__ import annotations

from dockyard.registry.auth import Credential, TokenCache
from dockyard.registry.client import Registry, Repository
from dockyard.registry.credentials import DockerConfig
from dockyard.registry.errors import (
    CredentialsError,
    DigestMismatch,
    RegistryError,
    RegistryHTTPError,
    TransportError,
    Unauthorized,
)
from dockyard.registry.options import RegistryOptions, load_options
from dockyard.registry.progress import Event
from dockyard.registry.pull import pull
from dockyard.registry.push import push
from dockyard.registry.records import repo_digests
from dockyard.registry.remote import inspect_manifest, login, logout
from dockyard.registry.transport import (
    MockTransport,
    Request,
    Response,
    RetryPolicy,
    Transport,
)

__all__ = [
    "Credential",
    "CredentialsError",
    "DigestMismatch",
    "DockerConfig",
    "Event",
    "MockTransport",
    "Registry",
    "RegistryError",
    "RegistryHTTPError",
    "RegistryOptions",
    "Repository",
    "Request",
    "Response",
    "RetryPolicy",
    "TokenCache",
    "Transport",
    "TransportError",
    "Unauthorized",
    "inspect_manifest",
    "load_options",
    "login",
    "logout",
    "pull",
    "push",
    "repo_digests",
]

"""Errors of the registry client, all under ``dockyard.errors.RegistryError``.

RegistryError
 ├── TransportError        no HTTP answer: refused, reset, timed out, TLS failed
 ├── RegistryHTTPError     an HTTP status we could not work around
 │    └── Unauthorized     401 / 403 after authenticating
 ├── DigestMismatch        content did not hash to the digest it was asked for
 └── CredentialsError      config.json or a docker-credential helper failed

Every message is one line naming the registry and, where there is one, the
repository and the HTTP status. No message ever carries a secret.
"""

from __future__ import annotations

import json

from dockyard.errors import RegistryError

__all__ = [
    "CredentialsError",
    "DigestMismatch",
    "RegistryError",
    "RegistryHTTPError",
    "TransportError",
    "Unauthorized",
    "where",
]

# statuses worth another try: timeouts, rate limits and server trouble
TEMPORARY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def where(registry: str, repository: str | None = None) -> str:
    """The prefix every message starts with."""
    if repository:
        return f"registry {registry}, repository {repository}"
    return f"registry {registry}"


class TransportError(RegistryError):
    """The request got no HTTP response at all. Worth retrying, unless TLS
    failed: a certificate or a protocol mismatch does not heal by waiting."""

    def __init__(self, message: str, host: str = "", temporary: bool = True):
        self.host = host
        self.temporary = temporary
        super().__init__(message)


class RegistryHTTPError(RegistryError):
    def __init__(self, registry: str, repository: str | None, action: str, status: int,
                 reason: str = "", detail: str = "", attempts: int = 1):
        self.registry = registry
        self.repository = repository
        self.status = status
        self.detail = detail
        self.attempts = attempts
        tries = f" after {attempts} tries" if attempts > 1 else ""
        text = f"{where(registry, repository)}: {action}: HTTP {status}"
        if reason:
            text += f" {reason}"
        text += tries
        if detail:
            text += f" ({detail})"
        super().__init__(text)

    @property
    def temporary(self) -> bool:
        return self.status in TEMPORARY_STATUSES


class Unauthorized(RegistryHTTPError):
    pass


class DigestMismatch(RegistryError):
    temporary = False


class CredentialsError(RegistryError):
    pass


def error_detail(body: bytes) -> str:
    """The first code and message of a distribution error body, if it is one."""
    try:
        doc = json.loads(body[:65536])
    except (ValueError, UnicodeDecodeError):
        return ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return ""
    first = errors[0]
    code = str(first.get("code") or "").strip()
    message = str(first.get("message") or "").strip()
    text = f"{code}: {message}" if code and message else code or message
    return " ".join(text.split())[:200]

"""The I/O boundary of the registry client.

Everything above this module speaks in ``Request`` and ``Response`` values
and calls ``Transport.handle``. Three transports:

- ``http_transport.HttpTransport``: real HTTP(S) (its own module, so
  tests and tools that never touch the network do not import it).
- ``RetryTransport``: wraps another and retries what is safe to retry.
- ``MockTransport``: wraps a plain function, for tests.

Request bodies are bytes or an *opener* (a callable returning a fresh
iterator of chunks), so a request can be sent again after a failure.
Responses are streamed; whoever gets one closes it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol, Self
from urllib.parse import urlsplit

from dockyard.registry.errors import TEMPORARY_STATUSES, TransportError

__all__ = [
    "Headers",
    "MockTransport",
    "Request",
    "Response",
    "RetryPolicy",
    "RetryTransport",
    "Transport",
]

Opener = Callable[[], Iterable[bytes]]
_IDEMPOTENT = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


class Headers:
    """Case-insensitive, multi-valued headers that keep their order."""

    def __init__(self, items: Iterable[tuple[str, str]] | dict[str, str] = ()):
        pairs = items.items() if isinstance(items, dict) else items
        self._items = [(str(k), str(v)) for k, v in pairs]

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self._items:
            if k.lower() == name:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self._items if k.lower() == name]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def set(self, name: str, value: str) -> Headers:
        """A copy with ``name`` replaced."""
        rest = [(k, v) for k, v in self._items if k.lower() != name.lower()]
        return Headers(rest + [(name, value)])

    def without(self, name: str) -> Headers:
        return Headers([(k, v) for k, v in self._items if k.lower() != name.lower()])

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def __repr__(self) -> str:
        # never show credentials, even in a debugger or a test failure
        shown = [(k, "<hidden>" if k.lower() == "authorization" else v) for k, v in self._items]
        return f"Headers({shown!r})"


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: Headers = field(default_factory=Headers)
    body: bytes | Opener | None = field(default=None, repr=False)  # may hold a token grant
    # safe to send again after a failure? None: decide by the method
    retry: bool | None = None

    def with_header(self, name: str, value: str) -> Request:
        return replace(self, headers=self.headers.set(name, value))

    @property
    def retryable(self) -> bool:
        if self.retry is not None:
            return self.retry
        return self.method in _IDEMPOTENT

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    def content(self) -> bytes | Iterable[bytes] | None:
        if self.body is None or isinstance(self.body, bytes):
            return self.body
        return self.body()


class Response:
    """A streamed response. ``read()`` or ``iter_bytes()`` once, then ``close()``."""

    def __init__(self, status: int, headers: Headers, url: str, *, reason: str = "",
                 stream: Iterable[bytes] = (), close: Callable[[], None] | None = None):
        self.status = status
        self.headers = headers
        self.url = url
        self.reason = reason
        self.attempts = 1
        self._stream = stream
        self._close = close
        self.closed = False

    def iter_bytes(self) -> Iterator[bytes]:
        if self.closed:
            return
        try:
            for chunk in self._stream:
                if chunk:
                    yield chunk
        finally:
            self.close()

    def read(self, limit: int | None = None) -> bytes:
        """The whole body; past ``limit`` bytes the rest is dropped."""
        parts: list[bytes] = []
        n = 0
        for chunk in self.iter_bytes():
            parts.append(chunk)
            n += len(chunk)
            if limit is not None and n > limit:
                break
        self.close()
        return b"".join(parts)

    def close(self) -> None:
        self.closed = True
        if self._close is not None:
            close, self._close = self._close, None
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Transport(Protocol):
    def handle(self, request: Request) -> Response: ...


class MockTransport:
    """A transport made of a function: ``MockTransport(lambda req: Response(...))``."""

    def __init__(self, handler: Callable[[Request], Response]):
        self._handler = handler

    def handle(self, request: Request) -> Response:
        return self._handler(request)


# -- retries ----------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying again (exponential, jittered)."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 10.0
    statuses: frozenset[int] = TEMPORARY_STATUSES
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after.strip()), self.max_delay)
        wait = self.base_delay * (2 ** (attempt - 1))
        return min(wait, self.max_delay) * random.uniform(0.5, 1.0)

    def wait(self, attempt: int, retry_after: str | None = None) -> None:
        self.sleep(self.delay(attempt, retry_after))


class RetryTransport:
    """Retries connection failures, timeouts, 408, 429 and 5xx with back-off.

    Only requests that are safe to repeat are retried (see
    ``Request.retryable``); the last response or error is passed on, with
    ``Response.attempts`` saying how many tries it took.
    """

    def __init__(self, inner: Transport, policy: RetryPolicy | None = None):
        self.inner = inner
        self.policy = policy or RetryPolicy()

    def handle(self, request: Request) -> Response:
        attempts = self.policy.attempts if request.retryable else 1
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                response = self.inner.handle(request)
            except TransportError as e:
                if not e.temporary:
                    raise
                if last:
                    if attempts > 1:
                        raise TransportError(f"{e} (after {attempts} tries)", e.host) from None
                    raise
                self.policy.wait(attempt)
                continue
            if response.status in self.policy.statuses and not last:
                retry_after = response.headers.get("Retry-After")
                response.close()
                self.policy.wait(attempt, retry_after)
                continue
            response.attempts = attempt
            return response
        raise AssertionError("unreachable")  # pragma: no cover

"""The distribution API of one registry: manifests and blobs, verified.

``Registry`` is one host: it finds the scheme with its first request (the
real one when that is safe to send twice, else a ``/v2/`` ping), runs the
auth flow around every request and owns the transport. ``Repository`` is
one name on it and offers the verbs: manifest GET/HEAD/PUT, blob
HEAD/GET/mount/upload. Everything fetched is checked against its digest
before it is handed over; everything sent is announced with its digest.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote, urljoin, urlsplit

from dockyard import __version__
from dockyard.image import Digest, ImageFormatError, mediatypes
from dockyard.registry.auth import (
    Authenticator,
    Credential,
    TokenCache,
    repository_scope,
)
from dockyard.registry.errors import (
    DigestMismatch,
    RegistryHTTPError,
    TransportError,
    Unauthorized,
    error_detail,
    where,
)
from dockyard.registry.options import RegistryOptions
from dockyard.registry.transport import (
    Headers,
    Request,
    Response,
    RetryTransport,
    Transport,
)

__all__ = ["MANIFEST_TYPES", "Fetched", "Registry", "Repository"]

USER_AGENT = f"dockyard/{__version__}"
MANIFEST_TYPES = (mediatypes.OCI_INDEX, mediatypes.DOCKER_MANIFEST_LIST,
                  mediatypes.OCI_MANIFEST, mediatypes.DOCKER_MANIFEST)
MAX_MANIFEST = 4 << 20  # containerd's limit too
Progress = Callable[[int], None]
RangeOpener = Callable[[int, int], Iterable[bytes]]


@dataclass(frozen=True)
class Fetched:
    """A manifest or index as the registry sent it, digest verified."""

    data: bytes
    media_type: str
    digest: Digest

    def json(self) -> dict:
        return json.loads(self.data)


class Registry:
    def __init__(self, host: str, *, options: RegistryOptions | None = None,
                 transport: Transport | None = None,
                 credential: Callable[[], Credential | None] | None = None,
                 tokens: TokenCache | None = None):
        self.host = host
        self.options = options or RegistryOptions()
        if transport is None:
            from dockyard.registry.http_transport import HttpTransport

            transport = inner = HttpTransport(self.options.tls_for, proxy_for=self.options.proxy_for,
                                              connect_timeout=self.options.connect_timeout,
                                              read_timeout=self.options.read_timeout)
            self._owned: HttpTransport | None = inner
        else:
            inner, self._owned = transport, None
        self.transport = RetryTransport(inner, self.options.retry)
        self.auth = Authenticator(host, credential or (lambda: None), tokens, USER_AGENT)
        self._base: str | None = None
        self._lock = threading.Lock()
        # an allowed scheme to try first (the one that answered last time)
        self.preferred_scheme: str | None = None

    def repository(self, path: str, *, push: bool = False) -> Repository:
        return Repository(self, path, push=push)

    @property
    def scheme(self) -> str | None:
        """The scheme the registry answered on, once it has."""
        return self._base.split("://", 1)[0] if self._base else None

    @property
    def base_url(self) -> str:
        with self._lock:
            if self._base is None:
                self.ping().close()
            assert self._base is not None
            return self._base

    def ping(self) -> Response:
        """GET /v2/ on each allowed scheme; the first that answers wins."""
        return self._probe(Request("GET", "/v2/", Headers({"User-Agent": USER_AGENT})))

    def _probe(self, request: Request) -> Response:
        """Send ``request`` (a path under the host) on each allowed scheme in
        turn; the first that answers is this registry's. Unauthenticated: a
        401 teaches the auth flow its challenge."""
        failure: TransportError | None = None
        schemes = self.options.schemes(self.host)
        hint = self.preferred_scheme if self.preferred_scheme in schemes else None
        if hint:
            schemes = (hint, *(s for s in schemes if s != hint))
        for scheme in schemes:
            attempt = Request(request.method, f"{scheme}://{self.host}{request.url}", request.headers,
                              request.body, request.retry)
            # with a fallback to come, one try is enough (Docker does the same)
            transport = self.transport if scheme == schemes[-1] else self.transport.inner
            try:
                response = transport.handle(attempt)
            except TransportError as e:
                failure = e
                continue
            if scheme == hint and scheme != schemes[-1] and response.status == 400:
                # plain HTTP to what now speaks TLS: servers answer 400; go the usual way
                response.close()
                continue
            if response.status == 401:
                response.read(1 << 16)
                self.auth.learn(response)
            self._base = f"{scheme}://{self.host}"
            return response
        assert failure is not None
        raise failure  # it names the host; callers add the repository

    def send(self, method: str, url: str, *, scopes: Iterable[str] = (), repository: str | None = None,
             headers: dict[str, str] | None = None, body: bytes | Callable[[], Iterable[bytes]] | None = None,
             retry: bool | None = None) -> Response:
        """One request through the auth flow; ``url`` may be relative to /v2/."""
        all_headers = Headers({"User-Agent": USER_AGENT, **(headers or {})})
        if "://" not in url:
            if self._base is None and method in ("GET", "HEAD"):
                with self._lock:
                    if self._base is None:
                        # the first request finds the scheme itself: no separate ping
                        first = self._probe(Request(method, url, all_headers, body, retry))
                        if first.status != 401:
                            return first
                        first.close()
            url = self.base_url + url
        plain = Request(method, url, all_headers, body, retry)
        if urlsplit(url).netloc != self.host:
            # an upload Location on other storage: it carries its own authorisation
            return self.transport.handle(plain)
        flow = self.auth.flow(plain, scopes, repository)
        request = next(flow)
        while True:
            response = self.transport.handle(request)
            try:
                request = flow.send(response)
            except StopIteration:
                return response
            response.close()

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()


class Repository:
    def __init__(self, registry: Registry, path: str, *, push: bool = False):
        self.registry = registry
        self.path = path
        self.push = push
        self.scopes = (repository_scope(path, ("pull", "push") if push else ("pull",)),)

    @property
    def where(self) -> str:
        return where(self.registry.host, self.path)

    def url_for(self, tail: str) -> str:
        return f"/v2/{self.path}/{tail}"

    def send(self, method: str, url: str, action: str, *, scopes: Iterable[str] = (),
              **kwargs) -> Response:
        try:
            return self.registry.send(method, url, scopes=tuple(self.scopes) + tuple(scopes),
                                      repository=self.path, **kwargs)
        except TransportError as e:
            raise TransportError(f"{self.where}: {action}: {e}", e.host) from None

    def error(self, response: Response, action: str) -> RegistryHTTPError:
        body = response.read(1 << 16) if response.status >= 400 else b""
        response.close()
        cls = Unauthorized if response.status in (401, 403) else RegistryHTTPError
        detail = error_detail(body)
        if not detail and response.status == 401:
            detail = "authentication required"
        return cls(self.registry.host, self.path, action, response.status, response.reason,
                   detail, response.attempts)

    # -- manifests ------------------------------------------------------------

    def get_manifest(self, reference: str) -> Fetched:
        """The manifest or index for a tag or digest, verified against the digest."""
        action = f"fetching manifest {reference}"
        response = self.send("GET", self.url_for(f"manifests/{quote(reference, safe=':')}"), action,
                              headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if response.status != 200:
            raise self.error(response, action)
        data = response.read(MAX_MANIFEST)
        if len(data) > MAX_MANIFEST:
            raise RegistryHTTPError(self.registry.host, self.path, action, 200, "",
                                    f"manifest larger than {MAX_MANIFEST} bytes")
        digest = self._check_manifest_digest(reference, data, response.headers, action)
        return Fetched(data, self._media_type(data, response.headers, action), digest)

    def _check_manifest_digest(self, reference: str, data: bytes, headers: Headers,
                               action: str) -> Digest:
        try:
            expected = Digest.parse(reference) if ":" in reference else None
            announced = headers.get("Docker-Content-Digest")
            claimed = Digest.parse(announced) if announced and expected is None else None
        except ImageFormatError as e:
            raise DigestMismatch(f"{self.where}: {action}: {e}") from None
        want = expected or claimed
        got = Digest.of_bytes(data, want.algorithm if want else "sha256")
        if want is not None and got != want:
            raise DigestMismatch(f"{self.where}: {action}: content has digest {got}, expected {want}")
        return got if got.algorithm == "sha256" else Digest.of_bytes(data)

    def _media_type(self, data: bytes, headers: Headers, action: str) -> str:
        declared = None
        try:
            doc = json.loads(data)
            declared = doc.get("mediaType") if isinstance(doc, dict) else None
        except ValueError:
            raise RegistryHTTPError(self.registry.host, self.path, action, 200, "",
                                    "the manifest is not JSON") from None
        content_type = (headers.get("Content-Type") or "").split(";", 1)[0].strip()
        media_type = declared or content_type
        if media_type in (mediatypes.DOCKER_SCHEMA1_MANIFEST, mediatypes.DOCKER_SCHEMA1_SIGNED_MANIFEST) \
                or (isinstance(doc, dict) and doc.get("schemaVersion") == 1):
            raise RegistryHTTPError(self.registry.host, self.path, action, 200, "",
                                    "Docker schema1 manifests are not supported")
        if media_type not in MANIFEST_TYPES and isinstance(doc, dict):
            # no usable mediaType: an OCI document says what it is by its fields
            media_type = mediatypes.OCI_INDEX if "manifests" in doc else mediatypes.OCI_MANIFEST
        return media_type

    def head_manifest(self, reference: str) -> Digest | None:
        action = f"checking manifest {reference}"
        response = self.send("HEAD", self.url_for(f"manifests/{quote(reference, safe=':')}"), action,
                              headers={"Accept": ", ".join(MANIFEST_TYPES)})
        response.close()
        if response.status == 404:
            return None
        if response.status != 200:
            raise self.error(response, action)
        announced = response.headers.get("Docker-Content-Digest")
        return Digest.parse(announced) if announced else None

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> Digest:
        action = f"pushing manifest {reference}"
        digest = Digest.of_bytes(data)
        response = self.send("PUT", self.url_for(f"manifests/{quote(reference, safe=':')}"), action,
                              headers={"Content-Type": media_type}, body=data, retry=True)
        if response.status not in (200, 201, 202):
            raise self.error(response, action)
        response.close()
        announced = response.headers.get("Docker-Content-Digest")
        if announced and announced != str(digest):
            raise DigestMismatch(f"{self.where}: {action}: the registry stored {announced}, we sent {digest}")
        return digest

    # -- blobs ----------------------------------------------------------------

    def blob_size(self, digest: str) -> int | None:
        """HEAD: the blob's size if the repository has it, else None."""
        action = f"checking blob {digest}"
        response = self.send("HEAD", self.url_for(f"blobs/{digest}"), action)
        response.close()
        if response.status == 404:
            return None
        if response.status != 200:
            raise self.error(response, action)
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else -1

    def read_blob(self, digest: str, size: int, limit: int = 16 << 20) -> bytes:
        """A small blob (a config) in memory, verified."""
        if size > limit:
            raise DigestMismatch(f"{self.where}: blob {digest} is {size} bytes, more than {limit}")
        import io

        buf = io.BytesIO()
        self.fetch_blob(digest, buf, size=size)
        return buf.getvalue()

    def fetch_blob(self, digest: str, sink: BinaryIO, *, size: int | None = None,
                   progress: Progress | None = None) -> None:
        """Stream a blob into ``sink`` (seekable), resuming with Range after a
        dropped connection; raises DigestMismatch unless size and digest match."""
        action = f"fetching blob {digest}"
        expected = Digest.parse(digest)
        policy = self.registry.options.retry
        hasher, offset, failures = expected.hasher(), 0, 0
        while True:
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                response = self.send("GET", self.url_for(f"blobs/{digest}"), action, headers=headers)
                if response.status == 206 and offset and _range_start(response) == offset:
                    pass  # resuming where the last try stopped
                elif response.status == 200:
                    if offset:  # no Range support: start again
                        sink.seek(0)
                        sink.truncate()
                        hasher, offset = expected.hasher(), 0
                else:
                    raise self.error(response, action)
                for chunk in response.iter_bytes():
                    sink.write(chunk)
                    hasher.update(chunk)
                    offset += len(chunk)
                    if size is not None and offset > size:
                        response.close()
                        raise DigestMismatch(f"{self.where}: {action}: more than the {size} bytes announced")
                    if progress is not None:
                        progress(offset)
                break
            except TransportError as e:
                if not e.temporary:
                    raise
                failures += 1
                if failures >= policy.attempts:
                    raise TransportError(f"{e} (after {failures} tries)", e.host) from None
                policy.wait(failures)
        if size is not None and offset != size:
            raise DigestMismatch(f"{self.where}: {action}: got {offset} bytes, expected {size}")
        got = Digest.from_hash(hasher)
        if got != expected:
            raise DigestMismatch(f"{self.where}: {action}: content has digest {got}, expected {expected}")

    def mount_blob(self, digest: str, source: str) -> bool:
        """Ask for a cross-repository mount; True when the registry did it."""
        action = f"mounting blob {digest} from {source}"
        url = self.url_for(f"blobs/uploads/?mount={quote(digest)}&from={quote(source, safe='/')}")
        try:
            response = self.send("POST", url, action, scopes=(repository_scope(source, ("pull",)),),
                                  retry=True)
        except TransportError:
            return False
        response.close()
        if response.status == 201:
            return True
        location = response.headers.get("Location")
        if response.status == 202 and location:
            # an upload session instead of a mount: we do not need it
            try:
                self.send("DELETE", urljoin(response.url, location), action).close()
            except TransportError:
                pass
        return False

    def upload_blob(self, digest: str, size: int, read_range: RangeOpener,
                    progress: Progress | None = None) -> None:
        """Upload a blob (see ``upload.upload_blob``)."""
        from dockyard.registry.upload import upload_blob

        upload_blob(self, digest, size, read_range, progress)


def _range_start(response: Response) -> int | None:
    value = response.headers.get("Content-Range") or ""
    if value.startswith("bytes "):
        head = value[6:].split("-", 1)[0]
        return int(head) if head.isdigit() else None
    return None

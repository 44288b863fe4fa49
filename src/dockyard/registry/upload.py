"""Blob uploads: POST a session, then one PUT, or PATCH chunks and a PUT.

Blobs up to ``RegistryOptions.monolithic_max`` go in a single PUT; bigger
ones in PATCH chunks of ``chunk_size``, never smaller than the registry's
``OCI-Chunk-Min-Length``. Every ``Location`` is resolved against the
request it answers, since the spec lets it be relative. A session that
fails is abandoned and a new one started, after a HEAD shows the blob did
not arrive after all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import quote, urljoin

from dockyard.registry.errors import RegistryHTTPError, TransportError
from dockyard.registry.transport import Response

if TYPE_CHECKING:
    from dockyard.registry.client import Repository

__all__ = ["upload_blob"]

Progress = Callable[[int], None]
RangeOpener = Callable[[int, int], Iterable[bytes]]
_OCTETS = "application/octet-stream"


def upload_blob(repo: Repository, digest: str, size: int, read_range: RangeOpener,
                progress: Progress | None = None) -> None:
    """Upload ``size`` bytes, read with ``read_range(offset, length)``, as ``digest``."""
    policy = repo.registry.options.retry
    for attempt in range(1, policy.attempts + 1):
        try:
            _upload_once(repo, digest, size, read_range, progress)
            return
        except (TransportError, RegistryHTTPError) as e:
            if not e.temporary or attempt == policy.attempts:
                raise
            policy.wait(attempt)
            if repo.blob_size(digest) is not None:
                return


def _upload_once(repo: Repository, digest: str, size: int, read_range: RangeOpener,
                 progress: Progress | None) -> None:
    action = f"uploading blob {digest}"
    options = repo.registry.options
    response = repo.send("POST", repo.url_for("blobs/uploads/"), action, retry=True,
                         headers={"Content-Length": "0"})
    if response.status != 202:
        raise repo.error(response, action)
    response.close()
    location = _location(repo, response, action)
    min_chunk = _int(response.headers.get("OCI-Chunk-Min-Length"))
    offset = 0
    if size > options.monolithic_max:
        chunk = max(options.chunk_size, min_chunk)
        while offset < size:
            n = min(chunk, size - offset)
            response = repo.send(
                "PATCH", location, action, retry=False, body=_counting(read_range, offset, n, progress),
                headers={"Content-Type": _OCTETS, "Content-Length": str(n),
                         "Content-Range": f"{offset}-{offset + n - 1}"})
            if response.status != 202:
                raise repo.error(response, action)
            response.close()
            location = _location(repo, response, action)
            offset += n
    sep = "&" if "?" in location else "?"
    rest = size - offset
    response = repo.send(
        "PUT", f"{location}{sep}digest={quote(digest)}", action, retry=False,
        body=_counting(read_range, offset, rest, progress) if rest else b"",
        headers={"Content-Type": _OCTETS, "Content-Length": str(rest)})
    if response.status not in (201, 204):
        raise repo.error(response, action)
    response.close()


def _location(repo: Repository, response: Response, action: str) -> str:
    location = response.headers.get("Location")
    if not location:
        raise RegistryHTTPError(repo.registry.host, repo.path, action, response.status,
                                response.reason, "no Location header in the answer")
    return urljoin(response.url, location)


def _int(value: str | None) -> int:
    return int(value) if value and value.strip().isdigit() else 0


def _counting(read_range: RangeOpener, offset: int, length: int,
              progress: Progress | None) -> Callable[[], Iterator[bytes]]:
    """An opener of [offset, offset+length) that reports bytes as they go."""
    def opener() -> Iterator[bytes]:
        done = offset
        for chunk in read_range(offset, length):
            done += len(chunk)
            if progress is not None:
                progress(done)
            yield chunk
    return opener

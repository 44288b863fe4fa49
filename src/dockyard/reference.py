"""Image references (``[domain/]path[:tag][@digest]``), normalised as Docker does.

The grammar is distribution/reference's::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain "/"] path              ; path at most 255 characters
    domain     := host [":" port]                ; DNS-ish name, IPv4, or [IPv6]
    path       := component ("/" component)*
    component  := [a-z0-9]+ (separator [a-z0-9]+)*
    separator  := "." | "_" | "__" | "-"+
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex               ; sha256 or sha512 only

Normalisation follows Docker's: a first component is a domain only if it has
a "." or ":", is "localhost", or has uppercase letters; otherwise the name is
on Docker Hub (``docker.io``), and one-component Hub names live under
``library/``. ``index.docker.io`` is an old spelling of ``docker.io``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from dockyard.errors import InvalidReference
from dockyard.errors import go_quote as _quote
from dockyard.image.digest import Digest
from dockyard.image.errors import ImageFormatError

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "DOCKER_HUB_REGISTRY",
    "MAX_PATH_LENGTH",
    "Reference",
    "parse_reference",
    "shown_name",
]

DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
# where Docker Hub's registry API is actually served
DOCKER_HUB_REGISTRY = "registry-1.docker.io"
MAX_PATH_LENGTH = 255
_LEGACY_DOMAIN = "index.docker.io"
_OFFICIAL = "library/"

_ALNUM = r"[a-z0-9]+"
_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_PATH = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[a-fA-F0-9:]+\])"
# Go's \w is ASCII-only; Python's is not, so spell it out
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_DOMAIN_RE = re.compile(rf"{_HOST}(?::[0-9]+)?")
_PATH_RE = re.compile(_PATH)
_TAG_RE = re.compile(_TAG)
_REMAINDER_RE = re.compile(rf"({_PATH})(?::({_TAG}))?(?:@({_DIGEST}))?")
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True, slots=True)
class Reference:
    """A validated, normalised reference; ``str()`` gives the full form.

    ``Reference.parse("busybox")`` is ``docker.io/library/busybox:latest``
    and ``str`` of that is its exact inverse.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        domain, path = self.domain, self.path
        if not isinstance(domain, str) or not isinstance(path, str):
            raise InvalidReference(
                f"invalid reference: {domain!r}/{path!r} are not strings"
            )
        if domain == _LEGACY_DOMAIN:
            domain = DEFAULT_DOMAIN
        if domain == DEFAULT_DOMAIN and "/" not in path:
            path = _OFFICIAL + path
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "path", path)
        name = f"{domain}/{path}"
        if not _DOMAIN_RE.fullmatch(domain):
            raise InvalidReference(
                f"invalid reference format: bad registry domain in {_quote(name)}"
            )
        if not _PATH_RE.fullmatch(path):
            why = (
                "must be lowercase"
                if _PATH_RE.fullmatch(path.lower())
                else "is malformed"
            )
            raise InvalidReference(
                f"invalid reference format: repository name {_quote(path)} {why}"
            )
        if len(path) > MAX_PATH_LENGTH:
            raise InvalidReference(
                f"repository name {_quote(path[:40] + '...')} must not be more than "
                f"{MAX_PATH_LENGTH} characters"
            )
        if self.tag is not None and not (
            isinstance(self.tag, str) and _TAG_RE.fullmatch(self.tag)
        ):
            raise InvalidReference(f"invalid tag format {_quote(str(self.tag))}")
        if self.digest is not None:
            object.__setattr__(self, "digest", _digest(self.digest))

    @classmethod
    def parse(cls, s: str) -> Reference:
        """Parse and normalise; adds the ``latest`` tag when there is no tag or digest."""
        return parse_reference(s)

    def __str__(self) -> str:
        return self.repository + self._suffix()

    @property
    def repository(self) -> str:
        """The full name without tag or digest, e.g. ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The name as ``docker images`` shows it: ``busybox``, ``user/app``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.repository
        rest = self.path.removeprefix(_OFFICIAL)
        return rest if "/" not in rest else self.path

    @property
    def familiar(self) -> str:
        """Docker's short form: ``busybox:latest``, ``localhost:5000/x:y``."""
        return self.familiar_name + self._suffix()

    @property
    def registry_host(self) -> str:
        """The host (and port) serving the registry API for this name."""
        return DOCKER_HUB_REGISTRY if self.domain == DEFAULT_DOMAIN else self.domain

    def with_tag(self, tag: str) -> Reference:
        return replace(self, tag=tag)

    def with_digest(self, digest: str | Digest) -> Reference:
        return replace(self, digest=str(digest))

    def _suffix(self) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return tag + digest


def parse_reference(s: str, default_tag: str | None = DEFAULT_TAG) -> Reference:
    """Parse ``s`` as Docker does; ``default_tag=None`` keeps name-only references."""
    if not isinstance(s, str):
        raise InvalidReference(f"parsing reference {s!r}: not a string")
    try:
        return _parse(s, default_tag)
    except InvalidReference as e:
        raise InvalidReference(f"parsing reference {_quote(s)}: {e}") from None


def _parse(s: str, default_tag: str | None) -> Reference:
    if s == "":
        raise InvalidReference("repository name must have at least one component")
    if _IDENTIFIER_RE.fullmatch(s):
        # an image ID, not a name; callers resolve IDs before parsing names
        raise InvalidReference(
            "invalid repository name, cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_domain(s)
    remote = re.split(r"[:@]", remainder, maxsplit=1)[0]
    if remote != remote.lower():
        raise InvalidReference(
            "invalid reference format: repository name must be lowercase"
        )
    m = _REMAINDER_RE.fullmatch(remainder)
    if m is None or not _DOMAIN_RE.fullmatch(domain):
        raise InvalidReference("invalid reference format")
    path, tag, digest = m.groups()
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidReference(
            f"repository name must not be more than {MAX_PATH_LENGTH} characters"
        )
    if tag is None and digest is None:
        tag = default_tag
    return Reference(domain, path, tag, digest)


def _split_domain(s: str) -> tuple[str, str]:
    first, slash, rest = s.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, _OFFICIAL + s
    if first == _LEGACY_DOMAIN:
        first = DEFAULT_DOMAIN
    elif not (
        first == "localhost" or "." in first or ":" in first or first != first.lower()
    ):
        first, rest = DEFAULT_DOMAIN, s
    if first == DEFAULT_DOMAIN and "/" not in rest:
        rest = _OFFICIAL + rest
    return first, rest


def shown_name(name: str) -> str:
    """A name for a message: as it is when printable (Docker's "No such
    image: busybox"), else quoted like Go's %q so the message stays one line."""
    return name if name.isprintable() else _quote(name)


def _digest(value: str | Digest) -> str:
    if isinstance(value, Digest):
        return str(value)
    try:
        return str(Digest.parse(value))
    except ImageFormatError as e:
        message = str(e)
        if not message.isprintable():  # the digest as it was given, line breaks and all
            message = f"invalid digest {_quote(str(value))}"
        raise InvalidReference(message) from None

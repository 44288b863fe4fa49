from __future__ import annotations

import pytest

from dockyard.errors import InvalidReference
from dockyard.image import Digest
from dockyard.reference import DOCKER_HUB_REGISTRY, Reference, parse_reference

D256 = "sha256:" + "0123456789abcdef" * 4
D512 = "sha512:" + "0123456789abcdef" * 8

# input | str(ref) | familiar | registry_host
VALID = """
busybox                         | docker.io/library/busybox:latest           | busybox:latest           | registry-1.docker.io
busybox:1.36                    | docker.io/library/busybox:1.36             | busybox:1.36             | registry-1.docker.io
library/busybox                 | docker.io/library/busybox:latest           | busybox:latest           | registry-1.docker.io
docker.io/busybox               | docker.io/library/busybox:latest           | busybox:latest           | registry-1.docker.io
docker.io/library/busybox:musl  | docker.io/library/busybox:musl             | busybox:musl             | registry-1.docker.io
index.docker.io/busybox         | docker.io/library/busybox:latest           | busybox:latest           | registry-1.docker.io
index.docker.io/user/app:2      | docker.io/user/app:2                       | user/app:2               | registry-1.docker.io
user/app:1                      | docker.io/user/app:1                       | user/app:1               | registry-1.docker.io
library/foo/bar                 | docker.io/library/foo/bar:latest           | library/foo/bar:latest   | registry-1.docker.io
a/b/c/d                         | docker.io/a/b/c/d:latest                   | a/b/c/d:latest           | registry-1.docker.io
localhost/app                   | localhost/app:latest                       | localhost/app:latest     | localhost
localhost:5000/x:y              | localhost:5000/x:y                         | localhost:5000/x:y       | localhost:5000
localhost:5000/a/b:t            | localhost:5000/a/b:t                       | localhost:5000/a/b:t     | localhost:5000
127.0.0.1:5000/x                | 127.0.0.1:5000/x:latest                    | 127.0.0.1:5000/x:latest  | 127.0.0.1:5000
[::1]:5000/a/b:c                | [::1]:5000/a/b:c                           | [::1]:5000/a/b:c         | [::1]:5000
[fc00:1:2:3:4:5:6:7]:5000/deb   | [fc00:1:2:3:4:5:6:7]:5000/deb:latest       | [fc00:1:2:3:4:5:6:7]:5000/deb:latest | [fc00:1:2:3:4:5:6:7]:5000
ghcr.io/owner/repo:v1.2.3       | ghcr.io/owner/repo:v1.2.3                  | ghcr.io/owner/repo:v1.2.3 | ghcr.io
example.com/busybox             | example.com/busybox:latest                 | example.com/busybox:latest | example.com
xn--n3h.com:18080/foo           | xn--n3h.com:18080/foo:latest               | xn--n3h.com:18080/foo:latest | xn--n3h.com:18080
test-com:8080/foo               | test-com:8080/foo:latest                   | test-com:8080/foo:latest | test-com:8080
test_com/foo                    | docker.io/test_com/foo:latest              | test_com/foo:latest      | registry-1.docker.io
Foo/bar                         | Foo/bar:latest                             | Foo/bar:latest           | Foo
FOO/bar:x                       | FOO/bar:x                                  | FOO/bar:x                | FOO
localhost                       | docker.io/library/localhost:latest         | localhost:latest         | registry-1.docker.io
localhost:5000                  | docker.io/library/localhost:5000           | localhost:5000           | registry-1.docker.io
192.168.0.1:80                  | docker.io/library/192.168.0.1:80           | 192.168.0.1:80           | registry-1.docker.io
docker---rules/dock__er         | docker.io/docker---rules/dock__er:latest   | docker---rules/dock__er:latest | registry-1.docker.io
busybox:Tag_1.0-rc.2            | docker.io/library/busybox:Tag_1.0-rc.2     | busybox:Tag_1.0-rc.2     | registry-1.docker.io
"""


def _rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("|")] for line in table.strip().splitlines()]


@pytest.mark.parametrize(("text", "full", "familiar", "host"), _rows(VALID))
def test_parse_normalises_like_docker(
    text: str, full: str, familiar: str, host: str
) -> None:
    ref = Reference.parse(text)
    assert str(ref) == full
    assert ref.familiar == familiar
    assert ref.registry_host == host
    # str() is the exact inverse of parse() on the normalised form
    assert Reference.parse(full) == ref
    assert str(Reference.parse(full)) == full


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None),
        ("name@" + D256, "docker.io", "library/name", None, D256),
        ("name:tag@" + D256, "docker.io", "library/name", "tag", D256),
        ("quay.io/a/b@" + D512, "quay.io", "a/b", None, D512),
        ("localhost:5000/a/b:t", "localhost:5000", "a/b", "t", None),
    ],
)
def test_fields(
    text: str, domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    assert Reference.parse(text) == Reference(domain, path, tag, digest)


def test_digest_references_keep_tag_and_digest() -> None:
    ref = Reference.parse("busybox:1@" + D256)
    assert str(ref) == f"docker.io/library/busybox:1@{D256}"
    assert ref.familiar == f"busybox:1@{D256}"
    assert Reference.parse("busybox@" + D256).familiar == f"busybox@{D256}"


@pytest.mark.parametrize(
    ("text", "repository", "familiar_name"),
    [
        ("busybox", "docker.io/library/busybox", "busybox"),
        ("user/app:1", "docker.io/user/app", "user/app"),
        ("library/a/b", "docker.io/library/a/b", "library/a/b"),
        ("localhost:5000/x:y", "localhost:5000/x", "localhost:5000/x"),
    ],
)
def test_repository_and_familiar_name(
    text: str, repository: str, familiar_name: str
) -> None:
    ref = Reference.parse(text)
    assert ref.repository == repository
    assert ref.familiar_name == familiar_name


def test_parse_reference_default_tag() -> None:
    assert parse_reference("busybox").tag == "latest"
    assert parse_reference("busybox", default_tag="stable").tag == "stable"
    name_only = parse_reference("busybox", default_tag=None)
    assert name_only.tag is None and name_only.digest is None
    assert str(name_only) == "docker.io/library/busybox"
    assert parse_reference("busybox@" + D256).tag is None


def test_with_tag_and_digest() -> None:
    ref = Reference.parse("busybox:1")
    assert str(ref.with_tag("2")) == "docker.io/library/busybox:2"
    assert str(ref.with_digest(D256)) == f"docker.io/library/busybox:1@{D256}"
    assert ref.with_digest(Digest.parse(D256)).digest == D256
    with pytest.raises(InvalidReference, match='invalid tag format "-bad"'):
        ref.with_tag("-bad")
    with pytest.raises(InvalidReference, match="invalid digest"):
        ref.with_digest("sha256:abc")


def test_constructor_normalises_docker_hub() -> None:
    assert Reference("index.docker.io", "busybox", "1") == Reference.parse("busybox:1")
    assert Reference("docker.io", "busybox").path == "library/busybox"


def test_value_semantics() -> None:
    a, b = (
        Reference.parse("busybox"),
        Reference.parse("docker.io/library/busybox:latest"),
    )
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.tag = "x"  # type: ignore[misc]


def test_registry_host_constant() -> None:
    assert DOCKER_HUB_REGISTRY == "registry-1.docker.io"


LONG_NAME = "a" * 250 + "/b"  # path "a…a/b" is 252 characters: fine
TOO_LONG = "a" * 254 + "/b"  # 256 characters

# input | error message (after 'parsing reference "<input>": ')
INVALID = [
    ("Busybox", "invalid reference format: repository name must be lowercase"),
    ("docker/Docker", "invalid reference format: repository name must be lowercase"),
    (
        "docker.io/docker/Docker",
        "invalid reference format: repository name must be lowercase",
    ),
    (
        "localhost:5000/App:1",
        "invalid reference format: repository name must be lowercase",
    ),
    ("", "repository name must have at least one component"),
    ("a" * 64, "invalid repository name, cannot specify 64-byte hexadecimal strings"),
    ("-docker", "invalid reference format"),
    ("-docker/docker", "invalid reference format"),
    ("docker-/docker", "invalid reference format"),
    ("____/____", "invalid reference format"),
    ("_docker/_docker", "invalid reference format"),
    ("dock..er/docker", "invalid reference format"),
    ("dock_.er/docker", "invalid reference format"),
    ("dock-.er/docker", "invalid reference format"),
    ("docker/", "invalid reference format"),
    ("docker///docker", "invalid reference format"),
    ("https://github.com/docker/docker", "invalid reference format"),
    ("-docker.io/docker/docker", "invalid reference format"),
    ("[fc00::1]", "invalid reference format"),
    ("[fc00::1]:5000", "invalid reference format"),
    ("fc00::1:5000/debian", "invalid reference format"),
    ("[fe80::1%eth0]:5000/debian", "invalid reference format"),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    ("busybox:-tag", "invalid reference format"),
    ("busybox:.tag", "invalid reference format"),
    ("busybox:" + "t" * 129, "invalid reference format"),
    ("busybox:tag:tag", "invalid reference format"),
    ("busybox@", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("bus box", "invalid reference format"),
    ("busybox:tâg", "invalid reference format"),
    # Go's parser accepts this with an empty domain (the first part has a "."
    # but cannot be a host); we refuse it rather than invent a registry
    ("a.b_c/x", "invalid reference format"),
    (
        "busybox@sha256:" + "A" * 64,
        f'invalid digest "sha256:{"A" * 64}": sha256 needs 64 lowercase hex characters',
    ),
    (
        "busybox@sha256:" + "a" * 63,
        f'invalid digest "sha256:{"a" * 63}": sha256 needs 64 lowercase hex characters',
    ),
    (
        "busybox@md5:" + "a" * 32,
        f'invalid digest "md5:{"a" * 32}": unsupported algorithm "md5" (want sha256 or sha512)',
    ),
    (TOO_LONG, "repository name must not be more than 255 characters"),
]


@pytest.mark.parametrize(
    ("text", "message"), INVALID, ids=[t[:40] or "empty" for t, _ in INVALID]
)
def test_invalid_references_name_the_input(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as info:
        Reference.parse(text)
    assert str(info.value) == f'parsing reference "{text}": {message}'


def test_length_limit_is_on_the_path() -> None:
    assert Reference.parse(LONG_NAME).path == LONG_NAME
    # the domain does not count towards the 255 characters
    assert Reference.parse("registry.example.com:5000/" + LONG_NAME).path == LONG_NAME


def test_non_string_input() -> None:
    with pytest.raises(InvalidReference, match="not a string"):
        Reference.parse(None)  # type: ignore[arg-type]


def test_invalid_constructor_arguments() -> None:
    with pytest.raises(InvalidReference, match="must be lowercase"):
        Reference("docker.io", "library/Busybox")
    with pytest.raises(InvalidReference, match="bad registry domain"):
        Reference("bad_domain", "x")
    with pytest.raises(InvalidReference, match="are not strings"):
        Reference("docker.io", None)  # type: ignore[arg-type]

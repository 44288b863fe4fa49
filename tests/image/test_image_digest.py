from __future__ import annotations

import hashlib

import pytest

from dockyard.errors import DockyardError
from dockyard.image import SHA256, SHA512, Digest, ImageFormatError

EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    "text",
    [EMPTY_SHA256, "sha512:" + hashlib.sha512(b"").hexdigest(), "sha256:" + "0" * 64],
)
def test_parse_str_round_trip(text: str) -> None:
    d = Digest.parse(text)
    assert str(d) == text
    assert d.algorithm + ":" + d.hex == text


def test_of_bytes() -> None:
    assert str(Digest.of_bytes(b"")) == EMPTY_SHA256
    d = Digest.of_bytes(b"abc", SHA512)
    assert d.algorithm == SHA512 and d.hex == hashlib.sha512(b"abc").hexdigest()
    assert d.matches(b"abc") and not d.matches(b"abd")


def test_streaming_hash() -> None:
    h = Digest.hasher_for(SHA256)
    for chunk in (b"a", b"b", b"c"):
        h.update(chunk)
    assert Digest.from_hash(h) == Digest.of_bytes(b"abc")
    check = Digest.of_bytes(b"abc").hasher()
    check.update(b"abc")
    assert Digest.from_hash(check) == Digest.of_bytes(b"abc")


def test_value_semantics() -> None:
    a, b = Digest.parse(EMPTY_SHA256), Digest.of_bytes(b"")
    assert a == b and hash(a) == hash(b)
    x = Digest.of_bytes(b"x")
    assert (a < x) != (x < a)  # ordered, so digests can be sorted
    assert a.short == "e3b0c44298fc"
    with pytest.raises(AttributeError):
        a.hex = "0"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'invalid digest "": want <algorithm>:<hex>'),
        ("sha256", 'invalid digest "sha256": want <algorithm>:<hex>'),
        (":" + "a" * 64, f'invalid digest ":{"a" * 64}": want <algorithm>:<hex>'),
        ("sha256:", 'invalid digest "sha256:": want <algorithm>:<hex>'),
        (
            "sha256:abc",
            'invalid digest "sha256:abc": sha256 needs 64 lowercase hex characters',
        ),
        (
            "sha256:" + "A" * 64,
            f'invalid digest "sha256:{"A" * 64}": sha256 needs 64 lowercase hex characters',
        ),
        (
            "sha256:" + "g" * 64,
            f'invalid digest "sha256:{"g" * 64}": sha256 needs 64 lowercase hex characters',
        ),
        (
            "sha512:" + "a" * 64,
            f'invalid digest "sha512:{"a" * 64}": sha512 needs 128 lowercase hex characters',
        ),
        (
            "SHA256:" + "a" * 64,
            (
                f'invalid digest "SHA256:{"a" * 64}": unsupported algorithm "SHA256" '
                "(want sha256 or sha512)"
            ),
        ),
        (
            "md5:" + "a" * 32,
            f'invalid digest "md5:{"a" * 32}": unsupported algorithm "md5" (want sha256 or sha512)',
        ),
    ],
)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(ImageFormatError) as info:
        Digest.parse(text)
    assert str(info.value) == message
    assert isinstance(info.value, DockyardError)


def test_constructor_validates() -> None:
    with pytest.raises(ImageFormatError):
        Digest("sha256", "abc")
    with pytest.raises(ImageFormatError, match="unsupported digest algorithm"):
        Digest.hasher_for("md5")
    with pytest.raises(ImageFormatError, match="not a string"):
        Digest.parse(None)  # type: ignore[arg-type]

"""Fuzzing image references: any string parses or is an InvalidReference with
a one-line message, quickly; what parses normalises to a fixed point (its
canonical and familiar spellings parse back to the same reference); and a
store lookup by any name is a clear answer, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from hardening_lib import clear_errors, corpus_files, fuzz_settings
from hypothesis import example, given
from hypothesis import strategies as st

from dockyard import api
from dockyard.errors import DockyardError, ImageNotFound, InvalidReference
from dockyard.reference import Reference, parse_reference
from dockyard.store import Store

FUZZ = fuzz_settings()
HEX = "0123456789abcdef"

domains = st.sampled_from(["", "docker.io/", "index.docker.io/", "localhost/", "localhost:5000/",
                           "example.com:443/", "[::1]:5000/", "127.0.0.1/", "UPPER.io/", "a-b.c/",
                           "-bad.io/", "a..b/", "host:/", "[zz]/", "xn--80ak6aa92e.com/"])
components = st.sampled_from(["library", "busybox", "a", "a_b", "a__b", "a___b", "a.b", "a-b", "a--b",
                              "A", "-a", "a-", "_a", "..", "", "x" * 256, "\u00e9", "a b", "1", "a/"])
tags = st.sampled_from(["", ":latest", ":v1.0", ":-bad", ":" + "a" * 128, ":" + "a" * 129, ":_x",
                        ":", ":a:b", ":\u00e9"])
digests = st.sampled_from(["", "@sha256:" + "a" * 64, "@sha256:" + "A" * 64, "@sha256:" + "a" * 63,
                           "@sha512:" + "b" * 128, "@md5:" + "c" * 32, "@sha256:", "@", "@@",
                           "@sha256:" + "g" * 64, "@sha256+b64:" + "a" * 64])
references = st.builds(lambda d, parts, t, g: d + "/".join(parts) + t + g,
                       domains, st.lists(components, min_size=1, max_size=4), tags, digests)


def check_reference(text: str) -> None:
    ref = clear_errors(parse_reference, text)
    if isinstance(ref, DockyardError):
        assert isinstance(ref, InvalidReference), type(ref)
        return
    assert isinstance(ref, Reference)
    canonical = str(ref)
    assert Reference.parse(canonical) == ref, (text, canonical)
    first = ref.path.split("/")[0]
    if ref.domain == "docker.io" and "/" in ref.path and ("." in first or first == "localhost"):
        # Docker's short form is ambiguous here too: `docker images` shows
        # docker.io/a.b/x as a.b/x, which names registry a.b.
        assert ref.familiar.startswith(ref.path), (text, ref.familiar)
    else:
        assert Reference.parse(ref.familiar) == ref, (text, ref.familiar)
    assert parse_reference(canonical, default_tag=None) == ref
    assert str(Reference.parse(canonical)) == canonical


@FUZZ
@given(references | st.text(max_size=80))
@example("a" * 5000 + "!")
@example("a." * 2000 + "!")
@example("a-" * 2000 + "/x")
@example("a" + "_a" * 2000 + "__")
@example("[" + ":" * 3000)
@example("localhost:" + "9" * 3000 + "/a")
@example("busybox@sha256:" + "a" * 5000)
@example("a" * 64)
@example("sha256:" + "a" * 64)
@example("docker.io/a.b/library")
@example("docker.io/localhost/x:1")
def test_fuzz_reference(text):
    check_reference(text)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    """One store for all the examples (module scope: hypothesis reruns the test body)."""
    return tmp_path_factory.mktemp("fuzz-store")


@FUZZ
@given(references | st.text(max_size=40))
@example("sha256:")
@example("sha256:abc")
@example("abcd")
@example("%")
@example("_")
def test_fuzz_store_lookup(store_dir, name):
    """Every name is "no such image" or a clear error, on an empty store."""
    store = Store(store_dir)
    try:
        result = clear_errors(api.get_image, store, name)
    finally:
        store.db.close()
    assert isinstance(result, DockyardError)
    if not isinstance(result, ImageNotFound):
        assert isinstance(result, (InvalidReference,)) or "ambiguous" in str(result), result


@pytest.mark.parametrize("name", ["\n", "A\n", "busybox\nlatest"])
def test_reference_errors_are_one_line(name):
    clear_errors(parse_reference, name)


@pytest.mark.parametrize("name", ["\n", "abcd\n"])
def test_lookup_errors_are_one_line(name, tmp_path):
    clear_errors(api.get_image, Store(tmp_path), name)


@pytest.mark.parametrize("path", corpus_files("reference"), ids=lambda p: p.name)
def test_reference_corpus(path: Path):
    for line in path.read_text().splitlines():
        check_reference(line)

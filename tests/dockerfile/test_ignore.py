"""Tests for dockyard.dockerfile.ignore.

The JSON vectors restate moby/patternmatcher's tests (Apache-2.0); see
tests/data/dockerignore/ORIGIN.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.dockerfile.ignore import (
    PatternMatcher,
    find_ignore_file,
    load_ignore,
    matches,
    parse_ignore,
)
from dockyard.dockerfile.ignore import _dir
from dockyard.errors import DockerfileError

DATA = Path(__file__).resolve().parent.parent / "data" / "dockerignore"
CASES = json.loads((DATA / "patternmatcher_cases.json").read_text(encoding="utf-8"))
SINGLE = CASES["matches_single"] + CASES["matches_single_unix_only"]
MULTI = CASES["matches_multi"]
FILEPATH = CASES["filepath_match"]
COMPILE = CASES["compile"]


def test_vector_counts() -> None:
    # a missing or truncated vector file must not pass quietly
    assert len(CASES["matches_single"]) == 67
    assert len(SINGLE) == 68
    assert len(MULTI) == 4
    assert len(FILEPATH) == 54
    assert sum(c["error"] is not None for c in FILEPATH) == 15
    assert len(COMPILE) == 21


def _walk_result(pm: PatternMatcher, text: str) -> bool:
    """Match as a tree walker would: each parent first, passing results down."""
    info: tuple[bool, ...] = ()
    parent = _dir(text)  # Go's filepath.Dir, as patternmatcher's own test
    if parent != ".":
        parts = parent.split("/")
        for k in range(len(parts)):
            _, info = pm.matches_using_parent("/".join(parts[: k + 1]), info)
    return pm.matches_using_parent(text, info)[0]


@pytest.mark.parametrize("case", SINGLE, ids=[f"{c['pattern']}|{c['text']}" for c in SINGLE])
def test_single_pattern(case: dict) -> None:
    pm = PatternMatcher([case["pattern"]])
    assert pm.matches(case["text"]) is case["match"]
    assert _walk_result(pm, case["text"]) is case["match"]


@pytest.mark.parametrize("case", MULTI, ids=[" ".join(c["patterns"]) for c in MULTI])
def test_exclusions(case: dict) -> None:
    pm = PatternMatcher(case["patterns"])
    assert pm.exclusions
    assert pm.matches(case["text"]) is case["match"]
    assert _walk_result(pm, case["text"]) is case["match"]


@pytest.mark.parametrize("case", FILEPATH, ids=[f"{c['pattern']}|{c['text']}" for c in FILEPATH])
def test_filepath_match_cases(case: dict) -> None:
    if case["error"]:
        with pytest.raises(DockerfileError, match="syntax error in pattern"):
            matches(case["text"], [case["pattern"]])
    else:
        assert matches(case["text"], [case["pattern"]]) is case["match"]


@pytest.mark.parametrize("case", COMPILE, ids=[c["pattern"] for c in COMPILE])
def test_compile_classification(case: dict) -> None:
    pattern = PatternMatcher([case["pattern"]]).patterns[0]
    pattern.compile()
    assert f"{pattern.kind}Match" == case["match_type"]
    assert pattern.go_regex == case["regexp_unix"]


# ---- the scalar checks listed in _notes ---------------------------------------


def test_scalar_notes() -> None:
    assert matches("fileutils.go", ["*"])
    assert matches("fileutils.go", ["*.go"])
    assert matches("fileutils.go", ["!fileutils.go", "*.go"])
    assert not matches("docs/README.md", ["docs", "!docs/README.md"])
    assert not matches("docs/README.md", ["docs/", "!docs/README.md"])
    assert not matches("docs/README.md", ["docs/*", "!docs/README.md"])
    assert not matches("fileutils.go", ["*.go", "!fileutils.go"])
    assert not matches(".", ["*.go"])
    assert not matches("/any/path/there", [])
    with pytest.raises(DockerfileError, match='illegal exclusion pattern: "!"'):
        matches("x", ["!"])
    with pytest.raises(DockerfileError, match=r'pattern "\["'):
        matches("/any/path/there", ["["])
    assert len(PatternMatcher(["docs", "config", ""]).patterns) == 2
    assert PatternMatcher(["  !docs/README.md"]).patterns[0].exclusion


def test_bad_regex_fails_on_every_match_not_at_load() -> None:
    pm = PatternMatcher(["[Local-Only]/"])  # filepath.Match accepts it
    for _ in range(2):
        with pytest.raises(DockerfileError, match=r'pattern "\[Local-Only\]"'):
            pm.matches("x")


def test_unreached_bad_exception_is_not_an_error() -> None:
    # an exception pattern is only compiled once something matched before it
    pm = PatternMatcher(["*.tmp", "![Local-Only]"])
    assert not pm.matches("a.txt")
    with pytest.raises(DockerfileError):
        pm.matches("a.tmp")


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # patternmatcher compiles to a Go regex: these follow Go's regex rules
        ("log[[:digit:]]", "log5", True),
        ("log[[:digit:]]", "logx", False),
        ("a[[:^alpha:]]", "a1", True),
        ("file\\d", "file7", True),
        ("file\\d", "filed", False),
        ("a\\.b", "a.b", True),
        ("a\\.b", "axb", False),
        ("[\\]a]", "]", True),
        ("a[^b]c", "a/c", True),
        ("*.go", "dir/x.go", False),
        ("*/*.go", "dir/x.go", True),
        ("dir", "dir/sub/file", True),
        ("dir/", "dir/sub/file", True),
        ("d?r", "d/r", False),
        ("**/*.go", "x.go", True),
        ("**/*.go", "a/b/x.go", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/xb", False),
        ("/abs", "abs", False),  # only ReadAll strips the leading '/'
        ("./a/../b/", "b/c", True),
    ],
)
def test_pattern_semantics(pattern: str, path: str, expected: bool) -> None:
    assert PatternMatcher([pattern]).matches(path) is expected


# ---- pruning ------------------------------------------------------------------


def test_can_skip_dir() -> None:
    pm = PatternMatcher(["node_modules", "build"])
    assert not pm.exclusions and pm.only_prefix_exceptions
    assert pm.matches("node_modules") and pm.can_skip_dir("node_modules")

    pm = PatternMatcher(["build", "!build/keep/**", "!docs"])
    assert pm.exclusions and pm.only_prefix_exceptions
    assert pm.matches("build")
    assert not pm.can_skip_dir("build")  # build/keep may come back
    assert not pm.matches("build/keep/x")
    assert pm.matches("build/other/x")
    assert pm.can_skip_dir("build/other")

    pm = PatternMatcher(["*", "!**/*.go"])
    assert not pm.only_prefix_exceptions
    assert not pm.can_skip_dir("vendor")
    assert not pm.matches("vendor/a.go")


def test_walk_info_is_reused_for_children() -> None:
    pm = PatternMatcher(["a", "!a/b"])
    hit, info = pm.matches_using_parent("a")
    assert hit and info == (True, False)
    hit, child = pm.matches_using_parent("a/b", info)
    assert not hit and child == (True, True)
    assert pm.matches_using_parent("a/b/c", child)[0] is False
    assert pm.matches_using_parent("a/c", info)[0] is True
    with pytest.raises(ValueError):
        pm.matches_using_parent("a/c", (True,))


# ---- reading .dockerignore ------------------------------------------------------


def test_read_all_note() -> None:
    note = CASES["_notes"]["ignorefile_ReadAll"]
    assert parse_ignore(note["input"]) == note["expected"]
    assert parse_ignore("") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\ufeff# comment\nfoo\n", ["foo"]),
        ("\ufefffoo\n\ufeffbar", ["foo", "\ufeffbar"]),  # BOM only on line one
        ("a\r\nb\r\n", ["a", "b"]),
        ("  # not a comment", ["# not a comment"]),
        ("\t x/ \t\n", ["x"]),
        ("/", ["/"]),
        ("//a//b/", ["a/b"]),
        ("./a/../b/", ["b"]),
        ("/../x", ["x"]),
        ("../x", ["../x"]),
        ("!  /a/./b", ["!a/b"]),
        ("!", ["!"]),
        (b"caf\xc3\xa9\n*.o\n", ["café", "*.o"]),
    ],
)
def test_parse_ignore(text: str | bytes, expected: list[str]) -> None:
    assert parse_ignore(text) == expected


def test_find_ignore_file_precedence(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    dockerfile = ctx / "Dockerfile"
    dockerfile.write_text("FROM scratch\n")
    assert find_ignore_file(ctx, dockerfile) is None

    (ctx / ".dockerignore").write_text("*.log\n")
    assert find_ignore_file(ctx, dockerfile) == ctx / ".dockerignore"
    assert find_ignore_file(ctx, None) == ctx / ".dockerignore"

    specific = ctx / "Dockerfile.dockerignore"
    specific.write_text("")  # empty still wins
    assert find_ignore_file(ctx, dockerfile) == specific
    assert not load_ignore(ctx, dockerfile).matches("a.log")

    # a Dockerfile elsewhere: its own ignore file sits beside it
    other = tmp_path / "docker" / "app.Dockerfile"
    other.parent.mkdir()
    other.write_text("FROM scratch\n")
    assert find_ignore_file(ctx, other) == ctx / ".dockerignore"
    (other.parent / "app.Dockerfile.dockerignore").write_text("src\n!src/keep\n")
    assert find_ignore_file(ctx, other) == other.parent / "app.Dockerfile.dockerignore"
    pm = load_ignore(ctx, other)
    assert pm.matches("src/x") and not pm.matches("src/keep") and not pm.matches("a.log")


def test_load_ignore_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("ok\n[bad\n")
    with pytest.raises(DockerfileError) as info:
        load_ignore(tmp_path, tmp_path / "Dockerfile")
    text = str(info.value)
    assert ".dockerignore" in text and '"[bad"' in text


def test_load_ignore_without_file(tmp_path: Path) -> None:
    pm = load_ignore(tmp_path, tmp_path / "Dockerfile")
    assert pm.patterns == [] and not pm.matches("anything")

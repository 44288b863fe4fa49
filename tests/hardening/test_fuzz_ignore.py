"""Fuzzing .dockerignore matching: any pattern list either compiles or is a
DockerfileError; matching never hangs and raises nothing but a clear error;
a directory the walker may prune (can_skip_dir) has nothing re-included below it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hardening_lib import clear_errors, corpus_files, fuzz_settings
from hypothesis import example, given
from hypothesis import strategies as st

from dockyard.dockerfile.ignore import PatternMatcher, matches, parse_ignore
from dockyard.errors import DockerfileError

FUZZ = fuzz_settings()

NAMES = ["a", "b", "ab", "a.txt", ".git", "node_modules", "x y", "caf\u00e9", "-", "[", "]", "*", "\\"]
PATTERN_PARTS = ["a", "b", "*", "**", "?", "[ab]", "[^a]", "[a-", "[]", "[!b]", "\\*", "\\", ".", "..",
                 "a*", "*b", "**/a", "x y", "[\\]]", "[a-z]", "{a,b}", "caf\u00e9", "\u00e9*", "\x00"]

names = st.lists(st.sampled_from(NAMES), min_size=1, max_size=5).map("/".join)
patterns = st.builds(
    lambda neg, lead, parts, trail: ("!" if neg else "") + lead + "/".join(parts) + trail,
    st.booleans(), st.sampled_from(["", "/", "./", "../"]),
    st.lists(st.one_of(st.sampled_from(PATTERN_PARTS), st.text(max_size=4)), min_size=1, max_size=5),
    st.sampled_from(["", "/", "/**", "/*"]))


def walk_verdict(matcher: PatternMatcher, path: str) -> bool:
    """What a tree walker concludes, one parent at a time."""
    info: tuple[bool, ...] = ()
    verdict = False
    parts = path.split("/")
    for depth in range(1, len(parts) + 1):
        verdict, info = matcher.matches_using_parent("/".join(parts[:depth]), info)
    return verdict


def check_matcher(pats: list[str], paths: list[str]) -> None:
    matcher = clear_errors(PatternMatcher, pats)
    if isinstance(matcher, DockerfileError):
        return
    for path in paths:
        verdict = clear_errors(matcher.matches, path)
        # The walker's verdict need not agree: like BuildKit's
        # MatchesUsingParentResults it skips patterns that cannot change the
        # verdict so far (['a/**', '!a'] on a/a), bad ones included (a bad class
        # is an error only when a pattern is used, as in Go).
        clear_errors(walk_verdict, matcher, path)
        if isinstance(verdict, DockerfileError):
            continue
        parent = path.rsplit("/", 1)[0] if "/" in path else None
        if parent and clear_errors(matcher.matches, parent) is True and matcher.can_skip_dir(parent):
            assert verdict, f"{parent} was pruned but {path} below it is not excluded ({pats})"


@FUZZ
@given(st.lists(patterns, max_size=5), st.lists(names, min_size=1, max_size=5))
@example(["**/**/**/**/**/c"], ["a/" * 20 + "b"])
@example(["*" * 40 + "c"], ["a" * 60])
@example(["a/**", "!a/b/**", "a/b/c"], ["a/b/c/d", "a/b/x"])
@example(["[", "!"], ["a"])
@example(["\\"], ["\\"])
@example(["[a-/[ab]"], ["a"])
@example(["a/**", "!a"], ["a/a"])
@example(["a/a", "[a-/[ab]"], ["a/a"])
def test_fuzz_pattern_matcher(pats, paths):
    check_matcher(pats, paths)


@FUZZ
@given(st.text(max_size=200) | st.binary(max_size=200))
@example(b"\xef\xbb\xbf# comment\n!\n")
@example("\r\n\r\n  *  \r\n")
def test_fuzz_ignore_file(text):
    lines = clear_errors(parse_ignore, text)
    if not isinstance(lines, DockerfileError):
        assert all(isinstance(line, str) for line in lines)
        clear_errors(matches, "a/b", lines)


@pytest.mark.parametrize("path", corpus_files("ignore"), ids=lambda p: p.name)
def test_ignore_corpus(path: Path):
    """Each file: patterns, a line `---`, then paths to match."""
    pats, _, paths = path.read_text().partition("\n---\n")
    check_matcher(parse_ignore(pats), [p for p in paths.splitlines() if p])

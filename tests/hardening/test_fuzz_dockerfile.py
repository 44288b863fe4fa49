"""Fuzzing the Dockerfile front end: the parser, the typed instructions and
their word expansion. Whatever the text, the answer is a result or a
DockerfileError with a one-line message, within a few seconds.

Seeds are BuildKit's parser test files (tests/data/dockerfile-parser) and
tests/hardening/corpus/dockerfile/*; every corpus file also runs as its own
regression test."""

from __future__ import annotations

from pathlib import Path

import pytest
from hardening_lib import TESTS, clear_errors, corpus_files, fuzz_settings
from hypothesis import example, given
from hypothesis import strategies as st

from dockyard.dockerfile import instructions as ins
from dockyard.dockerfile.parser import parse
from dockyard.dockerfile.shell import Lexer
from dockyard.errors import DockerfileError

FUZZ = fuzz_settings()
SEEDS = sorted(p.read_bytes() for p in (TESTS / "data" / "dockerfile-parser" / "testfiles").glob("*/Dockerfile")
               ) + [p.read_bytes() for p in corpus_files("dockerfile")]
ENV = {"A": "a", "EMPTY": "", "SPACE": "a b", "GLOB": "*", "DOLLAR": "$A", "UNI": "\u00e9\u4e2d"}

KEYWORDS = ["FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
            "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
            "onbuild", "from", "BOGUS", ""]
PIECES = ["\\", "\\\n", "`", "`\n", "\"", "'", "$", "${", "}", "${A:-x}", "${A:+", "${A?err}", "${#A}",
          "${A%%*}", "${A/a/b}", "$A", "[", "]", "[\"a\", \"b\"]", "[\"", ",", "=", "==", "--", "--from=",
          "--mount=type=bind,target=/x", "--chown=1:1", "--chmod=777", "--network=none",
          "--interval=1s", "--platform=$BUILDPLATFORM", "<<EOF", "<<-EOF", "<<'EOF'", "<<\"E\"",
          "EOF", "\nEOF\n", "#", "# escape=`", "# syntax=x", "# check=skip=all", "\t", " ", "\n",
          "\r\n", "\r", "\x00", "\x0b", "\x0c", "\u2028", "\u00a0", "\ufeff", "AS", "as x", "NONE",
          "\"\\\"", "'\\''", "\\$", "$$", "${", "${A:0:1}", "\x85", "a" * 50]

line = st.tuples(st.sampled_from(KEYWORDS),
                 st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=8))
dockerfiles = st.lists(line, min_size=1, max_size=8).map(
    lambda lines: "\n".join(k + " " + "".join(args) for k, args in lines))


@st.composite
def mutated(draw, seeds=SEEDS):
    """A seed Dockerfile with a few edits: inserted pieces, deletions, swaps."""
    text = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "truncate", "byte"]))
        if op == "insert":
            text[pos:pos] = draw(st.sampled_from(PIECES)).encode()
        elif op == "delete":
            del text[pos:pos + draw(st.integers(1, 20))]
        elif op == "truncate":
            del text[pos:]
        else:
            text[pos:pos] = bytes([draw(st.integers(0, 255))])
    return bytes(text)


def front_end(text: str | bytes):
    """What a build does with Dockerfile text before it runs anything."""
    result = parse(text)
    df = ins.parse_dockerfile(result)
    lexer = Lexer(result.escape)
    for stage in df.stages:
        lexer.process_word(stage.base_name, ENV)
        for cmd in stage.commands:
            expand = getattr(cmd, "expand", None)
            if expand is not None:
                expand(lambda word: lexer.process_word(word, ENV))
            if isinstance(cmd, ins.OnbuildCommand):
                ins.parse_instruction_text(cmd.expression, escape=result.escape)
    return df


@FUZZ
@given(dockerfiles)
@example("FROM a\nRUN <<EOF\n")
@example("# escape=`\nFROM a\nRUN echo `\n")
@example("ONBUILD ONBUILD RUN x")
@example("FROM a AS\nCOPY --from= . .")
@example("FROM ${A:?}")
@example("FROM a\nHEALTHCHECK --interval=-1s CMD x")
@example("ARG A\nFROM a\nENV =x")
@example("FROM a\nCOPY <<EOF <<EOF2 /\nEOF\n")
def test_fuzz_generated_dockerfiles(text):
    clear_errors(front_end, text)


@FUZZ
@given(mutated())
def test_fuzz_mutated_buildkit_dockerfiles(data):
    clear_errors(front_end, data)


@FUZZ
@given(st.binary(max_size=300))
@example(b"\xff\xfeF\x00R\x00O\x00M\x00")
@example(b"\xef\xbb\xbfFROM a")
@example(b"FROM a\nRUN \xc3\x28")
def test_fuzz_raw_bytes(data):
    clear_errors(front_end, data)


words = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=5)), max_size=12).map("".join)


@FUZZ
@given(words, st.sampled_from(["\\", "`"]),
       st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=10), max_size=4))
@example("${A:-${A:-${A:-${A:-${A:-${A:-${A:-x}}}}}}}", "\\", {})
@example("${A/" + "*" * 40 + "a/b}", "\\", {"A": "a" * 60})
@example("${A%%" + "*?" * 12 + "}", "\\", {"A": "ab" * 40})
@example("${A:9999999999999999999}", "\\", {"A": "a"})
@example("$" + "{" * 200, "\\", {})
def test_fuzz_word_expansion(word, escape, env):
    env = {**ENV, **env}
    for options in ({}, {"raw_quotes": True}, {"raw_escapes": True}, {"skip_unset_env": True},
                    {"skip_process_quotes": True}):
        lexer = Lexer(escape, **options)
        clear_errors(lexer.process_word, word, env)
        clear_errors(lexer.process_words, word, env)
        clear_errors(lexer.process_word_with_matches, word, env)


@pytest.mark.parametrize("word", ["${\n}", "\\\\\\\\\\\\${\n", "ab${\ncd}"])
def test_expansion_errors_are_one_line(word):
    clear_errors(Lexer().process_word, word, {})


@pytest.mark.parametrize("word,value", [
    ("${A#" + "*a" * 10 + "*c}", "a" * 40),
    ("${A%%" + "*?" * 30 + "}", "ab" * 40),
    ("${A/" + "*a" * 10 + "*c/x}", "a" * 40),
], ids=["prefix", "suffix", "replace"])
def test_pattern_expansion_is_not_exponential(word, value):
    """A hostile Dockerfile (or build arg) must not hang the builder (ReDoS)."""
    clear_errors(Lexer().process_word, word, {"A": value}, seconds=1)


@pytest.mark.parametrize("path", corpus_files("dockerfile"), ids=lambda p: p.name)
def test_dockerfile_corpus(path: Path):
    clear_errors(front_end, path.read_bytes())


@pytest.mark.parametrize("path", corpus_files("words"), ids=lambda p: p.name)
def test_words_corpus(path: Path):
    for word in path.read_text().splitlines():
        for escape in ("\\", "`"):
            clear_errors(Lexer(escape).process_word, word, ENV)


def test_errors_are_dockerfile_errors():
    err = clear_errors(front_end, "FROM a\nBOGUS x\n")
    assert isinstance(err, DockerfileError) and "unknown instruction" in str(err)

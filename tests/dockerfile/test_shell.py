"""Tests for dockyard.dockerfile.shell.

The envVarTest and wordsTest vectors come from moby/buildkit
(frontend/dockerfile/shell), Apache-2.0; see tests/data/dockerfile-shell/ORIGIN.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.dockerfile.shell import Lexer, build_envs, expand
from dockyard.errors import DockerfileError

DATA = Path(__file__).resolve().parent.parent / "data" / "dockerfile-shell"
ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _env_var_rows() -> list[tuple[int, str, str, str]]:
    rows = []
    text = (DATA / "envVarTest").read_text(encoding="utf-8")
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            continue  # comments are recognised before trimming
        line = line.strip()
        if not line:
            continue
        fields = line.split("|")
        assert len(fields) == 3, f"envVarTest:{lineno}: {line!r}"
        platform, source, expected = (f.strip() for f in fields)
        assert platform in ("A", "U", "W"), f"envVarTest:{lineno}: {platform!r}"
        rows.append((lineno, platform, source, expected))
    return rows


def _words_rows() -> list[tuple[int, dict[str, str], str, list[str]]]:
    rows = []
    env: list[str] = []
    text = (DATA / "wordsTest").read_text(encoding="utf-8")
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            continue
        if line.startswith("ENV "):
            env.append(line[3:].lstrip(" "))
            continue
        fields = line.split("|")
        assert len(fields) == 2, f"wordsTest:{lineno}: {line!r}"
        expected = fields[1].lstrip(" ").split(",")
        rows.append((lineno, build_envs(env), fields[0].strip(), expected))
    return rows


ENV_ROWS = _env_var_rows()
UNIX_ROWS = [r for r in ENV_ROWS if r[1] in ("A", "U")]
WORDS_ROWS = _words_rows()


def test_vector_counts() -> None:
    # a missing or truncated vector file must not pass quietly
    assert len(ENV_ROWS) == 230
    assert sum(r[1] == "W" for r in ENV_ROWS) == 2  # Windows-only rows, skipped
    assert len(UNIX_ROWS) == 228
    assert sum(r[3] == "error" for r in UNIX_ROWS) == 36
    assert len(WORDS_ROWS) == 24


@pytest.mark.parametrize(
    ("lineno", "platform", "source", "expected"), ENV_ROWS, ids=[f"line{r[0]}" for r in ENV_ROWS]
)
def test_env_var_vectors(lineno: int, platform: str, source: str, expected: str) -> None:
    if platform == "W":
        pytest.skip("Windows-only row ($pwd is $PWD there)")
    lex = Lexer("\\")
    if expected == "error":
        with pytest.raises(DockerfileError):
            lex.process_word(source, ENV)
        # the list form of the environment behaves the same
        with pytest.raises(DockerfileError):
            lex.process_word(source, [f"{k}={v}" for k, v in ENV.items()])
    else:
        assert lex.process_word(source, ENV) == expected
        assert lex.process_word(source, [f"{k}={v}" for k, v in ENV.items()]) == expected


@pytest.mark.parametrize(
    ("lineno", "env", "source", "expected"), WORDS_ROWS, ids=[f"line{r[0]}" for r in WORDS_ROWS]
)
def test_words_vectors(lineno: int, env: dict[str, str], source: str, expected: list[str]) -> None:
    lex = Lexer()
    try:
        got = lex.process_words(source, env)
    except DockerfileError:
        got = ["error"]
    assert got == expected


# ---- modifiers beyond the vectors -------------------------------------------


@pytest.mark.parametrize(
    ("word", "env", "expected"),
    [
        ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc"),
        ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx bbb ccc"),
        ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb "),
        ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  "),
        ("${BAR?bbb}", {"BAR": ""}, ""),
        ("${FOO:?aaa}", {"FOO": "xxx"}, "xxx"),
        # prefix / suffix removal; escapes make wildcards literal
        ("${FOO#*x*y}", {"FOO": "xxyy"}, "y"),
        ("${FOO#*}", {"FOO": "xxyy"}, "xxyy"),
        ("${FOO##*x}", {"FOO": "xxyy"}, "yy"),
        ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy"),
        ("${FOO#}", {"FOO": "xxyy"}, "xxyy"),
        ("${FOO##}", {"FOO": "xxyy"}, "xxyy"),
        ("${FOO#?\\?}", {"FOO": "???y"}, "?y"),
        ("${FOO%x}", {"FOO": "xxyy"}, "xxyy"),
        ("${FOO%y}", {"FOO": "xxyy"}, "xxy"),
        ("${FOO%y*}", {"FOO": "xxyy"}, "xxy"),
        ("${FOO%%y*}", {"FOO": "xxyy"}, "xx"),
        ("${FOO%%\\**}", {"FOO": "xx**"}, "xx"),
        ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a"),
        ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x"),
        ("${FOO:#x}", {"FOO": "xxyy"}, "xyy"),
        ("${FILE%.*}/${FILE##*.}", {"FILE": "a.tar.gz"}, "a.tar/gz"),
        # substitution
        ("${FOO/$N/.} - ${FOO//$N/.}", {"FOO": "/foo*/*/*.txt", "N": "\\*/"}, "/foo.*/*.txt - /foo..*.txt"),
        ("${FOO/$N/} - ${FOO//$N/}", {"FOO": "/tmp/tmp/bar.txt", "N": "/tmp"}, "/tmp/bar.txt - /bar.txt"),
        ("${FOO/$N/$R} - ${FOO//$N/$R}", {"FOO": "/a/foo/b/c.txt", "N": "/?/", "R": "/"}, "/foo/b/c.txt - /foo/c.txt"),
        ("${FOO/$N/$R}", {"FOO": "http://google.de", "N": "http://", "R": "https://"}, "https://google.de"),
        ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt"),
        ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy"),
        ("${FOO///}", {"FOO": "xxyy"}, "xxyy"),
        ("${FOO///}", {}, ""),
        # Go's ReplaceAll: no empty match right after a match, $0 expands
        ("${FOO//*/-}", {"FOO": "abc"}, "-"),
        ("${FOO//b/<'$0'>}", {"FOO": "abc"}, "a<b>c"),
        ("${FOO/b/<'$0'>}", {"FOO": "abc"}, "a<$0>c"),
        ("${FOO//b/'$$'}", {"FOO": "abc"}, "a$c"),
        # quotes and nesting inside modifiers
        ('${X:-"a b"}', {}, "a b"),
        ("${X:-'${Y}'}", {}, "${Y}"),
        ("${A:-${B:-${C:-deep}}}", {}, "deep"),
        ("v${Ü}", {"Ü": "u"}, "vu"),
    ],
)
def test_modifiers(word: str, env: dict[str, str], expected: str) -> None:
    assert expand(word, env) == expected


@pytest.mark.parametrize(
    ("word", "env", "message"),
    [
        ("${VAR:?message here$ARG}", {"VAR": "", "ARG": "x"}, "VAR: message herex"),
        ("${VAR:?message here$ARG}", {"ARG": "x"}, "VAR: message herex"),
        ("${VAR?message here$ARG}", {"ARG": "x"}, "VAR: message herex"),
        ("${VAR?}", {}, "VAR: is not allowed to be unset"),
        ("${VAR:?}", {"VAR": ""}, "VAR: is not allowed to be empty"),
        ("he${PWD", {"PWD": "/home"}, "syntax error: missing '}'"),
        ("${aaa:-bbb", {}, "syntax error: missing '}'"),
        ("${}", {}, "syntax error: bad substitution"),
        ("${:-x}", {}, "syntax error: bad substitution"),
        ("${FOO=aaa}", {"FOO": "x"}, "unsupported modifier (=) in substitution"),
        ("${FOO:=aaa}", {"FOO": "x"}, "unsupported modifier (:=) in substitution"),
        ("${FOO=}", {}, "unsupported modifier (=) in substitution"),
        ("${.}", {}, "unsupported modifier (.) in substitution"),
        ("${FOO//ww}", {"FOO": "x"}, "syntax error: missing '/' in ${}"),
        ("${FOO//}", {"FOO": "x"}, "syntax error: missing '/' in ${}"),
        ("${FOO#\\x}", {"FOO": "x"}, "invalid escape"),
        ('"abc', {}, "unexpected end of statement while looking for matching double-quote"),
        ("'abc", {}, "unexpected end of statement while looking for matching single-quote"),
        ("${A:-${B:?gone}}", {}, "B: gone"),
    ],
)
def test_errors(word: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        expand(word, env)
    text = str(info.value)
    assert message in text
    assert text.startswith("failed to process ")
    assert "\n" not in text


def test_error_message_quotes_the_word_like_buildkit() -> None:
    with pytest.raises(DockerfileError) as info:
        expand('a"b\n${X?}', {})
    assert str(info.value) == 'failed to process "a\\"b\\n${X?}": X: is not allowed to be unset'


@pytest.mark.parametrize(
    ("word", "env", "result", "matched", "unmatched"),
    [
        ("x", {"DUMMY": "dummy"}, "x", set(), set()),
        ("x ${UNUSED}", {"DUMMY": "dummy"}, "x ", set(), {"UNUSED"}),
        ("x ${FOO}", {"FOO": "y"}, "x y", {"FOO"}, set()),
        ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc", {"FOO", "BAR"}, {"BAZ"}),
        ("${FOO:-}", {}, "", set(), {"FOO"}),
        ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy.", {"FOO"}, {"ABC"}),
        ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy", {"FOO", "BAR"}, set()),
        ("$1 ${@:-a} $abc", {}, " a ", set(), {"1", "@", "abc"}),
        ("'$QUOTED' \\$ESC $", {}, "$QUOTED $ESC $", set(), set()),
        (
            "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
            {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7"},
            "something-v1.2.3.linux-arm-v7.tar.gz",
            {"VERSION", "TARGETOS", "TARGETARCH", "TARGETVARIANT"},
            set(),
        ),
        (
            "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
            {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "amd64"},
            "something-v1.2.3.linux-amd64.tar.gz",
            {"VERSION", "TARGETOS", "TARGETARCH"},
            {"TARGETVARIANT"},
        ),
    ],
)
def test_matches(word: str, env: dict[str, str], result: str, matched: set[str], unmatched: set[str]) -> None:
    assert Lexer().process_word_with_matches(word, env) == (result, matched, unmatched)


def test_build_envs_last_wins_and_bare_names() -> None:
    assert build_envs(["foo=bar", "car=hat", "car=bike", "flag", "eq=a=b"]) == {
        "foo": "bar",
        "car": "bike",
        "flag": "",
        "eq": "a=b",
    }


def test_backtick_escape() -> None:
    lex = Lexer("`")
    assert lex.process_word("C:\\path\\to", {}) == "C:\\path\\to"
    assert lex.process_word("a`$b", {"b": "x"}) == "a$b"
    assert lex.process_word('"a`"b"', {}) == 'a"b'
    assert lex.process_words("a` b c", {}) == ["a b", "c"]


def test_skip_unset_env_keeps_references() -> None:
    lex = Lexer(skip_unset_env=True)
    env = {"SET": "v"}
    assert lex.process_word("$SET $UNSET ${UNSET} ${UNSET:-d} ${UNSET/a/b}", env) == (
        "v $UNSET ${UNSET} ${UNSET:-d} ${UNSET/a/b}"
    )


def test_raw_quotes_and_raw_escapes() -> None:
    assert Lexer(raw_quotes=True).process_word("'a b' \"$X\"", {"X": "x"}) == "'a b' \"x\""
    assert Lexer(raw_escapes=True).process_word("a\\$X\\ b", {"X": "x"}) == "a\\$X\\ b"


def test_skip_process_quotes() -> None:
    lex = Lexer(skip_process_quotes=True)
    assert lex.process_word("'$X' \"$X\"", {"X": "x"}) == "'x' \"x\""
    assert lex.process_word("it's", {}) == "it's"


def test_word_splitting_details() -> None:
    lex = Lexer()
    env = {"E": "", "S": " a  b "}
    assert lex.process_words("", env) == []
    assert lex.process_words('"" x', env) == ["x"]
    assert lex.process_words("$E x", env) == ["x"]
    assert lex.process_words("1${S}2", env) == ["1", "a", "b", "2"]
    assert lex.process_words("a\tb\u3000c", env) == ["a", "b", "c"]
    # Go's IsSpace doesn't count \x1c as a space; Python's isspace() does
    assert lex.process_words("a\x1cb", env) == ["a\x1cb"]


def test_invalid_escape_token() -> None:
    with pytest.raises(DockerfileError):
        Lexer("ab")

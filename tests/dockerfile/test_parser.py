"""Tests for dockyard.dockerfile.parser (and the heredoc helpers it uses).

The conformance vectors come from moby/buildkit (frontend/dockerfile/parser),
Apache-2.0; see tests/data/dockerfile-parser/ORIGIN.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.dockerfile import parser
from dockyard.dockerfile.heredoc import (
    HeredocError,
    chomp_heredoc_content,
    heredocs_from_line,
    parse_heredoc,
)
from dockyard.errors import DockerfileError, DockyardError

DATA = Path(__file__).resolve().parent.parent / "data" / "dockerfile-parser"
CASES = sorted(p.name for p in (DATA / "testfiles").iterdir())
NEGATIVE = sorted(p.name for p in (DATA / "testfiles-negative").iterdir())
HEREDOC = json.loads((DATA / "heredoc_cases.json").read_text(encoding="utf-8"))


def _heredoc_dicts(node: parser.Node) -> list[dict[str, object]] | None:
    docs = [
        {"Name": h.name, "Content": h.content, "Expand": h.expand, "Chomp": h.chomp,
         "FileDescriptor": h.file_descriptor}
        for h in node.heredocs
    ]
    return docs or None


# --- conformance vectors -------------------------------------------------


def test_there_are_33_parser_cases() -> None:
    assert len(CASES) == 33
    assert len(NEGATIVE) == 4


@pytest.mark.parametrize("case", CASES)
def test_dump_matches_buildkit(case: str) -> None:
    source = (DATA / "testfiles" / case / "Dockerfile").read_bytes()
    expected = (DATA / "testfiles" / case / "result").read_text(encoding="utf-8")
    result = parser.parse(source)
    assert "\n".join(parser.dump(child) for child in result.children) + "\n" == expected
    assert parser.dump_result(result) == expected


@pytest.mark.parametrize("case", NEGATIVE)
def test_negative_cases_fail(case: str) -> None:
    source = (DATA / "testfiles-negative" / case / "Dockerfile").read_bytes()
    with pytest.raises(DockerfileError):
        parser.parse(source)


def test_line_numbers() -> None:
    result = parser.parse((DATA / "testfile-line" / "Dockerfile").read_bytes())
    assert [(c.start_line, c.end_line) for c in result.children] == [(5, 5), (11, 12), (17, 31)]
    assert result.children[0].start_line == 5
    assert result.children[-1].end_line == 31


def test_heredoc_extraction_vector() -> None:
    case = HEREDOC["TestParseExtractsHeredoc"]
    result = parser.parse(case["dockerfile"])
    assert len(result.children) == len(case["expected"]) + 1
    for index, expected in enumerate(case["expected"]):
        node = result.children[index + 1]
        assert _heredoc_dicts(node) == expected, node.original


def test_json_forms_have_no_heredocs() -> None:
    result = parser.parse(HEREDOC["TestParseJSONHeredoc"]["dockerfile"])
    assert [c.heredocs for c in result.children[1:]] == [[], [], []]


def test_heredoc_chomp_vector() -> None:
    case = HEREDOC["TestHeredocChomp"]
    assert chomp_heredoc_content(case["input"]) == case["expected"]


@pytest.mark.parametrize("word", HEREDOC["ParseHeredoc"]["valid_name_EOF"])
def test_parse_heredoc_valid(word: str) -> None:
    doc = parse_heredoc(word)
    assert doc is not None and doc.name == "EOF"
    assert doc.chomp == word.startswith("<<-")
    assert doc.expand == ("'" not in word and '"' not in word)


@pytest.mark.parametrize("word", HEREDOC["ParseHeredoc"]["error"])
def test_parse_heredoc_error(word: str) -> None:
    with pytest.raises(HeredocError):
        parse_heredoc(word)


@pytest.mark.parametrize("word", HEREDOC["ParseHeredoc"]["not_heredoc"])
def test_parse_heredoc_not_heredoc(word: str) -> None:
    assert parse_heredoc(word) is None


@pytest.mark.parametrize("case", HEREDOC["heredocsFromLine"], ids=lambda c: c["line"])
def test_heredocs_from_line(case: dict[str, object]) -> None:
    names = [doc.name for doc in heredocs_from_line(str(case["line"]))] or None
    assert names == case["heredoc_names"]


# --- nodes -----------------------------------------------------------------


def test_node_fields() -> None:
    result = parser.parse('FROM x\n  Copy --from=build --chown="a b" src /dst\nCMD ["a", "b"]\n')
    copy, cmd = result.children[1], result.children[2]
    assert copy.value == "copy"
    assert copy.flags == ["--from=build", "--chown=a b"]
    assert copy.args == ["src", "/dst"]
    assert copy.json is False
    assert copy.original == 'Copy --from=build --chown="a b" src /dst'
    assert (copy.start_line, copy.end_line) == (2, 2)
    assert cmd.json is True and cmd.args == ["a", "b"]


def test_env_and_label_triples() -> None:
    result = parser.parse("FROM x\nENV a=1 b='2 3'\nLABEL k v w\n")
    assert result.children[1].args == ["a", "1", "=", "b", "'2 3'", "="]
    assert result.children[2].args == ["k", "v w", ""]


def test_env_without_equals_in_later_word() -> None:
    with pytest.raises(DockerfileError, match=r"can't find = in \"b\"") as info:
        parser.parse("FROM x\nENV a=1 b\n")
    assert info.value.line == 2


def test_onbuild_nests_instruction() -> None:
    result = parser.parse("FROM x\nONBUILD COPY --from=a b c\n")
    node = result.children[1]
    assert node.value == "onbuild" and node.args == []
    assert node.next is not None and node.next.value == "copy"
    assert node.next.flags == ["--from=a"]
    assert parser.dump(node) == '(onbuild (copy ["--from=a"] "b" "c"))'


def test_onbuild_heredoc_attached_to_onbuild_node() -> None:
    result = parser.parse("FROM x\nONBUILD RUN <<EOF\necho hi\nEOF\nRUN done\n")
    assert result.children[1].heredocs[0].content == "echo hi\n"
    assert (result.children[1].start_line, result.children[1].end_line) == (2, 4)
    assert result.children[2].start_line == 5


def test_healthcheck_args() -> None:
    result = parser.parse("FROM x\nHEALTHCHECK --retries=2 CMD [\"a\"]\nHEALTHCHECK NONE\n")
    assert result.children[1].args == ["CMD", "a"] and result.children[1].json
    assert result.children[2].args == ["NONE"]


def test_flags_end_at_double_dash_and_quotes_are_removed() -> None:
    result = parser.parse('FROM x\nRUN --mount="type=cache,target=/a b" -- --not-a-flag\n')
    node = result.children[1]
    assert node.flags == ["--mount=type=cache,target=/a b"]
    assert node.args == ["--not-a-flag"]


def test_json_reads_only_the_first_value() -> None:
    node = parser.parse('FROM x\nCMD ["a"] trailing\n').children[1]
    assert node.json and node.args == ["a"]


def test_invalid_json_is_shell_form() -> None:
    node = parser.parse("FROM x\nCMD [NaN]\n").children[1]
    assert not node.json and node.args == ["[NaN]"]


def test_unknown_instruction_is_kept_unless_strict() -> None:
    result = parser.parse("FROM x\nFROB a b\n")
    assert result.children[1].value == "frob"
    assert parser.dump(result.children[1]) == '(frob "")'
    with pytest.raises(DockerfileError) as info:
        parser.parse("FROM x\nFROB a b\n", "ctx/Dockerfile", strict=True)
    assert str(info.value) == "ctx/Dockerfile:2: unknown instruction: FROB"


# --- lines, comments, continuations ------------------------------------


def test_continuation_with_comments_and_blank_lines() -> None:
    text = "FROM x\nRUN a \\\n  # a comment\n\n  b \\\n\n  c\nRUN d\n"
    result = parser.parse(text)
    run = result.children[1]
    assert run.args == ["a   b   c"]
    assert (run.start_line, run.end_line) == (2, 7)
    assert result.children[2].start_line == 8
    assert len(result.warnings) == 1
    assert result.warnings[0].line == 7
    assert result.warnings[0].message.startswith("Empty continuation line found in: RUN a")


def test_escaped_escape_does_not_continue() -> None:
    result = parser.parse("FROM x\nRUN echo a\\\\\nRUN b\n")
    assert [c.args for c in result.children[1:]] == [["echo a\\\\"], ["b"]]


def test_crlf_bom_and_bytes() -> None:
    result = parser.parse(b"\xef\xbb\xbfFROM x\r\nRUN a \\\r\n b\r\n")
    assert [parser.dump(c) for c in result.children] == ['(from "x")', '(run "a  b")']


def test_dump_quotes_like_go() -> None:
    node = parser.parse('FROM x\nRUN ["a\\u0007", "é", "\\u00a0", "\\ud83d\\ude00", "\\u0085"]\n').children[1]
    assert parser.dump(node) == '(run "a\\a" "é" "\\u00a0" "😀" "\\u0085")'


def test_invalid_utf8_is_kept_and_dumped_as_bytes() -> None:
    node = parser.parse(b"FROM x\nRUN echo \xff\n").children[1]
    assert parser.dump(node) == '(run "echo \\xff")'


# --- directives ---------------------------------------------------------


def test_directives_at_top() -> None:
    text = "# syntax=docker/dockerfile:1\n#  CHECK = skip=all\n# escape=`\nFROM x\nRUN a `\n b\n"
    result = parser.parse(text)
    assert result.directives == {"syntax": "docker/dockerfile:1", "check": "skip=all", "escape": "`"}
    assert result.escape == "`"
    assert result.children[1].args == ["a  b"]


def test_directive_after_comment_or_instruction_is_a_comment() -> None:
    assert parser.parse("# hello\n# escape=`\nFROM x\n").directives == {}
    assert parser.parse("FROM x\n# escape=`\n").escape == "\\"
    assert parser.parse("\n# syntax=a\nFROM x\n").directives == {}


def test_unknown_directive_ends_directives() -> None:
    result = parser.parse("# foo=bar\n# escape=`\nFROM x\n")
    assert result.directives == {} and result.escape == "\\"


def test_duplicate_directive() -> None:
    with pytest.raises(DockerfileError, match="only one escape parser directive can be used") as info:
        parser.parse("# escape=`\n# escape=\\\nFROM x\n")
    assert info.value.line == 2


def test_invalid_escape_token() -> None:
    with pytest.raises(DockerfileError, match="invalid escape token"):
        parser.parse("# escape=x\nFROM x\n")


def test_doc_comments_exclude_directives() -> None:
    result = parser.parse("# syntax=a\n# the base\nFROM x\n")
    assert result.children[0].comments == ["the base"]


# --- heredocs ---------------------------------------------------------------


def test_heredoc_lines_and_several_bodies() -> None:
    text = "FROM x\nCOPY <<A <<'B' /dst\none\nA\ntwo $x\nB\nRUN next\n"
    result = parser.parse(text)
    copy = result.children[1]
    assert [(d.name, d.content, d.expand) for d in copy.heredocs] == [("A", "one\n", True), ("B", "two $x\n", False)]
    assert (copy.start_line, copy.end_line) == (2, 6)
    assert result.children[2].start_line == 7


def test_heredoc_chomp_terminator_and_fd() -> None:
    result = parser.parse("FROM x\nRUN 3<<-EOF cat\n\tbody\n\t\tEOF\n")
    doc = result.children[1].heredocs[0]
    assert (doc.name, doc.content, doc.chomp, doc.file_descriptor) == ("EOF", "\tbody\n", True, 3)


def test_unterminated_heredoc() -> None:
    with pytest.raises(DockerfileError) as info:
        parser.parse("FROM x\n\nRUN <<EOF\nno end\n")
    assert info.value.message == "unterminated heredoc"
    assert info.value.line == 3


def test_heredoc_not_read_for_other_instructions() -> None:
    result = parser.parse("FROM x\nENV a=<<EOF\nRUN b\n")
    assert [c.value for c in result.children] == ["from", "env", "run"]


# --- errors -------------------------------------------------------------


def test_empty_file() -> None:
    with pytest.raises(DockerfileError) as info:
        parser.parse("")
    assert str(info.value) == "Dockerfile: file with no instructions"


def test_only_comments() -> None:
    with pytest.raises(DockerfileError) as info:
        parser.parse("# one\n\n   # two\n", "my.Dockerfile")
    assert info.value.message == "file with no instructions"
    assert info.value.filename == "my.Dockerfile"


def test_nested_json_is_an_error_with_line() -> None:
    with pytest.raises(DockerfileError) as info:
        parser.parse('FROM x\nCMD ["a", 1]\n')
    assert str(info.value) == (
        "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only"
    )
    assert isinstance(info.value, DockyardError)


def test_line_too_long() -> None:
    with pytest.raises(DockerfileError, match="max allowed size of 65535") as info:
        parser.parse("FROM x\nRUN " + "a" * 70000 + "\n")
    assert info.value.line == 2


def test_escape_keyword_argument() -> None:
    result = parser.parse("FROM x\nRUN a `\n b\n", escape="`")
    assert result.children[1].args == ["a  b"]

"""The ``# check=`` directive (skip, error, experimental), the skip
argument, the BUILDKIT_DOCKERFILE_CHECK-style override and exit codes."""

from __future__ import annotations

import pytest

from dockyard import lint
from dockyard.errors import DockerfileError

BAD = "FROM busybox:1.37 AS BASE_STAGE\nCMD echo hello\nUSER app\n"


def rules(text: str, **kw) -> set[str]:
    return {f.rule for f in lint.check(text, **kw)}


def test_without_directive_both_rules_fire():
    assert rules(BAD) == {"StageNameCasing", "JSONArgsRecommended"}


def test_skip_directive_drops_the_named_rules():
    text = "# syntax=docker/dockerfile:1\n# check=skip=JSONArgsRecommended,StageNameCasing\n\n" + BAD
    assert rules(text) == set()


def test_skip_names_are_case_sensitive_as_in_buildkit():
    assert rules("# check=skip=jsonargsrecommended\n" + BAD) == {"StageNameCasing", "JSONArgsRecommended"}


def test_skip_all():
    assert lint.check("# check=skip=all\n" + BAD) == []


def test_a_directive_after_a_comment_is_only_a_comment():
    assert rules("# my file\n# check=skip=all\n" + BAD) == {"StageNameCasing", "JSONArgsRecommended"}


def test_skip_argument_adds_to_the_directive():
    text = "# check=skip=StageNameCasing\n" + BAD
    assert rules(text, skip={"JSONArgsRecommended"}) == set()
    assert rules(BAD, skip=["StageNameCasing"]) == {"JSONArgsRecommended"}


def test_check_arg_overrides_like_the_build_argument():
    assert rules(BAD, check_arg="skip=StageNameCasing") == {"JSONArgsRecommended"}
    assert lint.config(BAD, check_arg="error=true").error


def test_error_directive_with_skip():
    text = "# check=skip=StageNameCasing;error=true\n" + BAD
    cfg = lint.config(text)
    assert cfg.error and cfg.skip == {"StageNameCasing"}
    findings = lint.check(text)
    assert [f.rule for f in findings] == ["JSONArgsRecommended"]
    assert lint.exit_code(findings, cfg.error) == 1
    assert lint.exit_code(findings, lint.config(BAD).error) == 0


@pytest.mark.parametrize("value", ["error=TRUE", "error=1", "error=yes"])
def test_error_accepts_boolean_spellings(value):
    assert lint.config(f"# check={value}\n" + BAD).error


def test_experimental_rules_are_opt_in():
    text = "# a comment that describes nothing\nFROM busybox:1.37 AS base\nUSER app\n"
    assert rules(text) == set()
    assert rules("# check=experimental=all\n\n" + text) == {"InvalidDefinitionDescription"}
    assert rules("# check=experimental=InvalidDefinitionDescription\n\n" + text) == \
        {"InvalidDefinitionDescription"}


@pytest.mark.parametrize("value,message", [
    ("error=maybe", "expected true or false"),
    ("skipp=all", "unknown check option 'skipp'"),
    ("skip", "expected key=value"),
])
def test_bad_directive_is_a_one_line_error(value, message):
    with pytest.raises(DockerfileError, match=message) as exc:
        lint.check(f"# check={value}\n" + BAD)
    assert str(exc.value).startswith("Dockerfile:1: ")
    assert "\n" not in str(exc.value)


def test_exit_codes():
    warning = lint.Finding("JSONArgsRecommended", "m", "Dockerfile", 2)
    error = lint.Finding("DuplicateStageName", "m", "Dockerfile", 3, severity="error")
    assert lint.exit_code([], error=True) == 0
    assert lint.exit_code([warning], error=False) == 0
    assert lint.exit_code([warning], error=True) == 1
    assert lint.exit_code([warning, error], error=False) == 1


def test_bytes_input_and_bom():
    text = ("\ufeff" + BAD).encode()
    found = lint.check(text)
    assert {(f.rule, f.line, f.column) for f in found} == {("StageNameCasing", 1, 22),
                                                           ("JSONArgsRecommended", 2, 1)}

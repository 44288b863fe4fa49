"""Text, JSON and SARIF output, and the `dockyard lint` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dockyard import lint
from dockyard.cli.lint_cmds import COMMANDS
from dockyard.cli.main import Group

TEXT = "FROM busybox:1.37 AS base\nCMD echo hi\nFROM base AS base\n"


@pytest.fixture
def findings():
    return lint.check(TEXT, filename="app/Dockerfile")


def test_text_format(findings):
    lines = lint.format_text(findings).splitlines()
    assert lines[0].startswith("app/Dockerfile:2:1: warning: use the JSON form for CMD")
    assert lines[0].endswith("[JSONArgsRecommended]")
    assert any(line.startswith("app/Dockerfile:3:14: error: ") and line.endswith("[DuplicateStageName]")
               for line in lines)
    assert lint.format_text([]) == ""


def test_json_format(findings):
    data = json.loads(lint.format_json(findings))
    assert [d["rule"] for d in data] == [f.rule for f in findings]
    first = data[0]
    assert set(first) == {"rule", "severity", "message", "filename", "line", "column", "end_line",
                          "end_column", "url"}
    assert (first["filename"], first["line"], first["column"]) == ("app/Dockerfile", 2, 1)
    assert first["url"] == "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
    assert json.loads(lint.format_json([])) == []


def test_sarif_format_structure(findings):
    doc = json.loads(lint.format_sarif(findings))
    assert doc["version"] == "2.1.0"
    assert "sarif" in doc["$schema"]
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "dockyard"
    ids = [r["id"] for r in driver["rules"]]
    assert set(ids) == set(lint.RULES)
    for r in driver["rules"]:
        assert r["shortDescription"]["text"]
        assert r["defaultConfiguration"]["level"] in ("warning", "error", "note")
    assert len(run["results"]) == len(findings)
    for result, f in zip(run["results"], findings):
        assert result["ruleId"] == f.rule
        assert ids[result["ruleIndex"]] == f.rule
        assert result["level"] == f.severity
        assert result["message"]["text"] == f.message
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"] == "app/Dockerfile"
        region = loc["region"]
        assert (region["startLine"], region["startColumn"]) == (f.line, f.column)
        assert region["endLine"] >= region["startLine"]
        assert region["endColumn"] >= 1
    dup = next(r for r in run["results"] if r["ruleId"] == "DuplicateStageName")
    assert dup["level"] == "error"
    assert dup["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 3, "startColumn": 14, "endLine": 3, "endColumn": 18}


def test_sarif_with_no_findings_still_lists_rules():
    doc = json.loads(lint.format_sarif([]))
    assert doc["runs"][0]["results"] == []
    assert doc["runs"][0]["tool"]["driver"]["rules"]


# ---- the command ---------------------------------------------------------------


@pytest.fixture
def run_cli(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKYARD_ROOT", str(tmp_path / "no-store"))
    group = Group(commands={c.name: c for c in COMMANDS})
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(group, list(args), input=input, obj={})

    return invoke


CLEAN = "FROM busybox:1.37\nUSER 65534\nCMD [\"true\"]\n"


def test_cli_clean_file_exits_zero(run_cli, tmp_path: Path):
    (tmp_path / "Dockerfile").write_text(CLEAN)
    result = run_cli("lint", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert not (tmp_path / "no-store").exists()  # lint never creates a store


def test_cli_findings_fail_unless_exit_zero(run_cli, tmp_path: Path):
    path = tmp_path / "Dockerfile"
    path.write_text("FROM busybox:1.37\nUSER 65534\nCMD echo hi\n")
    result = run_cli("lint", "-f", str(path), str(tmp_path))
    assert result.exit_code == 1
    assert f"{path}:3:1: warning:" in result.output
    assert "1 problem (0 errors, 1 warning)" in result.output
    assert run_cli("lint", "--exit-zero", str(tmp_path)).exit_code == 0
    path.write_text("# check=error=true\n" + path.read_text())
    assert run_cli("lint", "--exit-zero", str(tmp_path)).exit_code == 1


def test_cli_errors_fail_even_with_exit_zero(run_cli, tmp_path: Path):
    (tmp_path / "Dockerfile").write_text("FROM busybox:1.37 AS a\nFROM busybox:1.37 AS a\nUSER 1\n")
    assert run_cli("lint", "--exit-zero", str(tmp_path)).exit_code == 1


def test_cli_formats_output_file_stdin_and_skip(run_cli, tmp_path: Path):
    text = "FROM busybox:1.37\nCMD echo hi\n"
    result = run_cli("lint", "-f", "-", "--format", "json", str(tmp_path), input=text)
    assert {d["rule"] for d in json.loads(result.output)} == {"JSONArgsRecommended", "RootUser"}
    out = tmp_path / "report.sarif"
    result = run_cli("lint", "-f", "-", "--format", "sarif", "-o", str(out), str(tmp_path), input=text)
    assert result.exit_code == 1 and result.output == ""
    assert json.loads(out.read_text())["version"] == "2.1.0"
    result = run_cli("lint", "-f", "-", "--skip", "RootUser,JSONArgsRecommended", str(tmp_path), input=text)
    assert result.exit_code == 0, result.output


def test_cli_usage_and_parse_errors(run_cli, tmp_path: Path):
    (tmp_path / "Dockerfile").write_text(CLEAN)
    result = run_cli("lint", "--skip", "NoSuchRule", str(tmp_path))
    assert result.exit_code == 2 and "unknown rule NoSuchRule" in result.output
    (tmp_path / "Dockerfile").write_text("FROM busybox:1.37\nFORM x\n")
    result = run_cli("lint", str(tmp_path))
    assert result.exit_code == 1
    assert "dockyard: error:" in result.output and "unknown instruction: FORM" in result.output
    result = run_cli("lint", str(tmp_path / "missing"))
    assert result.exit_code == 1 and "cannot read Dockerfile" in result.output


def test_cli_list_rules(run_cli):
    result = run_cli("lint", "--list-rules")
    assert result.exit_code == 0
    assert "JSONArgsRecommended" in result.output and "RootUser" in result.output

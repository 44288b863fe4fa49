"""Every template lints clean and follows the practices it promises; files
are never overwritten without --force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dockyard import init, lint
from dockyard.cli.lint_cmds import COMMANDS
from dockyard.cli.main import Group
from dockyard.dockerfile.instructions import RunCommand, parse_dockerfile
from dockyard.dockerfile.parser import parse
from dockyard.init import InitOptions, ProjectKind

PROJECTS = {
    "python-requirements-web": {"requirements.txt": "flask==3.0.0\n", "app.py": "print('hi')\n"},
    "python-pyproject": {"pyproject.toml": '[project]\nname = "tool"\nversion = "1.0"\n'
                                           'description = "A \\"quoted\\" $HOME tool"\n'},
    "node-web": {"package.json": json.dumps({"name": "web", "main": "server.js",
                                             "dependencies": {"express": "4"}})},
    "node-build": {"package.json": json.dumps({"name": "spa", "scripts": {"build": "vite build"}}),
                   "package-lock.json": "{}"},
    "go-web": {"go.mod": "module example.com/svc\n\ngo 1.22\n", "main.go": 'package main\nimport "net/http"\n'},
    "go-cli": {"go.mod": "module example.com/cli\n", "cmd/cli/main.go": "package main\n"},
    "static-root": {"index.html": "<h1>hi</h1>"},
    "static-public": {"public/index.html": "<h1>hi</h1>", "README.md": "x"},
    "plain": {"README.md": "just files"},
    "plain-script": {"start.sh": "#!/bin/sh\necho hi\n"},
}


def make(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture(params=sorted(PROJECTS))
def project(request, tmp_path) -> Path:
    return make(tmp_path / request.param, PROJECTS[request.param])


def test_template_lints_clean_even_with_experimental_checks(project):
    files = init.render(init.detect(project), project)
    assert set(files) == {"Dockerfile", ".dockerignore"}
    findings = lint.check(files["Dockerfile"], context_dir=project,
                          check_arg="experimental=all")
    assert findings == [], lint.format_text(findings)
    # and after writing, with the .dockerignore in place
    init.write(project)
    assert lint.check((project / "Dockerfile").read_text(), context_dir=project) == []


def test_template_follows_the_practices(project):
    kind = init.detect(project)
    text = init.render(kind, project)["Dockerfile"]
    result = parse(text)
    df = parse_dockerfile(result)
    assert result.directives.get("syntax") == "docker/dockerfile:1"
    assert len(df.stages) >= 2 and all(s.name for s in df.stages)  # multi-stage, named
    assert df.meta_args and all(default for a in df.meta_args for _, default in a.args)  # pinned bases
    final = df.stages[-1]
    keywords = [type(c).__name__ for c in final.commands]
    assert "UserCommand" in keywords
    labels = {k for c in final.commands if type(c).__name__ == "LabelCommand" for k, _ in c.pairs}
    assert "org.opencontainers.image.title" in labels
    web = kind is ProjectKind.STATIC or project.name.endswith("-web")
    assert ("ExposeCommand" in keywords) == web
    healthcheck = "HealthcheckCommand" in keywords
    assert healthcheck == (web and kind is not ProjectKind.GO)  # distroless has nothing to probe with
    runs = [c for s in df.stages for c in s.commands if isinstance(c, RunCommand)]
    installs = [r for r in runs if any(w in r.cmd[0] for w in ("pip install", "npm ci", "go "))]
    assert all(any(m.startswith("type=cache") for m in r.mounts) for r in installs)
    if kind in (ProjectKind.PYTHON, ProjectKind.NODE, ProjectKind.GO):
        assert installs


def test_labels_are_escaped(tmp_path):
    project = make(tmp_path / "p", PROJECTS["python-pyproject"])
    text = init.render(ProjectKind.PYTHON, project)["Dockerfile"]
    assert 'org.opencontainers.image.description="A \\"quoted\\" \\$HOME tool"' in text
    df = parse_dockerfile(parse(text))
    label = next(c for c in df.stages[-1].commands if type(c).__name__ == "LabelCommand")
    from dockyard.dockerfile.shell import expand

    values = {k: expand(v, {"HOME": "/root"}) for k, v in label.pairs}
    assert values["org.opencontainers.image.description"] == 'A "quoted" $HOME tool'
    assert values["org.opencontainers.image.version"] == "1.0"


def test_base_port_and_name_options(tmp_path):
    project = make(tmp_path / "p", PROJECTS["python-requirements-web"])
    opts = InitOptions(base="registry.example.com/python:3.13-slim", port=9000, name="svc")
    text = init.render("python", project, opts)["Dockerfile"]
    assert "ARG BASE_IMAGE=registry.example.com/python:3.13-slim\n" in text
    assert "EXPOSE 9000\n" in text and "http://127.0.0.1:9000/" in text
    assert 'org.opencontainers.image.title="svc"' in text
    assert lint.check(text) == []
    default = init.render("python", project)["Dockerfile"]
    assert "ARG BASE_IMAGE=python:3.12-slim-bookworm\n" in default


def test_go_builder_option(tmp_path):
    project = make(tmp_path / "p", PROJECTS["go-cli"])
    text = init.render("go", project, InitOptions(builder="golang:1.24-alpine"))["Dockerfile"]
    assert "ARG GO_IMAGE=golang:1.24-alpine\n" in text
    assert "-o /out/app ./cmd/cli\n" in text


def test_dockerignore_keeps_secrets_out(project):
    ignore = init.render(init.detect(project), project)[".dockerignore"]
    for pattern in (".git", ".env"):
        assert pattern in ignore.splitlines()


def test_write_never_overwrites_without_force(tmp_path):
    project = make(tmp_path / "p", PROJECTS["static-root"])
    (project / "Dockerfile").write_text("FROM mine\n")
    with pytest.raises(Exception, match="Dockerfile already exists .*--force"):
        init.write(project)
    assert (project / "Dockerfile").read_text() == "FROM mine\n"
    assert not (project / ".dockerignore").exists()  # nothing half-written
    paths = init.write(project, force=True)
    assert [p.name for p in paths] == ["Dockerfile", ".dockerignore"]
    assert "httpd" in (project / "Dockerfile").read_text()


def test_write_existing_dockerignore_also_blocks(tmp_path):
    project = make(tmp_path / "p", {".dockerignore": "x\n"})
    with pytest.raises(Exception, match=".dockerignore already exists"):
        init.write(project)
    assert not (project / "Dockerfile").exists()


def test_write_asks_when_not_yes(tmp_path):
    project = make(tmp_path / "p", PROJECTS["plain"])
    asked = []

    def ask(question, default):
        asked.append((question.split()[0], default))
        return {"Project": "static", "Base": "busybox:1.36.1", "Port": "8081"}[question.split()[0]]

    init.write(project, yes=False, ask=ask)
    text = (project / "Dockerfile").read_text()
    assert asked[0] == ("Project", "plain")
    assert "ARG BASE_IMAGE=busybox:1.36.1\n" in text and "EXPOSE 8081\n" in text
    # with yes=True nothing is asked
    init.write(project, yes=True, force=True, ask=lambda q, d: pytest.fail("asked"))


def test_cli_init(tmp_path):
    project = make(tmp_path / "p", PROJECTS["node-web"])
    group = Group(commands={c.name: c for c in COMMANDS})
    runner = CliRunner()
    result = runner.invoke(group, ["init", str(project), "--yes"], obj={})
    assert result.exit_code == 0, result.output
    assert "detected a node project" in result.output
    assert (project / "Dockerfile").is_file() and (project / ".dockerignore").is_file()
    again = runner.invoke(group, ["init", str(project), "--yes"], obj={})
    assert again.exit_code == 1 and "use --force" in again.output
    forced = runner.invoke(group, ["init", str(project), "-y", "--force", "--kind", "plain"], obj={})
    assert forced.exit_code == 0 and "debian:bookworm-slim" in (project / "Dockerfile").read_text()
    lint_result = runner.invoke(group, ["lint", str(project)], obj={})
    assert lint_result.exit_code == 0, lint_result.output

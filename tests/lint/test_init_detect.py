"""Project detection and the facts `dockyard init` reads from a project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard import init
from dockyard.init import ProjectKind


def make(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize("files,kind", [
    ({"pyproject.toml": "[project]\nname='x'\n"}, ProjectKind.PYTHON),
    ({"requirements.txt": "flask\n"}, ProjectKind.PYTHON),
    ({"package.json": "{}"}, ProjectKind.NODE),
    ({"go.mod": "module example.com/x\n"}, ProjectKind.GO),
    ({"index.html": "<h1>hi</h1>"}, ProjectKind.STATIC),
    ({"public/index.html": "<h1>hi</h1>"}, ProjectKind.STATIC),
    ({"README.md": "hello"}, ProjectKind.PLAIN),
    ({}, ProjectKind.PLAIN),
    # a manifest wins over loose HTML
    ({"package.json": "{}", "public/index.html": "x"}, ProjectKind.NODE),
    ({"requirements.txt": "", "package.json": "{}"}, ProjectKind.PYTHON),
])
def test_detect(tmp_path, files, kind):
    assert init.detect(make(tmp_path, files)) is kind


def test_python_facts_from_pyproject(tmp_path):
    make(tmp_path, {"pyproject.toml": """
[project]
name = "Hello_World"
version = "2.0.1"
description = "Says hello"
license = "Apache-2.0"
authors = [{name = "Ada"}, {email = "x@example.com"}]
dependencies = ["FastAPI>=0.100", "uvicorn[standard]"]
[project.urls]
Source = "https://example.com/hello"
[project.scripts]
hello = "hello:main"
""", ".python-version": "3.11.4\n"})
    info = init.inspect_project(tmp_path)
    assert (info.name, info.version, info.description) == ("hello_world", "2.0.1", "Says hello")
    assert (info.licenses, info.authors, info.source) == ("Apache-2.0", "Ada", "https://example.com/hello")
    assert info.web and info.command == ["hello"] and info.runtime_version == "3.11"
    assert info.python_install == "project"


@pytest.mark.parametrize("files,command", [
    ({"requirements.txt": "", "main.py": ""}, ["python", "main.py"]),
    ({"requirements.txt": "", "mypkg/__main__.py": ""}, ["python", "-m", "mypkg"]),
])
def test_python_entry_point(tmp_path, files, command):
    info = init.inspect_project(make(tmp_path, files))
    assert info.command == command and not info.web and info.python_install == "requirements"


def test_node_facts(tmp_path):
    make(tmp_path, {"package.json": json.dumps({
        "name": "@acme/shop", "version": "1.0.0", "author": {"name": "Bo"},
        "repository": {"url": "git+https://github.com/acme/shop.git"},
        "scripts": {"start": "node dist/server.js", "build": "tsc"},
        "dependencies": {"express": "^4"}, "engines": {"node": ">=20"}})})
    info = init.inspect_project(tmp_path)
    assert (info.name, info.authors, info.source) == ("shop", "Bo", "https://github.com/acme/shop")
    assert info.command == ["node", "dist/server.js"] and info.web and info.node_build
    assert info.runtime_version == "20"


def test_go_facts(tmp_path):
    make(tmp_path, {"go.mod": "module github.com/acme/tool\n\ngo 1.22.3\n",
                    "cmd/tool/main.go": 'package main\n\nimport "net/http"\n',
                    "internal/x/x.go": "package x\n"})
    info = init.inspect_project(tmp_path)
    assert (info.name, info.runtime_version, info.go_package) == ("tool", "1.22", "./cmd/tool")
    assert info.web


def test_git_origin_becomes_source_without_credentials(tmp_path):
    make(tmp_path, {"index.html": "x", ".git/config":
                    '[core]\n\tbare = false\n[remote "origin"]\n\turl = https://me:tok3n@github.com/a/b.git\n'})
    assert init.inspect_project(tmp_path).source == "https://github.com/a/b"
    (tmp_path / ".git/config").write_text('[remote "origin"]\n\turl = git@github.com:a/b.git\n')
    assert init.inspect_project(tmp_path).source == "https://github.com/a/b"


def test_plain_start_script(tmp_path):
    make(tmp_path, {"start.sh": "#!/bin/sh\n"})
    assert init.inspect_project(tmp_path).command == ["./start.sh"]
    assert init.inspect_project(tmp_path / "..", ProjectKind.PLAIN).command  # any dir works


def test_broken_manifests_do_not_crash(tmp_path):
    make(tmp_path, {"pyproject.toml": "not [toml", "package.json": "[1, 2"})
    assert init.inspect_project(tmp_path).kind is ProjectKind.PYTHON
    assert init.inspect_project(tmp_path, ProjectKind.NODE).command == ["node", "index.js"]

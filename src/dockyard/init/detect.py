"""Project detection for ``dockyard init``: what kind of project a directory
holds, and the few facts a Dockerfile needs (name, version, entry point,
whether it serves HTTP). Only files are read; nothing is run.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

__all__ = ["ProjectInfo", "ProjectKind", "detect", "inspect_project"]


class ProjectKind(str, Enum):
    PYTHON = "python"
    NODE = "node"
    GO = "go"
    STATIC = "static"
    PLAIN = "plain"

    def __str__(self) -> str:
        return self.value


# dependencies that mean "this serves HTTP", so EXPOSE and HEALTHCHECK fit
_PY_WEB = {"flask", "django", "fastapi", "uvicorn", "gunicorn", "starlette", "aiohttp", "tornado",
           "sanic", "bottle", "falcon", "quart", "litestar", "hypercorn", "waitress"}
_NODE_WEB = {"express", "fastify", "koa", "@hapi/hapi", "hapi", "@nestjs/core", "next", "nuxt",
             "restify", "polka", "hono"}
_PY_ENTRIES = ("app.py", "main.py", "server.py", "run.py", "wsgi.py", "__main__.py")
_SITE_DIRS = (".", "public", "site", "www", "_site", "dist", "build")
_START_SCRIPTS = ("start.sh", "run.sh", "entrypoint.sh", "docker-entrypoint.sh")


@dataclass
class ProjectInfo:
    """Facts for the templates; fields that do not apply stay at their defaults."""

    kind: ProjectKind
    name: str
    version: str = ""
    description: str = ""
    licenses: str = ""
    authors: str = ""
    source: str = ""
    web: bool = False
    command: list[str] = field(default_factory=list)
    runtime_version: str = ""  # python 3.12, node 22, go 1.23: from the project, if it says
    python_install: str = ""  # "requirements" or "project"
    node_build: bool = False
    go_package: str = "."
    site_dir: str = "."


def detect(directory: str | Path) -> ProjectKind:
    """The kind of project in ``directory``; manifests win over loose files."""
    d = Path(directory)
    if (d / "pyproject.toml").is_file() or (d / "requirements.txt").is_file():
        return ProjectKind.PYTHON
    if (d / "package.json").is_file():
        return ProjectKind.NODE
    if (d / "go.mod").is_file():
        return ProjectKind.GO
    if _site_dir(d) is not None:
        return ProjectKind.STATIC
    return ProjectKind.PLAIN


def _site_dir(d: Path) -> str | None:
    for sub in _SITE_DIRS:
        if (d / sub / "index.html").is_file():
            return sub
    return None


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")
    return slug or "app"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def git_source(d: Path) -> str:
    """The origin remote of a checkout as a browsable https URL, without credentials."""
    text = _read(d / ".git" / "config")
    m = re.search(r'\[remote "origin"\][^\[]*?\burl\s*=\s*(\S+)', text)
    if not m:
        return ""
    url = m.group(1)
    scp = re.match(r"(?:ssh://)?git@([^:/]+)[:/](.+)", url)
    if scp:
        url = f"https://{scp.group(1)}/{scp.group(2)}"
    url = re.sub(r"^(https?://)[^/@]*@", r"\1", url)  # never carry a token into a label
    return url.removesuffix(".git") if url.startswith("http") else ""


def inspect_project(directory: str | Path, kind: ProjectKind | None = None) -> ProjectInfo:
    d = Path(directory).resolve()
    kind = ProjectKind(kind) if kind else detect(d)
    info = ProjectInfo(kind=kind, name=_slug(d.name), source=git_source(d))
    {ProjectKind.PYTHON: _python, ProjectKind.NODE: _node, ProjectKind.GO: _go,
     ProjectKind.STATIC: _static, ProjectKind.PLAIN: _plain}[kind](d, info)
    return info


def _requirement_names(lines: list[str]) -> set[str]:
    names = set()
    for line in lines:
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if m and not line.lstrip().startswith(("#", "-")):
            names.add(m.group(1).lower().replace("_", "-"))
    return names


def _python(d: Path, info: ProjectInfo) -> None:
    deps: set[str] = set()
    scripts: dict = {}
    if (d / "pyproject.toml").is_file():
        try:
            project = tomllib.loads(_read(d / "pyproject.toml")).get("project", {})
        except tomllib.TOMLDecodeError:
            project = {}
        info.name = _slug(str(project.get("name") or info.name))
        info.version = str(project.get("version") or "")
        info.description = str(project.get("description") or "")
        lic = project.get("license")
        info.licenses = lic if isinstance(lic, str) else ""
        info.authors = ", ".join(a["name"] for a in project.get("authors", []) if isinstance(a, dict)
                                 and a.get("name"))
        urls = project.get("urls") or {}
        info.source = next((str(urls[k]) for k in urls if k.lower() in ("source", "repository")),
                           info.source)
        deps |= _requirement_names([str(x) for x in project.get("dependencies", [])])
        scripts = project.get("scripts") or {}
        info.python_install = "project"
    if (d / "requirements.txt").is_file():
        deps |= _requirement_names(_read(d / "requirements.txt").splitlines())
        info.python_install = "requirements"  # pinned requirements are the better cache key
    info.web = bool(deps & _PY_WEB)
    m = re.match(r"\s*(?:python-?)?(3\.\d+)", _read(d / ".python-version"))
    info.runtime_version = m.group(1) if m else ""
    if scripts:
        info.command = [next(iter(scripts))]
    elif entry := next((e for e in _PY_ENTRIES if (d / e).is_file()), None):
        info.command = ["python", entry]
    elif pkg := next((p.parent.name for p in sorted(d.glob("*/__main__.py"))), None):
        info.command = ["python", "-m", pkg]
    else:
        info.command = ["python", "-m", info.name.replace("-", "_")]


def _node(d: Path, info: ProjectInfo) -> None:
    try:
        pkg = json.loads(_read(d / "package.json") or "{}")
    except json.JSONDecodeError:
        pkg = {}
    if not isinstance(pkg, dict):
        pkg = {}
    info.name = _slug(str(pkg.get("name") or info.name).split("/")[-1])
    info.version = str(pkg.get("version") or "")
    info.description = str(pkg.get("description") or "")
    info.licenses = pkg.get("license") if isinstance(pkg.get("license"), str) else ""
    author = pkg.get("author")
    info.authors = author if isinstance(author, str) else \
        str(author.get("name", "")) if isinstance(author, dict) else ""
    repo = pkg.get("repository")
    repo = repo.get("url", "") if isinstance(repo, dict) else repo or ""
    repo = re.sub(r"^git\+", "", repo) if isinstance(repo, str) else ""
    if repo.startswith("http"):
        info.source = re.sub(r"^(https?://)[^/@]*@", r"\1", repo).removesuffix(".git")
    scripts = pkg.get("scripts") or {}
    deps = set(pkg.get("dependencies") or {})
    info.web = bool(deps & _NODE_WEB)
    info.node_build = "build" in scripts
    engines = (pkg.get("engines") or {}).get("node", "") if isinstance(pkg.get("engines"), dict) else ""
    m = re.search(r"\d+", _read(d / ".nvmrc") or str(engines))
    info.runtime_version = m.group() if m else ""
    start = scripts.get("start", "")
    m = re.fullmatch(r"\s*node\s+([\w./-]+)\s*", start) if isinstance(start, str) else None
    if m:
        info.command = ["node", m.group(1)]
    elif isinstance(pkg.get("main"), str):
        info.command = ["node", pkg["main"]]
    elif start:
        info.command = ["npm", "start"]
    else:
        info.command = ["node", "index.js"]


def _go(d: Path, info: ProjectInfo) -> None:
    text = _read(d / "go.mod")
    m = re.search(r"^module\s+(\S+)", text, re.MULTILINE)
    if m:
        info.name = _slug(m.group(1).rstrip("/").split("/")[-1])
    m = re.search(r"^go\s+(\d+\.\d+)", text, re.MULTILINE)
    info.runtime_version = m.group(1) if m else ""
    sources = sorted(p for p in d.rglob("*.go") if "vendor" not in p.parts and not p.name.endswith("_test.go"))
    info.web = any('"net/http"' in _read(p) for p in sources[:200])
    mains = [p for p in sources if re.search(r"^package\s+main\b", _read(p), re.MULTILINE)]
    if mains and not any(p.parent == d for p in mains):
        info.go_package = "./" + mains[0].parent.relative_to(d).as_posix()
    info.command = ["/app"]


def _static(d: Path, info: ProjectInfo) -> None:
    info.site_dir = _site_dir(d) or "."
    info.web = True


def _plain(d: Path, info: ProjectInfo) -> None:
    script = next((s for s in _START_SCRIPTS if (d / s).is_file()), None)
    info.command = [f"./{script}"] if script else ["sh"]

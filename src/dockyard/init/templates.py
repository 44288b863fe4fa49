"""Dockerfile and .dockerignore templates for ``dockyard init``.

Every template: a pinned base named by an ARG (``--base`` changes it),
a build stage and a runtime stage, cache mounts for the package manager,
OCI labels, a non-root numeric or image-provided USER, exec-form CMD, and
EXPOSE plus HEALTHCHECK when the project serves HTTP. Each one must pass
``dockyard lint`` with no findings (the tests hold us to that).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .detect import ProjectInfo, ProjectKind

__all__ = ["DEFAULT_BASES", "InitOptions", "render_files"]

# Defaults are version-pinned tags; pin a digest (image@sha256:...) for full reproducibility.
DEFAULT_BASES = {
    ProjectKind.PYTHON: "python:{v}-slim-bookworm",
    ProjectKind.NODE: "node:{v}-bookworm-slim",
    ProjectKind.GO: "gcr.io/distroless/static-debian12:nonroot",
    ProjectKind.STATIC: "busybox:1.37.0",
    ProjectKind.PLAIN: "debian:bookworm-slim",
}
_DEFAULT_VERSIONS = {ProjectKind.PYTHON: "3.12", ProjectKind.NODE: "22", ProjectKind.GO: "1.23"}
_DEFAULT_PORTS = {ProjectKind.PYTHON: 8000, ProjectKind.NODE: 3000, ProjectKind.GO: 8080,
                  ProjectKind.STATIC: 8080}
_HEADER = "# syntax=docker/dockerfile:1\n\n"
_UNPRIVILEGED = "65534:65534"  # nobody: exists in every Debian and busybox image


@dataclass
class InitOptions:
    """``base``: the image that ships; ``builder``: the toolchain image (Go);
    ``port``: forces EXPOSE/HEALTHCHECK on that port; ``name``: the image title."""

    base: str | None = None
    builder: str | None = None
    port: int | None = None
    name: str | None = None


def default_base(info: ProjectInfo) -> str:
    version = info.runtime_version or _DEFAULT_VERSIONS.get(info.kind, "")
    return DEFAULT_BASES[info.kind].format(v=version)


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return '"' + " ".join(escaped.split()) + '"'


def _labels(info: ProjectInfo, opts: InitOptions) -> str:
    pairs = [("title", opts.name or info.name), ("description", info.description),
             ("version", info.version), ("licenses", info.licenses), ("authors", info.authors),
             ("source", info.source)]
    lines = [f"org.opencontainers.image.{k}={_quote(v)}" for k, v in pairs if v]
    return "LABEL " + " \\\n      ".join(lines) + "\n"


def _exec(argv: list[str]) -> str:
    return json.dumps(argv)


def _http(info: ProjectInfo, opts: InitOptions) -> int | None:
    if opts.port:
        return opts.port
    return _DEFAULT_PORTS.get(info.kind) if info.web else None


def _healthcheck(probe: list[str]) -> str:
    return ("HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \\\n"
            f"    CMD {_exec(probe)}\n")


def _python(info: ProjectInfo, opts: InitOptions, base: str) -> str:
    pip = "RUN --mount=type=cache,target=/root/.cache/pip \\\n    "
    if info.python_install == "requirements":
        deps = f"COPY requirements.txt ./\n{pip}pip install -r requirements.txt\nCOPY . .\n"
    else:
        deps = f"COPY . .\n{pip}pip install .\n"
    port = _http(info, opts)
    web = ""
    if port:
        probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=4)"
        web = f"EXPOSE {port}\n" + _healthcheck(["python", "-c", probe])
    return (
        _HEADER
        + "# BASE_IMAGE is the Python image both stages start from\n"
        f"ARG BASE_IMAGE={base}\n\n"
        "# build installs the dependencies into a virtual environment\n"
        "FROM ${BASE_IMAGE} AS build\n"
        "WORKDIR /app\n"
        "RUN python -m venv /opt/venv\n"
        "ENV PATH=/opt/venv/bin:$PATH\n"
        + deps + "\n"
        "# runtime ships the environment and the sources, without build leftovers\n"
        "FROM ${BASE_IMAGE} AS runtime\n"
        + _labels(info, opts)
        + "ENV PATH=/opt/venv/bin:$PATH \\\n"
        "    PYTHONDONTWRITEBYTECODE=1 \\\n"
        "    PYTHONUNBUFFERED=1\n"
        "WORKDIR /app\n"
        "COPY --from=build /opt/venv /opt/venv\n"
        "COPY --from=build /app /app\n"
        f"USER {_UNPRIVILEGED}\n"
        + web
        + f"CMD {_exec(info.command)}\n"
    )


def _node(info: ProjectInfo, opts: InitOptions, base: str) -> str:
    npm = "RUN --mount=type=cache,target=/root/.npm \\\n    "
    if info.node_build:
        stages = (
            "# build installs every dependency, builds, then drops the development ones\n"
            "FROM ${BASE_IMAGE} AS build\n"
            "WORKDIR /app\n"
            "COPY package*.json ./\n"
            f"{npm}npm ci\n"
            "COPY . .\n"
            "RUN npm run build && npm prune --omit=dev\n\n"
        )
        app = "COPY --from=build /app /app\n"
    else:
        stages = (
            "# deps installs the production dependencies only\n"
            "FROM ${BASE_IMAGE} AS deps\n"
            "WORKDIR /app\n"
            "COPY package*.json ./\n"
            f"{npm}npm ci --omit=dev\n\n"
        )
        app = "COPY --from=deps /app/node_modules ./node_modules\nCOPY . .\n"
    port = _http(info, opts)
    web = ""
    if port:
        probe = (f"fetch('http://127.0.0.1:{port}/').then((r) => process.exit(r.ok ? 0 : 1), "
                 "() => process.exit(1))")
        web = f"EXPOSE {port}\n" + _healthcheck(["node", "-e", probe])
    return (
        _HEADER
        + "# BASE_IMAGE is the Node.js image every stage starts from\n"
        f"ARG BASE_IMAGE={base}\n\n"
        + stages
        + "# runtime ships the application with its production dependencies\n"
        "FROM ${BASE_IMAGE} AS runtime\n"
        + _labels(info, opts)
        + "ENV NODE_ENV=production\n"
        "WORKDIR /app\n"
        + app
        + "USER node\n"  # the unprivileged user of the official node images
        + web
        + f"CMD {_exec(info.command)}\n"
    )


def _go(info: ProjectInfo, opts: InitOptions, base: str) -> str:
    builder = opts.builder or f"golang:{info.runtime_version or _DEFAULT_VERSIONS[ProjectKind.GO]}-bookworm"
    mod = "--mount=type=cache,target=/go/pkg/mod"
    port = _http(info, opts)
    # distroless images have no shell or HTTP client to probe with: EXPOSE only
    web = f"EXPOSE {port}\n" if port else ""
    return (
        _HEADER
        + "# GO_IMAGE is the toolchain that compiles the program\n"
        f"ARG GO_IMAGE={builder}\n"
        "# BASE_IMAGE is the minimal image that ships\n"
        f"ARG BASE_IMAGE={base}\n\n"
        "# build compiles a static binary\n"
        "FROM ${GO_IMAGE} AS build\n"
        "WORKDIR /src\n"
        "COPY go.* ./\n"
        f"RUN {mod} \\\n    go mod download\n"
        "COPY . .\n"
        f"RUN {mod} \\\n    --mount=type=cache,target=/root/.cache/go-build \\\n"
        f"    CGO_ENABLED=0 go build -trimpath -ldflags=\"-s -w\" -o /out/app {info.go_package}\n\n"
        "# runtime ships the binary alone\n"
        "FROM ${BASE_IMAGE} AS runtime\n"
        + _labels(info, opts)
        + "COPY --from=build /out/app /app\n"
        "USER 65532:65532\n"  # distroless "nonroot"
        + web
        + f"ENTRYPOINT {_exec(info.command)}\n"
    )


def _files_stage(description: str, source: str, dest: str) -> str:
    return (
        f"# files {description}\n"
        "FROM ${BASE_IMAGE} AS files\n"
        f"COPY {source} {dest}\n"
        f"RUN chmod -R a+rX,go-w {dest}\n\n"
    )


def _static(info: ProjectInfo, opts: InitOptions, base: str) -> str:
    port = _http(info, opts) or 8080
    source = "." if info.site_dir == "." else info.site_dir + "/"
    return (
        _HEADER
        + "# BASE_IMAGE is the image that serves the site with busybox httpd\n"
        f"ARG BASE_IMAGE={base}\n\n"
        + _files_stage("collects the site, readable by everyone and writable by no one", source, "/site/")
        + "# runtime serves the site as an unprivileged user\n"
        "FROM ${BASE_IMAGE} AS runtime\n"
        + _labels(info, opts)
        + "COPY --from=files /site /srv/www\n"
        f"USER {_UNPRIVILEGED}\n"
        f"EXPOSE {port}\n"
        + _healthcheck(["wget", "-q", "--spider", f"http://127.0.0.1:{port}/"])
        + f"CMD {_exec(['httpd', '-f', '-v', '-p', str(port), '-h', '/srv/www'])}\n"
    )


def _plain(info: ProjectInfo, opts: InitOptions, base: str) -> str:
    port = _http(info, opts)
    return (
        _HEADER
        + "# BASE_IMAGE is the image the files ship in\n"
        f"ARG BASE_IMAGE={base}\n\n"
        + _files_stage("collects the project, readable by everyone and writable by no one", ".", "/app/")
        + "# runtime ships the files and runs as an unprivileged user\n"
        "FROM ${BASE_IMAGE} AS runtime\n"
        + _labels(info, opts)
        + "WORKDIR /app\n"
        "COPY --from=files /app /app\n"
        f"USER {_UNPRIVILEGED}\n"
        + (f"EXPOSE {port}\n" if port else "")
        + f"CMD {_exec(info.command)}\n"
    )


_COMMON_IGNORE = """\
# Keep the build context small, and secrets and local state out of the image.
.git
.dockerignore
Dockerfile
**/.DS_Store
.env
.env.*
*.log
.idea
.vscode
"""
_IGNORES = {
    ProjectKind.PYTHON: "**/__pycache__\n**/*.py[cod]\n.venv\nvenv\n*.egg-info\n.pytest_cache\n"
                        ".mypy_cache\n.ruff_cache\n.tox\n.nox\n.coverage\nhtmlcov\nbuild\ndist\n",
    ProjectKind.NODE: "node_modules\nnpm-debug.log*\ncoverage\n.next/cache\n",
    ProjectKind.GO: "*.test\ncoverage.out\nbin\n",
    ProjectKind.STATIC: "node_modules\n",
    ProjectKind.PLAIN: "",
}

_RENDER = {ProjectKind.PYTHON: _python, ProjectKind.NODE: _node, ProjectKind.GO: _go,
           ProjectKind.STATIC: _static, ProjectKind.PLAIN: _plain}


def render_files(info: ProjectInfo, opts: InitOptions) -> dict[str, str]:
    base = opts.base or default_base(info)
    dockerfile = _RENDER[info.kind](info, opts, base)
    return {"Dockerfile": dockerfile, ".dockerignore": _COMMON_IGNORE + _IGNORES[info.kind]}

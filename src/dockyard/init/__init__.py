"""``dockyard init``: detect a project and write a Dockerfile and .dockerignore.

    from dockyard import init
    kind = init.detect(".")                       # ProjectKind.PYTHON, ...
    files = init.render(kind, ".", init.InitOptions(base="python:3.12-slim-bookworm"))
    paths = init.write(".", force=False)          # never overwrites without force
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import DockyardError
from .detect import ProjectInfo, ProjectKind, detect, inspect_project
from .templates import DEFAULT_BASES, InitOptions, default_base, render_files

__all__ = ["DEFAULT_BASES", "InitOptions", "ProjectInfo", "ProjectKind", "detect", "inspect_project",
           "render", "write"]

FILES = ("Dockerfile", ".dockerignore")
# ask(question, default) -> answer; the CLI passes click.prompt, tests a dict lookup
Ask = Callable[[str, str], str]


def render(kind: ProjectKind | str, directory: str | Path, options: InitOptions | None = None) -> dict[str, str]:
    """The files ``init`` would write for ``directory``, as name -> text."""
    info = inspect_project(directory, ProjectKind(kind))
    return render_files(info, options or InitOptions())


def _ask_options(directory: Path, kind: ProjectKind, options: InitOptions, ask: Ask
                 ) -> tuple[ProjectKind, InitOptions]:
    choices = ", ".join(k.value for k in ProjectKind)
    answer = ask(f"Project kind ({choices})", kind.value).strip().lower()
    try:
        kind = ProjectKind(answer)
    except ValueError:
        raise DockyardError(f"unknown project kind {answer!r}: use one of {choices}") from None
    info = inspect_project(directory, kind)
    base = ask("Base image", options.base or default_base(info)).strip()
    port_default = str(options.port) if options.port else ""
    port = ask("Port the application listens on (empty for none)", port_default).strip()
    if port and not port.isdigit():
        raise DockyardError(f"invalid port {port!r}: expected a number")
    return kind, InitOptions(base=base or None, builder=options.builder,
                             port=int(port) if port else None, name=options.name)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(directory: str | Path, *, force: bool = False, yes: bool = True, kind: ProjectKind | str | None = None,
          options: InitOptions | None = None, ask: Ask | None = None) -> list[Path]:
    """Detect (or take ``kind``), render and write the files; returns their paths.

    Existing files are an error unless ``force``; nothing is written then.
    With ``yes=False`` and an ``ask`` function the kind, base and port are
    asked, with the detected values as defaults.
    """
    d = Path(directory)
    if not d.is_dir():
        raise DockyardError(f"{d} is not a directory")
    existing = [name for name in FILES if (d / name).exists()]
    if existing and not force:
        raise DockyardError(f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''} "
                            f"in {d}: use --force to overwrite")
    chosen = ProjectKind(kind) if kind else detect(d)
    opts = options or InitOptions()
    if not yes and ask is not None:
        chosen, opts = _ask_options(d, chosen, opts, ask)
    files = render(chosen, d, opts)
    paths = []
    for name in FILES:
        _write_atomic(d / name, files[name])
        paths.append(d / name)
    return paths

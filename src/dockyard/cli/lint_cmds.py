"""`dockyard lint` and `dockyard init`; the main CLI registers ``COMMANDS``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..errors import DockyardError

__all__ = ["COMMANDS", "init", "lint"]

_FORMATS = ("text", "json", "sarif")


def _read_dockerfile(context: str, dockerfile: str | None) -> tuple[str, bytes]:
    """(name shown in findings, contents); ``-f -`` reads standard input."""
    if dockerfile == "-":
        return "Dockerfile", sys.stdin.buffer.read()
    path = Path(dockerfile) if dockerfile else Path(context) / "Dockerfile"
    if dockerfile and not path.is_absolute() and not path.exists():
        path = Path(context) / dockerfile  # as `build -f` resolves it
    try:
        return str(path), path.read_bytes()
    except OSError as e:
        raise DockyardError(f"cannot read Dockerfile {path}: {e.strerror}") from None


def _image_config(ctx: click.Context):
    """Base image configs from the store, if there is one (lint never creates it)."""
    from ..lint import store_image_config
    from ..store import Store
    from ..store.store import default_root

    root = (ctx.find_root().obj or {}).get("root")
    root_path = Path(root) if root else default_root()
    if not (root_path / "db.sqlite").is_file():
        return None
    try:
        return store_image_config(Store(root_path))
    except (DockyardError, OSError):
        return None


def _rules_table() -> str:
    from ..lint import RULES

    width = max(len(n) for n in RULES)
    rows = []
    for r in RULES.values():
        extra = " (experimental)" if r.experimental else ""
        rows.append(f"{r.name:<{width}}  {r.severity:<7}  {r.origin:<8}  {r.description}{extra}")
    return "\n".join(rows)


@click.command()
@click.argument("context", default=".", required=False)
@click.option("-f", "--file", "dockerfile", help="Dockerfile to check (default CONTEXT/Dockerfile; - for stdin).")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="text", show_default=True,
              help="Report format.")
@click.option("--skip", "skips", multiple=True, metavar="RULE[,RULE]",
              help="Skip these rules (adds to the file's # check=skip=).")
@click.option("--exit-zero", is_flag=True,
              help="Exit 0 despite warnings (unless the file says # check=error=true).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report to this file.")
@click.option("--list-rules", is_flag=True, help="List the rules and exit.")
@click.pass_context
def lint(ctx, context, dockerfile, fmt, skips, exit_zero, output, list_rules):
    """Check a Dockerfile against BuildKit's build checks and security rules.

    Exits 1 when there are findings (with --exit-zero: only for errors or
    when the Dockerfile has # check=error=true).
    """
    from .. import lint as linter

    if list_rules:
        click.echo(_rules_table())
        return
    name, text = _read_dockerfile(context, dockerfile)
    skip = {s.strip() for item in skips for s in item.split(",") if s.strip()}
    unknown = sorted(skip - set(linter.RULES))
    if unknown:
        raise click.BadParameter(f"unknown rule {', '.join(unknown)} (see --list-rules)", param_hint="--skip")
    findings = linter.check(text, filename=name, context_dir=Path(context), skip=skip,
                            image_config=_image_config(ctx))
    report = {"text": linter.format_text, "json": linter.format_json, "sarif": linter.format_sarif}[fmt](findings)
    if output:
        Path(output).write_text(report, encoding="utf-8")
    elif report:
        click.echo(report, nl=False)
    if fmt == "text" and findings and not output:
        errors = sum(1 for f in findings if f.severity == "error")
        click.echo(f"{len(findings)} problem{'s' if len(findings) != 1 else ''} "
                   f"({errors} error{'s' if errors != 1 else ''}, {len(findings) - errors} "
                   f"warning{'s' if len(findings) - errors != 1 else ''})", err=True)
    error = linter.config(text, filename=name).error or not exit_zero
    ctx.exit(linter.exit_code(findings, error))


@click.command()
@click.argument("directory", default=".", required=False, type=click.Path(file_okay=False))
@click.option("-y", "--yes", is_flag=True, help="Ask nothing; use what was detected.")
@click.option("--force", is_flag=True, help="Overwrite an existing Dockerfile and .dockerignore.")
@click.option("--kind", type=click.Choice(["python", "node", "go", "static", "plain"]),
              help="Project kind (default: detected).")
@click.option("--base", help="Image the final stage is built on (a pinned tag or digest).")
@click.option("--builder", help="Toolchain image for the build stage (Go projects).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to EXPOSE and health-check.")
@click.option("--name", help="Image title (org.opencontainers.image.title).")
def init(directory, yes, force, kind, base, builder, port, name):
    """Write a best-practice Dockerfile and .dockerignore for DIRECTORY."""
    from .. import init as initializer

    if not os.path.exists(directory):
        os.makedirs(directory)
    interactive = not yes and sys.stdin.isatty()
    options = initializer.InitOptions(base=base, builder=builder, port=port, name=name)
    paths = initializer.write(
        directory, force=force, yes=not interactive, kind=kind, options=options,
        ask=lambda question, default: click.prompt(question, default=default, show_default=True),
    )
    if not interactive:
        click.echo(f"detected a {kind or initializer.detect(directory).value} project", err=True)
    for path in paths:
        click.echo(f"wrote {path}")


COMMANDS = [lint, init]

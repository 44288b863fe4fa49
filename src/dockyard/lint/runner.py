"""Run the rules over one Dockerfile.

``check`` parses (a Dockerfile that does not parse raises DockerfileError,
as the build would), reads the ``# check=`` directive, runs every enabled
rule and returns the findings sorted by place.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..dockerfile import instructions as ins
from ..dockerfile.parser import ParseResult, parse
from ..errors import DockyardError
from . import rules_buildkit, rules_security  # noqa: F401  (they register the rules)
from .context import ImageConfig, LintContext
from .model import (
    ERROR,
    RULES,
    CheckConfig,
    Finding,
    parse_check_directive,
    sort_findings,
)

__all__ = ["check", "config", "exit_code", "store_image_config"]


def _text(text: str | bytes) -> str:
    return text.decode("utf-8", "surrogateescape") if isinstance(text, bytes) else text


def config(text: str | bytes, *, filename: str = "Dockerfile", check_arg: str | None = None) -> CheckConfig:
    """The check configuration: the file's ``# check=`` directive, merged with
    ``check_arg`` (the value of a BUILDKIT_DOCKERFILE_CHECK build argument)."""
    source = _text(text)
    return _config(parse(source, filename), source, filename, check_arg)


def _config(result: ParseResult, source: str, filename: str, check_arg: str | None) -> CheckConfig:
    cfg = CheckConfig()
    if "check" in result.directives:
        cfg = parse_check_directive(result.directives["check"], filename, _directive_line(source))
    if check_arg:
        cfg = cfg.merge(parse_check_directive(check_arg, filename))
    return cfg


def _directive_line(text: str) -> int | None:
    for number, line in enumerate(text.split("\n")[:50], 1):
        stripped = line.lstrip().lstrip("#").lstrip()
        if stripped.lower().startswith("check") and "=" in stripped:
            return number
    return None


def check(text: str | bytes, *, filename: str = "Dockerfile", context_dir: Path | str | None = None,
          skip: Iterable[str] = (), check_arg: str | None = None,
          image_config: ImageConfig | None = None) -> list[Finding]:
    """Lint a Dockerfile.

    ``skip`` adds rule names to the directive's ``skip=``; ``context_dir``
    enables the .dockerignore check; ``image_config(name)`` may return a base
    image's config (``{"Env": [...], "User": ...}``) or None when unknown.
    """
    source = _text(text)
    result = parse(source, filename)
    cfg = _config(result, source, filename, check_arg).merge(CheckConfig(skip=frozenset(skip)))
    dockerfile = ins.parse_dockerfile(result, filename)
    ctx = LintContext(source, result, dockerfile, filename,
                      Path(context_dir) if context_dir is not None else None, image_config)
    findings: list[Finding] = []
    for r in RULES.values():
        if cfg.enabled(r) and r.check is not None:
            findings.extend(r.check(ctx))
    return sort_findings(findings)


def exit_code(findings: Iterable[Finding], error: bool) -> int:
    """1 when the findings should fail a CI step or a build, else 0.

    With ``error`` (``# check=error=true``, or ``dockyard lint`` without
    ``--exit-zero``) any finding fails; without it only error-severity ones,
    which would break the build anyway.
    """
    findings = list(findings)
    if not findings:
        return 0
    if error or any(f.severity == ERROR for f in findings):
        return 1
    return 0


def store_image_config(store) -> ImageConfig:
    """An ``image_config`` that reads base images from a dockyard store
    (None for images not there: the rules then assume PATH and root)."""
    from ..api import get_image

    def lookup(name: str) -> dict | None:
        try:
            return get_image(store, name).config.get("config") or {}
        except DockyardError:
            return None

    return lookup

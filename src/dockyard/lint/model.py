"""Findings, the rule registry and the ``# check=`` directive.

A rule is a name (BuildKit's own names for BuildKit's checks, ours in the
same PascalCase style), a one-line description, a default severity and a
documentation URL. Severity ``error`` is kept for findings that will make
the build fail anyway; everything else is a ``warning``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import DockerfileError

if TYPE_CHECKING:
    from .context import LintContext

__all__ = ["RULES", "CheckConfig", "Finding", "Rule", "parse_check_directive", "rule"]

BUILDKIT_DOCS = "https://docs.docker.com/go/dockerfile/rule/"
WARNING, ERROR = "warning", "error"


@dataclass(frozen=True)
class Finding:
    """One problem at a place in a Dockerfile (lines and columns are 1-based)."""

    rule: str
    message: str
    filename: str
    line: int
    column: int = 1
    end_line: int = 0
    severity: str = WARNING
    url: str = ""
    end_column: int = 0

    def to_dict(self) -> dict:
        return {
            "rule": self.rule, "severity": self.severity, "message": self.message,
            "filename": self.filename, "line": self.line, "column": self.column,
            "end_line": self.end_line or self.line, "end_column": self.end_column or self.column,
            "url": self.url,
        }


Check = Callable[["LintContext"], Iterator[Finding]]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    severity: str = WARNING
    url: str = ""
    experimental: bool = False
    origin: str = "buildkit"  # or "dockyard" for our own rules
    check: Check | None = field(default=None, compare=False, repr=False)


RULES: dict[str, Rule] = {}


def _kebab(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        # JSONArgs -> json-args: break before an upper letter that starts a word
        if ch.isupper() and i and (name[i - 1].islower() or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("-")
        out.append(ch.lower())
    return "".join(out)


def rule(name: str, description: str, *, severity: str = WARNING, experimental: bool = False,
         origin: str = "buildkit", url: str | None = None) -> Callable[[Check], Check]:
    """Register a check function under a rule name."""

    def register(fn: Check) -> Check:
        link = url if url is not None else (BUILDKIT_DOCS + _kebab(name) + "/" if origin == "buildkit" else "")
        RULES[name] = Rule(name, description, severity, link, experimental, origin, fn)
        return fn

    return register


@dataclass(frozen=True)
class CheckConfig:
    """What ``# check=skip=A,B;error=true;experimental=C`` asks for."""

    skip: frozenset[str] = frozenset()
    skip_all: bool = False
    error: bool = False
    experimental: frozenset[str] = frozenset()
    experimental_all: bool = False

    def enabled(self, r: Rule) -> bool:
        if self.skip_all or r.name in self.skip:
            return False
        if r.experimental:
            return self.experimental_all or r.name in self.experimental
        return True

    def merge(self, other: CheckConfig) -> CheckConfig:
        """``other`` (a build argument, say) wins where it says something."""
        return CheckConfig(
            skip=self.skip | other.skip, skip_all=self.skip_all or other.skip_all,
            error=self.error or other.error,
            experimental=self.experimental | other.experimental,
            experimental_all=self.experimental_all or other.experimental_all,
        )


_TRUE = {"1", "t", "true", "yes", "on"}
_FALSE = {"0", "f", "false", "no", "off"}


def _names(value: str) -> tuple[frozenset[str], bool]:
    names = frozenset(n.strip() for n in value.split(",") if n.strip())
    return names - {"all"}, "all" in names


def parse_check_directive(value: str, filename: str = "Dockerfile", line: int | None = None) -> CheckConfig:
    """Parse a check directive's value; rule names are case-sensitive as in BuildKit."""
    skip: frozenset[str] = frozenset()
    experimental: frozenset[str] = frozenset()
    skip_all = experimental_all = error = False
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        key, eq, val = part.partition("=")
        key, val = key.strip().lower(), val.strip()
        if not eq:
            raise DockerfileError(f"invalid check option {part!r}: expected key=value", filename, line)
        if key == "skip":
            skip, skip_all = _names(val)
        elif key == "experimental":
            experimental, experimental_all = _names(val)
        elif key == "error":
            if val.lower() not in _TRUE | _FALSE:
                raise DockerfileError(f"invalid check option error={val!r}: expected true or false",
                                      filename, line)
            error = val.lower() in _TRUE
        else:
            raise DockerfileError(f"unknown check option {key!r} (use skip, error or experimental)",
                                  filename, line)
    return CheckConfig(skip, skip_all, error, experimental, experimental_all)


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.filename, f.line, f.column, f.rule, f.message))

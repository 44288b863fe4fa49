"""One instruction on its way to a typed command, with BuildKit's flag rules.

``Request.parse_flags`` follows BuildKit's BFlags: each instruction declares
the flags it accepts; ``--name=value`` for string flags (repeatable for
"strings" flags), ``--name`` or ``--name=true|false`` for bool flags, and a
bare ``--`` ends the flags. Anything else is an error naming the flag and the
instruction.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from ..errors import DockerfileError
from ._gocompat import go_trimspace
from .commands import Location
from .heredoc import Heredoc

__all__ = ["BOOL", "STRING", "STRINGS", "Request"]

BOOL, STRING, STRINGS = "bool", "string", "strings"


@dataclass
class Request:
    keyword: str  # upper case, for messages
    args: list[str]
    json: bool
    flags: list[str]
    original: str
    location: Location
    heredocs: list[Heredoc]
    filename: str

    def error(self, message: str) -> DockerfileError:
        return DockerfileError(message, self.filename, self.location.start_line)

    def common(self) -> dict[str, Any]:
        """The fields every command carries."""
        return {"location": self.location, "original": go_trimspace(self.original)}

    def at_least_one(self) -> None:
        if not self.args:
            raise self.error(f"{self.keyword} requires at least one argument")

    def exactly_one(self) -> None:
        if len(self.args) != 1:
            raise self.error(f"{self.keyword} requires exactly one argument")

    def parse_flags(self, **spec: str) -> dict[str, Any]:
        """Values of the flags used: bool, str, or list[str] for STRINGS."""
        values: dict[str, Any] = {}
        for arg in self.flags:
            if not arg.startswith("--"):
                raise self.error(f"arg should start with -- : {arg}")
            if arg == "--":
                break
            name, eq, value = arg[2:].partition("=")
            kind = spec.get(name)
            if kind is None:
                raise self.error(self._unknown_flag(name, spec))
            if name in values and kind != STRINGS:
                raise self.error(f"duplicate flag specified: --{name}")
            if kind == BOOL:
                if eq and not value:
                    raise self.error(f"missing a value on flag: --{name}")
                if value.lower() not in ("", "true", "false"):
                    raise self.error(f"expecting boolean value for flag --{name}, not: {value}")
                values[name] = value.lower() != "false"
            elif not eq:
                raise self.error(f"missing a value on flag: --{name}")
            elif kind == STRINGS:
                values.setdefault(name, []).append(value)
            else:
                values[name] = value
        return values

    def _unknown_flag(self, name: str, spec: dict[str, str]) -> str:
        message = f"unknown flag: --{name} for {self.keyword}"
        close = difflib.get_close_matches(name, list(spec), n=1)
        return message + (f" (did you mean --{close[0]}?)" if close else "")

"""Typed Dockerfile commands: frozen dataclasses, one per instruction.

The field reference and the expansion rules are in the docstring of
``instructions.py``, which parses nodes into these types and re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import ClassVar, NamedTuple

from .heredoc import Heredoc

__all__ = [
    "AddCommand",
    "ArgCommand",
    "CmdCommand",
    "Command",
    "CopyCommand",
    "Dockerfile",
    "EntrypointCommand",
    "EnvCommand",
    "ExposeCommand",
    "HealthcheckCommand",
    "LabelCommand",
    "Location",
    "MaintainerCommand",
    "OnbuildCommand",
    "RunCommand",
    "ShellCommand",
    "SourceContent",
    "Stage",
    "StopsignalCommand",
    "UserCommand",
    "VolumeCommand",
    "WorkdirCommand",
]

WordExpander = Callable[[str], str]


class Location(NamedTuple):
    start_line: int
    end_line: int


@dataclass(frozen=True, kw_only=True)
class Command:
    """Fields every command shares."""

    keyword: ClassVar[str] = ""
    location: Location
    original: str

    @property
    def name(self) -> str:
        return self.keyword


def _opt(expand_word: WordExpander, value: str | None) -> str | None:
    return None if value is None else expand_word(value)


def _pairs(expand_word: WordExpander, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(expand_word(k), expand_word(v)) for k, v in pairs]


@dataclass(frozen=True, kw_only=True)
class RunCommand(Command):
    keyword: ClassVar[str] = "run"
    cmd: list[str]
    prepend_shell: bool
    heredocs: list[Heredoc] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    network: str | None = None
    security: str | None = None
    devices: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class CmdCommand(Command):
    keyword: ClassVar[str] = "cmd"
    cmd: list[str]
    prepend_shell: bool


@dataclass(frozen=True, kw_only=True)
class EntrypointCommand(Command):
    keyword: ClassVar[str] = "entrypoint"
    cmd: list[str]
    prepend_shell: bool


@dataclass(frozen=True, kw_only=True)
class EnvCommand(Command):
    keyword: ClassVar[str] = "env"
    pairs: list[tuple[str, str]]
    legacy: bool = False

    def expand(self, expand_word: WordExpander) -> EnvCommand:
        return replace(self, pairs=_pairs(expand_word, self.pairs))


@dataclass(frozen=True, kw_only=True)
class LabelCommand(Command):
    keyword: ClassVar[str] = "label"
    pairs: list[tuple[str, str]]
    legacy: bool = False

    def expand(self, expand_word: WordExpander) -> LabelCommand:
        return replace(self, pairs=_pairs(expand_word, self.pairs))


@dataclass(frozen=True, kw_only=True)
class MaintainerCommand(Command):
    keyword: ClassVar[str] = "maintainer"
    maintainer: str


@dataclass(frozen=True, kw_only=True)
class ExposeCommand(Command):
    keyword: ClassVar[str] = "expose"
    ports: list[str]

    def expand_words(self, expand_words: Callable[[str], list[str]]) -> ExposeCommand:
        # one EXPOSE word may expand to several ports ("$PORTS")
        return replace(self, ports=[p for word in self.ports for p in expand_words(word)])


@dataclass(frozen=True, kw_only=True)
class ArgCommand(Command):
    keyword: ClassVar[str] = "arg"
    args: list[tuple[str, str | None]]

    def expand(self, expand_word: WordExpander) -> ArgCommand:
        return replace(self, args=[(expand_word(k), _opt(expand_word, v)) for k, v in self.args])


@dataclass(frozen=True)
class SourceContent:
    """A COPY/ADD heredoc source: file name, body (already chomped), expand flag."""

    path: str
    data: str
    expand: bool = True


@dataclass(frozen=True, kw_only=True)
class CopyCommand(Command):
    keyword: ClassVar[str] = "copy"
    sources: list[str]
    dest: str
    heredocs: list[SourceContent] = field(default_factory=list)
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    excludes: list[str] = field(default_factory=list)

    def expand(self, expand_word: WordExpander) -> CopyCommand:
        return replace(
            self,
            sources=[expand_word(s) for s in self.sources],
            dest=expand_word(self.dest),
            from_=_opt(expand_word, self.from_),
            chown=_opt(expand_word, self.chown),
            chmod=_opt(expand_word, self.chmod),
        )

    def expand_raw(self, expand_word: WordExpander) -> CopyCommand:
        return replace(self, heredocs=_expand_contents(expand_word, self.heredocs))


@dataclass(frozen=True, kw_only=True)
class AddCommand(Command):
    keyword: ClassVar[str] = "add"
    sources: list[str]
    dest: str
    heredocs: list[SourceContent] = field(default_factory=list)
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    excludes: list[str] = field(default_factory=list)
    checksum: str | None = None
    keep_git_dir: bool = False
    unpack: bool | None = None

    def expand(self, expand_word: WordExpander) -> AddCommand:
        return replace(
            self,
            sources=[expand_word(s) for s in self.sources],
            dest=expand_word(self.dest),
            chown=_opt(expand_word, self.chown),
            chmod=_opt(expand_word, self.chmod),
            checksum=_opt(expand_word, self.checksum),
        )

    def expand_raw(self, expand_word: WordExpander) -> AddCommand:
        return replace(self, heredocs=_expand_contents(expand_word, self.heredocs))


def _expand_contents(expand_word: WordExpander, contents: list[SourceContent]) -> list[SourceContent]:
    return [replace(c, data=expand_word(c.data)) if c.expand else c for c in contents]


@dataclass(frozen=True, kw_only=True)
class VolumeCommand(Command):
    keyword: ClassVar[str] = "volume"
    volumes: list[str]

    def expand(self, expand_word: WordExpander) -> VolumeCommand:
        return replace(self, volumes=[expand_word(v) for v in self.volumes])


@dataclass(frozen=True, kw_only=True)
class UserCommand(Command):
    keyword: ClassVar[str] = "user"
    user: str

    def expand(self, expand_word: WordExpander) -> UserCommand:
        return replace(self, user=expand_word(self.user))


@dataclass(frozen=True, kw_only=True)
class WorkdirCommand(Command):
    keyword: ClassVar[str] = "workdir"
    path: str

    def expand(self, expand_word: WordExpander) -> WorkdirCommand:
        return replace(self, path=expand_word(self.path))


@dataclass(frozen=True, kw_only=True)
class StopsignalCommand(Command):
    keyword: ClassVar[str] = "stopsignal"
    signal: str

    def expand(self, expand_word: WordExpander) -> StopsignalCommand:
        return replace(self, signal=expand_word(self.signal))


@dataclass(frozen=True, kw_only=True)
class HealthcheckCommand(Command):
    keyword: ClassVar[str] = "healthcheck"
    test: list[str]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True, kw_only=True)
class ShellCommand(Command):
    keyword: ClassVar[str] = "shell"
    shell: list[str]


@dataclass(frozen=True, kw_only=True)
class OnbuildCommand(Command):
    keyword: ClassVar[str] = "onbuild"
    expression: str


@dataclass(frozen=True, kw_only=True)
class Stage:
    """A FROM line and the commands after it.

    ``name`` is the lowercased ``AS`` name (None when unnamed); ``base_name``
    and ``platform`` are raw: the builder expands them with the meta ARGs.
    """

    name: str | None
    base_name: str
    platform: str | None
    commands: list[Command]
    location: Location
    index: int
    original: str


@dataclass(frozen=True, kw_only=True)
class Dockerfile:
    """``meta_args`` are the ARGs before the first FROM."""

    meta_args: list[ArgCommand]
    stages: list[Stage]
    escape: str = "\\"

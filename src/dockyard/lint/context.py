"""What every rule looks at: the source, the parsed nodes and stages, and a
walk over the stages that tracks what the builder would know at each step
(variables set, ARGs declared, USER, SHELL, an absolute WORKDIR).

Only the Dockerfile is read; the base image's config is known only when the
caller passes ``image_config`` (the build does, from the store). Without it
an image is assumed to set PATH and nothing else, and to run as root.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..dockerfile import instructions as ins
from ..dockerfile.parser import Node, ParseResult
from ..dockerfile.shell import Lexer
from ..errors import DockyardError
from .model import RULES, Finding

ImageConfig = Callable[[str], "dict | None"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Available to FROM lines without being declared (BuildKit sets them).
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}.get(platform.machine(), "amd64")
PLATFORM_ARGS = {
    "BUILDPLATFORM": f"linux/{_ARCH}", "BUILDOS": "linux", "BUILDARCH": _ARCH, "BUILDVARIANT": "",
    "TARGETPLATFORM": f"linux/{_ARCH}", "TARGETOS": "linux", "TARGETARCH": _ARCH, "TARGETVARIANT": "",
}


@dataclass
class VarRef:
    name: str
    guarded: bool  # ${X:-...}, ${X+...}, ${X?...}: the author handles "unset"


def var_refs(word: str, escape: str = "\\") -> list[VarRef]:
    """The variables a word refers to, as the Dockerfile expander would see them."""
    refs: list[VarRef] = []
    i, n, in_double = 0, len(word), False
    while i < n:
        ch = word[i]
        if ch == escape:
            i += 2
            continue
        if ch == "'" and not in_double:
            end = word.find("'", i + 1)  # no expansion inside single quotes
            i = n if end < 0 else end + 1
            continue
        if ch == '"':
            in_double = not in_double
        if ch != "$" or i + 1 >= n:
            i += 1
            continue
        if word[i + 1] == "{":
            m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", word[i + 2:])
            if not m:
                i += 2
                continue
            j = i + 2 + m.end()
            op = word[j:j + 2] if word[j:j + 1] == ":" else word[j:j + 1]
            refs.append(VarRef(m.group(), op.lstrip(":")[:1] in ("-", "+", "?")))
            depth, k = 1, j
            while k < n and depth:  # scan the modifier's word for nested references
                depth += {"{": 1, "}": -1}.get(word[k], 0)
                k += 1
            if k - 1 > j:
                refs.extend(var_refs(word[j + 1:k - 1], escape))
            i = k
            continue
        m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", word[i + 1:])
        if m:
            refs.append(VarRef(m.group(), False))
            i += 1 + m.end()
        else:
            i += 1
    return refs


@dataclass
class State:
    """What the builder knows before an instruction. ``env`` values are None
    when unknown (an ARG without default, a value made of unknowns)."""

    env: dict[str, str | None] = field(default_factory=dict)
    args: set[str] = field(default_factory=set)  # names in env that came from ARG
    user: str | None = None  # None: the base image's, not known (assumed root)
    user_line: int = 0  # the USER instruction that set ``user``
    shell_set: bool = False
    absolute_workdir: bool = False

    def copy(self) -> State:
        return replace(self, env=dict(self.env), args=set(self.args))


@dataclass
class StageInfo:
    index: int
    stage: ins.Stage
    node: Node
    base: str | None  # expanded with the meta ARGs' defaults; None if unknown
    parent: int | None  # index of the stage this one is built FROM
    end: State = field(default_factory=State)


class LintContext:
    def __init__(self, text: str, result: ParseResult, dockerfile: ins.Dockerfile, filename: str,
                 context_dir: Path | None, image_config: ImageConfig | None) -> None:
        self.lines = text.split("\n")
        if self.lines:
            self.lines[0] = self.lines[0].removeprefix("\ufeff")
        self.result = result
        self.df = dockerfile
        self.filename = filename
        self.context_dir = context_dir
        self.image_config = image_config
        self.escape = result.escape
        self.nodes = {n.start_line: n for n in result.children}
        self.before: dict[int, State] = {}  # start line -> state before that instruction
        self.meta: dict[str, str | None] = {}
        self.meta_declared: set[str] = set()
        self._walk_meta()
        self.stages = self._walk_stages()

    # ---- places ----------------------------------------------------------------

    def node(self, command) -> Node:
        return self.nodes[command.location.start_line]

    def keyword_span(self, line: int) -> tuple[int, int, int, int]:
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        col = len(text) - len(text.lstrip()) + 1
        word = (text.split(None, 1) or [""])[0]
        return line, col, line, col + len(word)

    def keyword(self, node: Node) -> str:
        """The instruction keyword as written (the node keeps it lowercased)."""
        return self.lines[node.start_line - 1].strip().split(None, 1)[0] if node.start_line else node.value

    def locate(self, node: Node, pattern: str | re.Pattern[str], *, skip_keyword: bool = True,
               group: int = 0) -> tuple[int, int, int, int]:
        """Where ``pattern`` first matches inside the instruction; the keyword if nowhere."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        for line in range(node.start_line, node.end_line + 1):
            text = self.lines[line - 1]
            start = 0
            if line == node.start_line and skip_keyword:
                start = self.keyword_span(line)[3] - 1
            m = rx.search(text, start)
            if m:
                return line, m.start(group) + 1, line, m.end(group) + 1
        return self.keyword_span(node.start_line)

    def word_span(self, node: Node, word: str) -> tuple[int, int, int, int]:
        return self.locate(node, r"(?<![^\s=\"'\[,])" + re.escape(word))

    def stage_name_span(self, info: StageInfo) -> tuple[int, int, int, int]:
        """Where the ``AS name`` of a FROM names the stage (the base may share the word)."""
        as_word, name = info.node.args[1], info.node.args[2]
        return self.locate(info.node, rf"(?<=\s){re.escape(as_word)}\s+({re.escape(name)})(?!\S)", group=1)

    def report(self, name: str, message: str, span: tuple[int, int, int, int]) -> Finding:
        r = RULES[name]
        line, col, end_line, end_col = span
        return Finding(rule=name, message=message, filename=self.filename, line=line, column=col,
                       end_line=end_line, severity=r.severity, url=r.url, end_column=end_col)

    # ---- expansion -------------------------------------------------------------

    def expand(self, word: str, env: dict[str, str | None]) -> str | None:
        """Expand with known values; None when the result depends on an unknown."""
        known = {k: v for k, v in env.items() if v is not None}
        try:
            out, _, unmatched = Lexer(self.escape).process_word_with_matches(word, known)
        except DockyardError:
            return None
        return None if any(name in env for name in unmatched) else out

    def final_chain(self) -> list[StageInfo]:
        """The last stage and the stages it is built FROM: what ships."""
        chain: list[StageInfo] = []
        index: int | None = len(self.stages) - 1 if self.stages else None
        while index is not None:
            chain.append(self.stages[index])
            index = self.stages[index].parent
        return chain

    # ---- the walk ----------------------------------------------------------------

    def _walk_meta(self) -> None:
        for arg in self.df.meta_args:
            env = {**PLATFORM_ARGS, **self.meta}
            for name, default in arg.args:
                self.meta_declared.add(name)
                self.meta[name] = self.expand(default, env) if default is not None else None

    def stage_index(self, name: str, before: int) -> int | None:
        for info in self.stages[:before]:
            if info.stage.name and info.stage.name == name.lower():
                return info.index
        return None

    def _walk_stages(self) -> list[StageInfo]:
        infos: list[StageInfo] = []
        self.stages = infos
        meta_env = {**PLATFORM_ARGS, **self.meta}
        for index, stage in enumerate(self.df.stages):
            base = self.expand(stage.base_name, meta_env)
            parent = self.stage_index(base, index) if base else None
            info = StageInfo(index, stage, self.nodes[stage.location.start_line], base, parent)
            state = self._initial_state(info, infos)
            for cmd in stage.commands:
                self.before[cmd.location.start_line] = state.copy()
                self._apply(cmd, state)
            info.end = state
            infos.append(info)
        return infos

    def _initial_state(self, info: StageInfo, done: list[StageInfo]) -> State:
        if info.parent is not None:
            state = done[info.parent].end.copy()
            # ARGs are per stage; only ENV values are in the image
            state.env = {k: v for k, v in state.env.items() if k not in state.args}
            state.args = set()
            return state
        if info.base is not None and info.base.lower() == "scratch":
            return State(env={"PATH": DEFAULT_PATH}, user="")
        config = self.image_config(info.base) if (self.image_config and info.base) else None
        if not config:
            return State(env={"PATH": DEFAULT_PATH})
        cfg = config.get("config", config) or {}
        env: dict[str, str | None] = {}
        for item in cfg.get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        env.setdefault("PATH", DEFAULT_PATH)
        return State(env=env, user=cfg.get("User") or "", absolute_workdir=False)

    def _apply(self, cmd, state: State) -> None:
        if isinstance(cmd, ins.EnvCommand):
            before = dict(state.env)
            for key, value in cmd.pairs:
                state.env[key] = self.expand(value, before)
                state.args.discard(key)
        elif isinstance(cmd, ins.ArgCommand):
            for name, default in cmd.args:
                if name in state.env and name not in state.args:
                    continue  # an ENV of the same name wins over the ARG
                state.args.add(name)
                if default is not None:
                    state.env[name] = self.expand(default, state.env)
                elif name in self.meta and self.meta[name] is not None:
                    state.env[name] = self.meta[name]  # a redeclared global ARG keeps its value
                else:
                    state.env.setdefault(name, None)
        elif isinstance(cmd, ins.UserCommand):
            value = self.expand(cmd.user, state.env)
            state.user = cmd.user if value is None else value  # unresolved: trust the author
            state.user_line = cmd.location.start_line
        elif isinstance(cmd, ins.ShellCommand):
            state.shell_set = True
        elif isinstance(cmd, ins.WorkdirCommand):
            path = self.expand(cmd.path, state.env)
            if path is None or path.startswith("/"):
                state.absolute_workdir = True


def iter_commands(ctx: LintContext) -> Iterator[tuple[StageInfo, object]]:
    for info in ctx.stages:
        for cmd in info.stage.commands:
            yield info, cmd

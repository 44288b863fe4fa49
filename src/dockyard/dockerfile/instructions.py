"""Parsed nodes -> typed commands and build stages, with BuildKit's rules.

``parse_dockerfile(result)`` groups commands into stages (ARGs before the
first FROM become ``meta_args``). Each keyword has one parse function in
``_PARSERS``; each declares the flags it accepts and checks its argument
count with BuildKit's wording. The command classes live in ``commands.py``
and are re-exported here.

Every command has ``location`` (a :class:`Location` of start and end line)
and ``original`` (the instruction text, trimmed). Fields per command:

=====================  ==================================================
RunCommand             cmd: list[str], prepend_shell: bool (shell form),
                       heredocs: list[Heredoc] (raw bodies; chomp later),
                       mounts: list[str], devices: list[str] (raw
                       ``--mount``/``--device`` values), network: str|None,
                       security: str|None
CmdCommand             cmd, prepend_shell
EntrypointCommand      cmd (empty list = unset), prepend_shell
EnvCommand             pairs: list[(key, value)], legacy: bool (``ENV k v``)
LabelCommand           pairs, legacy
MaintainerCommand      maintainer: str
ExposeCommand          ports: list[str] (sorted, unexpanded)
ArgCommand             args: list[(name, default or None)]
CopyCommand            sources: list[str], dest: str,
                       heredocs: list[SourceContent], from_: str|None,
                       chown: str|None, chmod: str|None, link: bool,
                       parents: bool, excludes: list[str]
AddCommand             sources, dest, heredocs, chown, chmod, link,
                       excludes, checksum: str|None, keep_git_dir: bool,
                       unpack: bool|None (None = not given)
VolumeCommand          volumes: list[str]
UserCommand            user: str
WorkdirCommand         path: str
StopsignalCommand      signal: str
HealthcheckCommand     test: list[str] (['NONE'], ['CMD', ...] or
                       ['CMD-SHELL', line]), interval, timeout,
                       start_period, start_interval: int nanoseconds
                       (0 = default), retries: int (0 = default)
ShellCommand           shell: list[str]
OnbuildCommand         expression: str (the trigger's text, heredoc
                       bodies re-attached)
=====================  ==================================================

Nothing is expanded at parse time. Commands whose fields BuildKit expands
have ``expand(expand_word)`` returning a new command; ``expand_word`` maps
one word to one string (and raises on error). It expands: ENV and LABEL keys
and values, ARG names and defaults, COPY sources, dest, from_, chown and
chmod, ADD sources, dest, chown, chmod and checksum, VOLUME paths, USER,
WORKDIR and STOPSIGNAL. COPY/ADD ``excludes`` stay raw (BuildKit does not
expand them); a Stage's base_name and platform are expanded by the builder
with the meta ARGs. EXPOSE splits words instead:
``ExposeCommand.expand_words(expand_words)`` takes a word -> list function.
COPY/ADD heredoc bodies marked ``expand`` go through ``expand_raw``, whose
function must keep quotes (they belong to the file, not to the Dockerfile).
RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER and ONBUILD are never
expanded.

Quirks kept on purpose because BuildKit has them: ARG and STOPSIGNAL ignore
flags, ``HEALTHCHECK NONE`` ignores flags, and a JSON-form COPY/ADD argument
that looks like a heredoc becomes an empty inline file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..errors import DockerfileError
from ._gocompat import go_quote, go_trimspace, parse_duration, parse_int32
from ._request import BOOL, STRING, STRINGS, Request
from .commands import (
    AddCommand,
    ArgCommand,
    CmdCommand,
    Command,
    CopyCommand,
    Dockerfile,
    EntrypointCommand,
    EnvCommand,
    ExposeCommand,
    HealthcheckCommand,
    LabelCommand,
    Location,
    MaintainerCommand,
    OnbuildCommand,
    RunCommand,
    ShellCommand,
    SourceContent,
    Stage,
    StopsignalCommand,
    UserCommand,
    VolumeCommand,
    WorkdirCommand,
)
from .heredoc import Heredoc, chomp_heredoc_content, parse_heredoc
from .parser import Node, ParseResult, parse

__all__ = [
    "AddCommand", "ArgCommand", "CmdCommand", "Command", "CopyCommand", "Dockerfile",
    "EntrypointCommand", "EnvCommand", "ExposeCommand", "HealthcheckCommand", "LabelCommand",
    "Location", "MaintainerCommand", "OnbuildCommand", "RunCommand", "ShellCommand",
    "SourceContent", "Stage", "StopsignalCommand", "UserCommand", "VolumeCommand", "WorkdirCommand",
    "parse_dockerfile", "parse_instruction_text", "parse_node",
]

_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*\Z")
_ONBUILD_PREFIX = re.compile(r"\A[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.IGNORECASE)
_MIN_INTERVAL_NS = 1_000_000  # 1ms, Docker's minimum healthcheck duration


def _shell_dependent(req: Request) -> tuple[list[str], bool]:
    """JSON form as is; shell form as one string, to run under SHELL."""
    if req.json or not req.args:
        return list(req.args), not req.json
    return [" ".join(req.args)], True


def _key_values(req: Request) -> tuple[list[tuple[str, str]], bool]:
    req.parse_flags()
    req.at_least_one()
    if len(req.args) % 3:
        raise req.error(f"Bad input to {req.keyword}, too many arguments")
    triples = [req.args[i:i + 3] for i in range(0, len(req.args), 3)]
    if any(not key for key, _, _ in triples):
        raise req.error(f"{req.keyword} names can not be blank")
    return [(k, v) for k, v, _ in triples], any(sep == "" for _, _, sep in triples)


def _parse_env(req: Request) -> EnvCommand:
    pairs, legacy = _key_values(req)
    return EnvCommand(pairs=pairs, legacy=legacy, **req.common())


def _parse_label(req: Request) -> LabelCommand:
    pairs, legacy = _key_values(req)
    return LabelCommand(pairs=pairs, legacy=legacy, **req.common())


def _parse_maintainer(req: Request) -> MaintainerCommand:
    req.exactly_one()
    req.parse_flags()
    return MaintainerCommand(maintainer=req.args[0], **req.common())


def _sources_and_dest(req: Request) -> tuple[list[str], str, list[SourceContent]]:
    *sources, dest = req.args
    if _parse_heredoc_quiet(dest) is not None:
        raise req.error(f"{req.keyword} cannot accept a heredoc as a destination")
    bodies = {doc.name: doc for doc in req.heredocs}
    paths: list[str] = []
    contents: list[SourceContent] = []
    for src in sources:
        doc = _parse_heredoc_quiet(src)
        if doc is None:
            paths.append(src)
            continue
        found = bodies.get(doc.name)
        data = found.content if found is not None else ""
        if doc.chomp:
            data = chomp_heredoc_content(data)
        contents.append(SourceContent(path=doc.name, data=data, expand=doc.expand))
    return paths, dest, contents


def _parse_heredoc_quiet(word: str) -> Heredoc | None:
    """BuildKit's MustParseHeredoc: a malformed heredoc word is a plain word."""
    try:
        return parse_heredoc(word)
    except ValueError:
        return None


def _no_destination(req: Request) -> None:
    if len(req.args) < 2:
        raise req.error(
            f"{req.keyword} requires at least two arguments, but only one was provided. "
            "Destination could not be determined."
        )


def _parse_copy(req: Request) -> CopyCommand:
    _no_destination(req)
    flags = req.parse_flags(chown=STRING, chmod=STRING, **{"from": STRING}, link=BOOL,
                            exclude=STRINGS, parents=BOOL)
    sources, dest, contents = _sources_and_dest(req)
    return CopyCommand(
        sources=sources, dest=dest, heredocs=contents, from_=flags.get("from"),
        chown=flags.get("chown"), chmod=flags.get("chmod"), link=bool(flags.get("link")),
        parents=bool(flags.get("parents")), excludes=flags.get("exclude", []),
        **req.common(),
    )


def _parse_add(req: Request) -> AddCommand:
    _no_destination(req)
    flags = req.parse_flags(chown=STRING, chmod=STRING, link=BOOL, exclude=STRINGS,
                            checksum=STRING, unpack=BOOL, **{"keep-git-dir": BOOL})
    sources, dest, contents = _sources_and_dest(req)
    return AddCommand(
        sources=sources, dest=dest, heredocs=contents, chown=flags.get("chown"),
        chmod=flags.get("chmod"), link=bool(flags.get("link")), excludes=flags.get("exclude", []),
        checksum=flags.get("checksum"), keep_git_dir=bool(flags.get("keep-git-dir")),
        unpack=flags.get("unpack"), **req.common(),
    )


def _parse_from(req: Request) -> Stage:
    name: str | None = None
    if len(req.args) == 3 and req.args[1].lower() == "as":
        name = req.args[2].lower()
        if not _STAGE_NAME.match(name):
            raise req.error(
                f"invalid name for build stage: {go_quote(req.args[2])}, "
                "name can't start with a number or contain symbols"
            )
    elif len(req.args) != 1:
        raise req.error("FROM requires either one or three arguments")
    flags = req.parse_flags(platform=STRING)
    return Stage(
        name=name, base_name=req.args[0], platform=flags.get("platform") or None,
        commands=[], location=req.location, index=0, original=go_trimspace(req.original),
    )


def _parse_onbuild(req: Request) -> OnbuildCommand:
    req.at_least_one()
    req.parse_flags()
    trigger = go_trimspace(req.args[0]).upper()
    if trigger == "ONBUILD":
        raise req.error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise req.error(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = _ONBUILD_PREFIX.sub("", req.original, count=1)
    for doc in req.heredocs:
        expression += "\n" + doc.content + doc.name
    return OnbuildCommand(expression=expression, **req.common())


def _parse_workdir(req: Request) -> WorkdirCommand:
    req.exactly_one()
    req.parse_flags()
    return WorkdirCommand(path=req.args[0], **req.common())


def _parse_run(req: Request) -> RunCommand:
    flags = req.parse_flags(mount=STRINGS, network=STRING, security=STRING, device=STRINGS)
    network, security = flags.get("network"), flags.get("security")
    if network is not None and network not in ("default", "none", "host"):
        raise req.error(f"unsupported network mode {go_quote(str(network))}")
    if security is not None and security not in ("sandbox", "insecure"):
        raise req.error(f"unsupported security mode {go_quote(str(security))}")
    cmd, prepend = _shell_dependent(req)
    return RunCommand(
        cmd=cmd, prepend_shell=prepend, heredocs=list(req.heredocs),
        mounts=flags.get("mount", []), network=network, security=security,
        devices=flags.get("device", []), **req.common(),
    )


def _parse_cmd(req: Request) -> CmdCommand:
    req.parse_flags()
    cmd, prepend = _shell_dependent(req)
    return CmdCommand(cmd=cmd, prepend_shell=prepend, **req.common())


def _parse_entrypoint(req: Request) -> EntrypointCommand:
    req.parse_flags()
    cmd, prepend = _shell_dependent(req)
    return EntrypointCommand(cmd=cmd, prepend_shell=prepend, **req.common())


def _interval(req: Request, flags: dict[str, object], name: str) -> int:
    text = flags.get(name)
    if not text:
        return 0
    try:
        value = parse_duration(str(text))
    except ValueError as exc:
        raise req.error(str(exc)) from None
    if value != 0 and value < _MIN_INTERVAL_NS:
        raise req.error(f"Interval {go_quote(name)} cannot be less than 1ms")
    return value


def _parse_healthcheck(req: Request) -> HealthcheckCommand:
    req.at_least_one()
    kind, rest = req.args[0].upper(), req.args[1:]
    if kind == "NONE":
        if rest:
            raise req.error("HEALTHCHECK NONE takes no arguments")
        return HealthcheckCommand(test=["NONE"], **req.common())
    flags = req.parse_flags(interval=STRING, timeout=STRING, retries=STRING,
                            **{"start-period": STRING, "start-interval": STRING})
    if kind != "CMD":
        raise req.error(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)")
    if req.json or not rest:
        test = list(rest)
    else:
        test = [" ".join(rest)]
    if not test:
        raise req.error("Missing command after HEALTHCHECK CMD")
    durations: dict[str, Any] = {
        name.replace("-", "_"): _interval(req, flags, name)
        for name in ("interval", "timeout", "start-period", "start-interval")
    }
    retries = 0
    if flags.get("retries"):
        try:
            retries = parse_int32(str(flags["retries"]))
        except ValueError as exc:
            raise req.error(str(exc)) from None
        if retries < 0:
            raise req.error(f"--retries cannot be negative ({retries})")
    return HealthcheckCommand(
        test=["CMD" if req.json else "CMD-SHELL", *test], retries=retries,
        **durations, **req.common(),
    )


def _parse_expose(req: Request) -> ExposeCommand:
    req.at_least_one()
    req.parse_flags()
    return ExposeCommand(ports=sorted(req.args), **req.common())


def _parse_user(req: Request) -> UserCommand:
    req.exactly_one()
    req.parse_flags()
    return UserCommand(user=req.args[0], **req.common())


def _parse_volume(req: Request) -> VolumeCommand:
    req.at_least_one()
    req.parse_flags()
    volumes = [go_trimspace(v) for v in req.args]
    if not all(volumes):
        raise req.error("VOLUME specified can not be an empty string")
    return VolumeCommand(volumes=volumes, **req.common())


def _parse_stopsignal(req: Request) -> StopsignalCommand:
    req.exactly_one()
    return StopsignalCommand(signal=req.args[0], **req.common())


def _parse_arg(req: Request) -> ArgCommand:
    req.at_least_one()
    args: list[tuple[str, str | None]] = []
    for word in req.args:
        key, eq, value = word.partition("=")
        if eq and not key:
            raise req.error("ARG names can not be blank")
        args.append((key, value if eq else None))
    return ArgCommand(args=args, **req.common())


def _parse_shell(req: Request) -> ShellCommand:
    req.parse_flags()
    if not req.args:
        raise req.error("SHELL requires at least one argument")
    if not req.json:
        raise req.error("SHELL requires the arguments to be in JSON form")
    return ShellCommand(shell=list(req.args), **req.common())


_PARSERS: dict[str, Callable[[Request], Command | Stage]] = {
    "add": _parse_add,
    "arg": _parse_arg,
    "cmd": _parse_cmd,
    "copy": _parse_copy,
    "entrypoint": _parse_entrypoint,
    "env": _parse_env,
    "expose": _parse_expose,
    "from": _parse_from,
    "healthcheck": _parse_healthcheck,
    "label": _parse_label,
    "maintainer": _parse_maintainer,
    "onbuild": _parse_onbuild,
    "run": _parse_run,
    "shell": _parse_shell,
    "stopsignal": _parse_stopsignal,
    "user": _parse_user,
    "volume": _parse_volume,
    "workdir": _parse_workdir,
}


def _node_args(node: Node) -> list[str]:
    # ONBUILD's arguments are the nested instruction's keyword and arguments
    if node.next is not None:
        return [node.next.value, *_node_args(node.next)]
    return list(node.args)


def parse_node(node: Node, filename: str = "Dockerfile") -> Command | Stage:
    """One parsed node -> its command (a Stage for FROM)."""
    location = Location(node.start_line, node.end_line)
    handler = _PARSERS.get(node.value)
    if handler is None:
        message = f"unknown instruction: {node.value.upper()}"
        close = difflib.get_close_matches(node.value, list(_PARSERS), n=1)
        if close:
            message += f" (did you mean {close[0].upper()}?)"
        raise DockerfileError(message, filename, node.start_line)
    req = Request(
        keyword=node.value.upper(), args=_node_args(node), json=node.json, flags=list(node.flags),
        original=node.original, location=location, heredocs=list(node.heredocs), filename=filename,
    )
    return handler(req)


def parse_dockerfile(result: ParseResult, filename: str = "Dockerfile") -> Dockerfile:
    """Group a parse result into meta ARGs and build stages."""
    meta_args: list[ArgCommand] = []
    stages: list[Stage] = []
    for node in result.children:
        command = parse_node(node, filename)
        if isinstance(command, Stage):
            stages.append(replace(command, index=len(stages)))
        elif not stages:
            if not isinstance(command, ArgCommand):
                raise DockerfileError("no build stage in current context", filename, node.start_line)
            meta_args.append(command)
        else:
            stages[-1].commands.append(command)
    return Dockerfile(meta_args=meta_args, stages=stages, escape=result.escape)


def parse_instruction_text(text: str, escape: str = "\\", filename: str = "Dockerfile") -> Command:
    """Parse one instruction given as text (an ONBUILD trigger, say)."""
    result = parse(text, filename, escape=escape)
    if len(result.children) != 1:
        raise DockerfileError("expected a single instruction", filename, result.children[1].start_line)
    command = parse_node(result.children[0], filename)
    if isinstance(command, Stage):
        raise DockerfileError("FROM cannot be used as a single build command", filename, command.location[0])
    return command

"""BuildKit's build checks, under BuildKit's rule names, in our own words.

Each check yields findings; the runner drops the ones the configuration
skips. Secrets and .dockerignore checks live in ``rules_security.py``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator

from ..dockerfile import instructions as ins
from ..errors import DockyardError
from ..reference import parse_reference
from .context import PLATFORM_ARGS, LintContext, iter_commands, var_refs
from .model import ERROR, Finding, rule

_RESERVED_STAGE_NAMES = ("context", "scratch")
_DIRECTIVE_LINE = re.compile(r"#\s*[A-Za-z][A-Za-z0-9]*\s*=")


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    if not close:
        close = [k for k in known if k.lower() == name.lower()]
    return f" (did you mean ${close[0]}?)" if close else ""


@rule("StageNameCasing", "Stage names should be lowercase")
def stage_name_casing(ctx: LintContext) -> Iterator[Finding]:
    for info in ctx.stages:
        if len(info.node.args) == 3:
            name = info.node.args[2]
            if name != name.lower():
                yield ctx.report("StageNameCasing", f"stage name '{name}' should be lowercase",
                                 ctx.stage_name_span(info))


@rule("FromAsCasing", "The 'as' keyword should match the case of the 'from' keyword")
def from_as_casing(ctx: LintContext) -> Iterator[Finding]:
    for info in ctx.stages:
        if len(info.node.args) != 3:
            continue
        keyword, as_word = ctx.keyword(info.node), info.node.args[1]
        if (keyword.isupper() and not as_word.isupper()) or (keyword.islower() and not as_word.islower()):
            span = ctx.locate(info.node, r"(?<=\s)" + re.escape(as_word) + r"(?=\s)")
            yield ctx.report("FromAsCasing", f"'{as_word}' and '{keyword}' are cased differently", span)


@rule("NoEmptyContinuation", "Empty continuation lines will become errors in a future release")
def no_empty_continuation(ctx: LintContext) -> Iterator[Finding]:
    for warning in ctx.result.warnings:
        if "continuation" not in warning.message.lower():
            continue
        span = ctx.keyword_span(warning.line)
        node = next((n for n in ctx.result.children if n.start_line <= warning.line <= n.end_line), None)
        if node is not None:  # point at the empty line itself
            blank = next((n for n in range(node.start_line + 1, node.end_line + 1)
                          if not ctx.lines[n - 1].strip()), None)
            span = (blank, 1, blank, 1) if blank else span
        yield ctx.report("NoEmptyContinuation",
                         "empty line inside a continued instruction (an error in future releases)", span)


@rule("ConsistentInstructionCasing", "Instructions should be all upper case or all lower case")
def consistent_instruction_casing(ctx: LintContext) -> Iterator[Finding]:
    words = [(node, ctx.keyword(node)) for node in ctx.result.children]
    upper = sum(1 for _, w in words if w.isupper())
    lower = sum(1 for _, w in words if w.islower())
    majority = "lowercase" if lower > upper else "uppercase"
    for node, word in words:
        span = ctx.keyword_span(node.start_line)
        if not (word.isupper() or word.islower()):
            yield ctx.report("ConsistentInstructionCasing",
                             f"instruction '{word}' mixes upper and lower case", span)
        elif (majority == "lowercase") != word.islower():
            yield ctx.report("ConsistentInstructionCasing",
                             f"instruction '{word}' should be {majority} like most instructions here", span)


@rule("DuplicateStageName", "Stage names should be unique", severity=ERROR)
def duplicate_stage_name(ctx: LintContext) -> Iterator[Finding]:
    seen: dict[str, int] = {}
    for info in ctx.stages:
        name = info.stage.name
        if not name:
            continue
        if name in seen:
            yield ctx.report("DuplicateStageName",
                             f"stage name '{name}' is already used on line {seen[name]}",
                             ctx.stage_name_span(info))
        else:
            seen[name] = info.node.start_line


@rule("ReservedStageName", "Reserved words should not be used as stage names")
def reserved_stage_name(ctx: LintContext) -> Iterator[Finding]:
    for info in ctx.stages:
        if info.stage.name in _RESERVED_STAGE_NAMES:
            yield ctx.report("ReservedStageName",
                             f"'{info.stage.name}' is a reserved word and should not name a stage",
                             ctx.stage_name_span(info))


@rule("JSONArgsRecommended",
      "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals")
def json_args_recommended(ctx: LintContext) -> Iterator[Finding]:
    for _, cmd in iter_commands(ctx):
        if isinstance(cmd, (ins.CmdCommand, ins.EntrypointCommand)) and cmd.prepend_shell and cmd.cmd:
            if ctx.before[cmd.location.start_line].shell_set:
                continue  # an explicit SHELL says the shell is wanted
            kw = cmd.keyword.upper()
            yield ctx.report("JSONArgsRecommended",
                             f"use the JSON form for {kw} (e.g. {kw} [\"prog\", \"arg\"]) so the process "
                             "receives OS signals itself", ctx.keyword_span(cmd.location.start_line))


@rule("MaintainerDeprecated",
      "The MAINTAINER instruction is deprecated, use a label instead to define an image author")
def maintainer_deprecated(ctx: LintContext) -> Iterator[Finding]:
    for _, cmd in iter_commands(ctx):
        if isinstance(cmd, ins.MaintainerCommand):
            yield ctx.report("MaintainerDeprecated", "MAINTAINER is deprecated: set the "
                             "org.opencontainers.image.authors label instead",
                             ctx.keyword_span(cmd.location.start_line))


@rule("UndefinedArgInFrom", "FROM command must use declared ARGs")
def undefined_arg_in_from(ctx: LintContext) -> Iterator[Finding]:
    known = ctx.meta_declared | set(PLATFORM_ARGS)
    for info in ctx.stages:
        words = [info.stage.base_name] + ([info.stage.platform] if info.stage.platform else [])
        reported: set[str] = set()
        for word in words:
            for ref in var_refs(word, ctx.escape):
                if ref.name in known or ref.name in reported:
                    continue
                reported.add(ref.name)
                yield ctx.report("UndefinedArgInFrom",
                                 f"FROM uses ${ref.name}, but no ARG before the first FROM declares it"
                                 + _did_you_mean(ref.name, known),
                                 ctx.locate(info.node, r"\$\{?" + ref.name + r"\b"))


@rule("InvalidDefaultArgInFrom", "Default value for global ARG results in an empty or invalid base image name")
def invalid_default_arg_in_from(ctx: LintContext) -> Iterator[Finding]:
    env = {**PLATFORM_ARGS, **{k: v or "" for k, v in ctx.meta.items()}}
    for info in ctx.stages:
        base = info.stage.base_name
        if "$" not in base:
            continue
        value = ctx.expand(base, env)
        if value is None or ctx.stage_index(value, info.index) is not None or value.lower() == "scratch":
            continue
        why = "it is empty" if not value else ""
        if value:
            try:
                parse_reference(value, default_tag=None)
            except DockyardError:
                why = f"'{value}' is not a valid image name"
        if why:
            yield ctx.report("InvalidDefaultArgInFrom",
                             f"with the global ARGs' default values FROM {base} names no image: {why}",
                             ctx.word_span(info.node, base))


@rule("FromPlatformFlagConstDisallowed", "FROM --platform flag should not use a constant value")
def from_platform_flag_const(ctx: LintContext) -> Iterator[Finding]:
    for info in ctx.stages:
        plat = info.stage.platform
        if not plat or "$" in plat:
            continue
        parts = [p for p in re.split(r"[/,]", plat.lower()) if p]
        if info.stage.name and any(p in info.stage.name for p in parts[1:] or parts):
            continue  # a stage named for its platform is meant to be platform-specific
        yield ctx.report("FromPlatformFlagConstDisallowed",
                         f"FROM --platform={plat} pins a constant platform; "
                         "leave it out or use a variable such as $BUILDPLATFORM",
                         ctx.locate(info.node, r"--platform=\S*"))


@rule("RedundantTargetPlatform",
      "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior")
def redundant_target_platform(ctx: LintContext) -> Iterator[Finding]:
    for info in ctx.stages:
        if info.stage.platform in ("$TARGETPLATFORM", "${TARGETPLATFORM}"):
            yield ctx.report("RedundantTargetPlatform",
                             "--platform=$TARGETPLATFORM is the default and can be left out",
                             ctx.locate(info.node, r"--platform=\S*"))


@rule("WorkdirRelativePath", "Relative workdir without an absolute workdir declared within the build "
      "can have unexpected results if the base image changes")
def workdir_relative_path(ctx: LintContext) -> Iterator[Finding]:
    for _, cmd in iter_commands(ctx):
        if not isinstance(cmd, ins.WorkdirCommand):
            continue
        state = ctx.before[cmd.location.start_line]
        path = ctx.expand(cmd.path, state.env)
        if path is not None and not path.startswith("/") and not state.absolute_workdir:
            yield ctx.report("WorkdirRelativePath",
                             f"relative WORKDIR '{cmd.path}' depends on the base image's working "
                             "directory; set an absolute one first", ctx.word_span(ctx.node(cmd), cmd.path))


def _expanded_words(cmd) -> list[str]:
    """The words BuildKit expands for a command (RUN, CMD and friends are left to the shell)."""
    if isinstance(cmd, (ins.EnvCommand, ins.LabelCommand)):
        return [w for pair in cmd.pairs for w in pair]
    if isinstance(cmd, ins.ArgCommand):
        return [d for _, d in cmd.args if d is not None]
    if isinstance(cmd, (ins.CopyCommand, ins.AddCommand)):
        extra = [cmd.chown, cmd.chmod, getattr(cmd, "from_", None), getattr(cmd, "checksum", None)]
        return [*cmd.sources, cmd.dest, *(w for w in extra if w)]
    single = {ins.WorkdirCommand: "path", ins.UserCommand: "user", ins.StopsignalCommand: "signal"}
    for kind, attr in single.items():
        if isinstance(cmd, kind):
            return [getattr(cmd, attr)]
    if isinstance(cmd, ins.VolumeCommand):
        return list(cmd.volumes)
    if isinstance(cmd, ins.ExposeCommand):
        return list(cmd.ports)
    return []


@rule("UndefinedVar", "Variables should be defined before their use")
def undefined_var(ctx: LintContext) -> Iterator[Finding]:
    for _, cmd in iter_commands(ctx):
        known = ctx.before[cmd.location.start_line].env
        reported: set[str] = set()
        for word in _expanded_words(cmd):
            for ref in var_refs(word, ctx.escape):
                if ref.guarded or ref.name in known or ref.name in reported:
                    continue
                reported.add(ref.name)
                yield ctx.report("UndefinedVar",
                                 f"variable ${ref.name} is used but not defined by an ARG or ENV before it"
                                 + _did_you_mean(ref.name, known),
                                 ctx.locate(ctx.node(cmd), r"\$\{?" + ref.name + r"\b"))


@rule("MultipleInstructionsDisallowed",
      "Multiple instructions of the same type should not be used in the same stage")
def multiple_instructions(ctx: LintContext) -> Iterator[Finding]:
    kinds = (ins.CmdCommand, ins.EntrypointCommand, ins.HealthcheckCommand)
    for info in ctx.stages:
        for kind in kinds:
            found = [c for c in info.stage.commands if isinstance(c, kind)]
            for cmd in found[:-1]:
                kw = cmd.keyword.upper()
                yield ctx.report("MultipleInstructionsDisallowed",
                                 f"this {kw} has no effect: the {kw} on line "
                                 f"{found[-1].location.start_line} replaces it",
                                 ctx.keyword_span(cmd.location.start_line))


@rule("LegacyKeyValueFormat", "Legacy key/value format with whitespace separator should not be used")
def legacy_key_value_format(ctx: LintContext) -> Iterator[Finding]:
    for _, cmd in iter_commands(ctx):
        if isinstance(cmd, (ins.EnvCommand, ins.LabelCommand)) and cmd.legacy:
            kw = cmd.keyword.upper()
            yield ctx.report("LegacyKeyValueFormat",
                             f'write "{kw} key=value"; the legacy "{kw} key value" form is deprecated',
                             ctx.keyword_span(cmd.location.start_line))


@rule("ExposeProtoCasing", "Protocol in EXPOSE instruction should be lowercase")
def expose_proto_casing(ctx: LintContext) -> Iterator[Finding]:
    for _, cmd in iter_commands(ctx):
        if isinstance(cmd, ins.ExposeCommand):
            for port in cmd.ports:
                proto = port.rpartition("/")[2] if "/" in port else ""
                if proto and proto != proto.lower() and "$" not in proto:
                    yield ctx.report("ExposeProtoCasing", f"protocol in '{port}' should be lowercase",
                                     ctx.word_span(ctx.node(cmd), port))


@rule("ExposeInvalidFormat", "IP address and host-port mapping should not be used in EXPOSE instruction. "
      "This will become an error in a future release")
def expose_invalid_format(ctx: LintContext) -> Iterator[Finding]:
    for _, cmd in iter_commands(ctx):
        if isinstance(cmd, ins.ExposeCommand):
            for port in cmd.ports:
                if ":" in port:
                    yield ctx.report("ExposeInvalidFormat",
                                     f"EXPOSE takes container ports only, not an address or host "
                                     f"mapping: '{port}'", ctx.word_span(ctx.node(cmd), port))


def _comment_block(ctx: LintContext, line: int) -> list[str]:
    """The comment lines right above ``line`` (no blank line between), top first."""
    out: list[str] = []
    n = line - 1
    while n >= 1 and ctx.lines[n - 1].lstrip().startswith("#"):
        out.insert(0, ctx.lines[n - 1].lstrip()[1:].strip())
        n -= 1
    # parser directives at the top of the file are not descriptions
    if n == 0:
        while out and _DIRECTIVE_LINE.match("#" + out[0]):
            out.pop(0)
    return out


@rule("InvalidDefinitionDescription", "Comment for build stage or argument should follow the format: "
      "`# <arg/stage name> <description>`", experimental=True)
def invalid_definition_description(ctx: LintContext) -> Iterator[Finding]:
    targets = [(info.node.start_line, info.stage.name) for info in ctx.stages if info.stage.name]
    args = list(ctx.df.meta_args) + [c for _, c in iter_commands(ctx) if isinstance(c, ins.ArgCommand)]
    targets += [(a.location.start_line, a.args[0][0]) for a in args if len(a.args) == 1]
    for line, name in targets:
        block = _comment_block(ctx, line)
        if block and block[0].split(None, 1)[:1] != [name]:
            yield ctx.report("InvalidDefinitionDescription",
                             f"a comment right above '{name}' should start with '{name}' to describe "
                             "it; separate other comments with a blank line", ctx.keyword_span(line))

"""Tests for dockyard.dockerfile.instructions: typed commands from parsed nodes."""

from __future__ import annotations

import dataclasses

import pytest

from dockyard.dockerfile import instructions as ins
from dockyard.dockerfile.parser import parse
from dockyard.errors import DockerfileError


def commands(body: str) -> list[ins.Command]:
    """Commands of a one-stage Dockerfile whose first line is FROM."""
    df = ins.parse_dockerfile(parse("FROM base\n" + body))
    return df.stages[0].commands


def one(body: str) -> ins.Command:
    (command,) = commands(body)
    return command


def error(body: str) -> DockerfileError:
    with pytest.raises(DockerfileError) as info:
        ins.parse_dockerfile(parse("FROM base\n" + body, "Dockerfile"))
    return info.value


def upper(word: str) -> str:
    return word.upper()


# --- stages ---------------------------------------------------------------


def test_from_and_stages() -> None:
    text = "ARG V=1\nARG A B=2\nFROM --platform=$P img:$V AS Build\nRUN x\nfrom scratch\n"
    df = ins.parse_dockerfile(parse(text))
    assert [a.args for a in df.meta_args] == [[("V", "1")], [("A", None), ("B", "2")]]
    first, second = df.stages
    assert (first.name, first.base_name, first.platform, first.index) == ("build", "img:$V", "$P", 0)
    assert first.location == (3, 3) and first.original == "FROM --platform=$P img:$V AS Build"
    assert [c.name for c in first.commands] == ["run"]
    assert (second.name, second.base_name, second.platform, second.index) == (None, "scratch", None, 1)
    assert second.commands == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("FROM", "FROM requires either one or three arguments"),
        ("FROM a b", "FROM requires either one or three arguments"),
        ("FROM a AS 1x", 'invalid name for build stage: "1x", name can\'t start with a number or contain symbols'),
        ("FROM --plat=x a", "unknown flag: --plat for FROM (did you mean --platform?)"),
    ],
)
def test_from_errors(line: str, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        ins.parse_dockerfile(parse("FROM ok\n" + line))
    assert str(info.value) == f"Dockerfile:2: {message}"


def test_command_before_from() -> None:
    with pytest.raises(DockerfileError) as info:
        ins.parse_dockerfile(parse("ARG a\nRUN x\nFROM y\n"))
    assert str(info.value) == "Dockerfile:2: no build stage in current context"


def test_unknown_instruction() -> None:
    with pytest.raises(DockerfileError) as info:
        ins.parse_dockerfile(parse("FROM x\n\nFORM y\n"), "app/Dockerfile")
    assert str(info.value) == "app/Dockerfile:3: unknown instruction: FORM (did you mean FROM?)"


def test_commands_are_frozen() -> None:
    command = one("USER me")
    with pytest.raises(dataclasses.FrozenInstanceError):
        command.user = "other"  # type: ignore[misc]


# --- one test per instruction ------------------------------------------


def test_run() -> None:
    shell, exec_form, mounted = commands(
        "RUN echo $HOME \\\n  && true\n"
        'RUN ["echo", "$HOME"]\n'
        "RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t --network=none --security=insecure "
        "--device=/dev/fuse true\n"
    )
    assert isinstance(shell, ins.RunCommand)
    assert shell.cmd == ["echo $HOME   && true"] and shell.prepend_shell
    assert shell.location == (2, 3) and shell.original == "RUN echo $HOME   && true"
    assert exec_form.cmd == ["echo", "$HOME"] and not exec_form.prepend_shell
    assert mounted.mounts == ["type=cache,target=/c", "type=tmpfs,target=/t"]
    assert (mounted.network, mounted.security, mounted.devices) == ("none", "insecure", ["/dev/fuse"])
    assert not hasattr(shell, "expand")
    assert str(error("RUN --network=bridge x")) == 'Dockerfile:2: unsupported network mode "bridge"'
    assert str(error("RUN --security=x y")) == 'Dockerfile:2: unsupported security mode "x"'
    assert str(error("RUN --network x")) == "Dockerfile:2: missing a value on flag: --network"


def test_run_heredoc() -> None:
    run = one("RUN <<-EOF bash\n\techo $A\n\tEOF\n")
    assert isinstance(run, ins.RunCommand)
    assert run.cmd == ["<<-EOF bash"] and run.prepend_shell
    (doc,) = run.heredocs
    assert (doc.name, doc.content, doc.chomp, doc.expand) == ("EOF", "\techo $A\n", True, True)
    assert run.location == (2, 4)


def test_cmd() -> None:
    shell, exec_form, empty = commands('CMD echo "hi"\nCMD ["a", "b c"]\nCMD []\n')
    assert isinstance(shell, ins.CmdCommand)
    assert (shell.cmd, shell.prepend_shell) == (['echo "hi"'], True)
    assert (exec_form.cmd, exec_form.prepend_shell) == (["a", "b c"], False)
    assert (empty.cmd, empty.prepend_shell) == ([], False)
    assert str(error("CMD --x a")) == "Dockerfile:2: unknown flag: --x for CMD"


def test_entrypoint() -> None:
    shell, exec_form = commands("ENTRYPOINT exec top -b\nENTRYPOINT [\"top\", \"-b\"]\n")
    assert isinstance(shell, ins.EntrypointCommand)
    assert (shell.cmd, shell.prepend_shell) == (["exec top -b"], True)
    assert (exec_form.cmd, exec_form.prepend_shell) == (["top", "-b"], False)


def test_env() -> None:
    new, old = commands('ENV A=1 B="x y" C=\nENV D two words\n')
    assert isinstance(new, ins.EnvCommand)
    assert new.pairs == [("A", "1"), ("B", '"x y"'), ("C", "")] and not new.legacy
    assert old.pairs == [("D", "two words")] and old.legacy
    assert new.expand(upper).pairs == [("A", "1"), ("B", '"X Y"'), ("C", "")]
    assert str(error("ENV")) == "Dockerfile:2: ENV requires at least one argument"
    assert str(error("ENV =x")) == "Dockerfile:2: ENV names can not be blank"
    assert str(error("ENV A")) == "Dockerfile:2: ENV must have two arguments"


def test_label() -> None:
    new, old = commands('LABEL a.b="c d" e=f\nLABEL maintainer Some One\n')
    assert isinstance(new, ins.LabelCommand)
    assert new.pairs == [("a.b", '"c d"'), ("e", "f")] and not new.legacy
    assert old.pairs == [("maintainer", "Some One")] and old.legacy
    assert new.expand(lambda w: w.strip('"')).pairs == [("a.b", "c d"), ("e", "f")]
    assert str(error("LABEL")) == "Dockerfile:2: LABEL requires at least one argument"


def test_maintainer() -> None:
    command = one("MAINTAINER Jane Doe <jane@example.com>")
    assert isinstance(command, ins.MaintainerCommand)
    assert command.maintainer == "Jane Doe <jane@example.com>"
    assert not hasattr(command, "expand")
    assert str(error("MAINTAINER")) == "Dockerfile:2: MAINTAINER requires exactly one argument"


def test_expose() -> None:
    command = one("EXPOSE 8080 $PORTS 80/udp")
    assert isinstance(command, ins.ExposeCommand)
    assert command.ports == ["$PORTS", "80/udp", "8080"]  # sorted as strings, like BuildKit
    expanded = command.expand_words(lambda w: ["1", "2"] if w == "$PORTS" else [w])
    assert expanded.ports == ["1", "2", "80/udp", "8080"]
    assert str(error("EXPOSE")) == "Dockerfile:2: EXPOSE requires at least one argument"


def test_arg() -> None:
    command = one('ARG A B=2 C="x y" D=')
    assert isinstance(command, ins.ArgCommand)
    assert command.args == [("A", None), ("B", "2"), ("C", '"x y"'), ("D", "")]
    assert command.expand(upper).args == [("A", None), ("B", "2"), ("C", '"X Y"'), ("D", "")]
    assert str(error("ARG")) == "Dockerfile:2: ARG requires at least one argument"
    assert str(error("ARG =1")) == "Dockerfile:2: ARG names can not be blank"


def test_copy() -> None:
    command = one(
        "COPY --from=build --chown=u:g --chmod=644 --link --parents --exclude=*.md --exclude=x "
        "a $B /dest/"
    )
    assert isinstance(command, ins.CopyCommand)
    assert (command.sources, command.dest) == (["a", "$B"], "/dest/")
    assert (command.from_, command.chown, command.chmod) == ("build", "u:g", "644")
    assert command.link and command.parents and command.excludes == ["*.md", "x"]
    plain = one('COPY ["a b", "/c"]')
    assert (plain.sources, plain.dest, plain.from_, plain.chown, plain.link) == (["a b"], "/c", None, None, False)
    expanded = command.expand(upper)
    assert (expanded.sources, expanded.dest, expanded.from_) == (["A", "$B"], "/DEST/", "BUILD")
    assert (expanded.chown, expanded.chmod, expanded.excludes) == ("U:G", "644", ["*.md", "x"])
    assert command.sources == ["a", "$B"]  # expand returns a new command
    assert str(error("COPY a")) == (
        "Dockerfile:2: COPY requires at least two arguments, but only one was provided. "
        "Destination could not be determined."
    )
    assert str(error("COPY --frm=x a b")) == "Dockerfile:2: unknown flag: --frm for COPY (did you mean --from?)"
    assert str(error("COPY --link=maybe a b")) == "Dockerfile:2: expecting boolean value for flag --link, not: maybe"
    assert str(error("COPY --from=a --from=b a b")) == "Dockerfile:2: duplicate flag specified: --from"


def test_copy_heredocs() -> None:
    command = one("COPY <<-A <<'B' src /dst\n\tone $X\nA\ntwo $X\nB\n")
    assert isinstance(command, ins.CopyCommand)
    assert command.sources == ["src"] and command.dest == "/dst"
    assert [(h.path, h.data, h.expand) for h in command.heredocs] == [("A", "one $X\n", True), ("B", "two $X\n", False)]
    raw = command.expand_raw(lambda data: data.replace("$X", "1"))
    assert [h.data for h in raw.heredocs] == ["one 1\n", "two $X\n"]
    assert str(error("COPY a <<EOF\nEOF")) == "Dockerfile:2: COPY cannot accept a heredoc as a destination"


def test_add() -> None:
    command = one(
        "ADD --chown=1 --chmod=755 --link --keep-git-dir=true --checksum=sha256:$SUM --unpack "
        "--exclude=.git https://x/y.tar /opt/"
    )
    assert isinstance(command, ins.AddCommand)
    assert (command.sources, command.dest) == (["https://x/y.tar"], "/opt/")
    assert (command.chown, command.chmod, command.checksum) == ("1", "755", "sha256:$SUM")
    assert command.link and command.keep_git_dir and command.unpack is True
    assert command.excludes == [".git"]
    assert one("ADD a b").unpack is None
    assert one("ADD --unpack=false a b").unpack is False
    expanded = command.expand(lambda w: w.replace("$SUM", "abc"))
    assert expanded.checksum == "sha256:abc"
    assert str(error("ADD --from=x a b")) == "Dockerfile:2: unknown flag: --from for ADD"
    assert str(error("ADD")) == (
        "Dockerfile:2: ADD requires at least two arguments, but only one was provided. "
        "Destination could not be determined."
    )


def test_volume() -> None:
    shell, exec_form = commands('VOLUME /a $B\nVOLUME ["/c", "/d e"]\n')
    assert isinstance(shell, ins.VolumeCommand)
    assert shell.volumes == ["/a", "$B"] and exec_form.volumes == ["/c", "/d e"]
    assert shell.expand(upper).volumes == ["/A", "$B"]
    assert str(error('VOLUME [" "]')) == "Dockerfile:2: VOLUME specified can not be an empty string"
    assert str(error("VOLUME []")) == "Dockerfile:2: VOLUME requires at least one argument"


def test_user() -> None:
    command = one("USER ${U}:grp")
    assert isinstance(command, ins.UserCommand)
    assert command.user == "${U}:grp"
    assert command.expand(lambda w: w.replace("${U}", "app")).user == "app:grp"
    assert str(error("USER")) == "Dockerfile:2: USER requires exactly one argument"


def test_workdir() -> None:
    command = one("WORKDIR /app/$D")
    assert isinstance(command, ins.WorkdirCommand)
    assert command.path == "/app/$D"
    assert command.expand(upper).path == "/APP/$D"
    assert str(error("WORKDIR")) == "Dockerfile:2: WORKDIR requires exactly one argument"


def test_stopsignal() -> None:
    command = one("STOPSIGNAL $SIG")
    assert isinstance(command, ins.StopsignalCommand)
    assert command.signal == "$SIG"
    assert command.expand(lambda w: "SIGTERM").signal == "SIGTERM"
    assert str(error("STOPSIGNAL")) == "Dockerfile:2: STOPSIGNAL requires exactly one argument"


def test_healthcheck() -> None:
    shell, exec_form, none = commands(
        "HEALTHCHECK --interval=1m30s --timeout=1.5s --start-period=2ms --start-interval=0s --retries=3 \\\n"
        "  CMD curl -f http://localhost/\n"
        'HEALTHCHECK cmd ["curl", "-f"]\n'
        "HEALTHCHECK NONE\n"
    )
    assert isinstance(shell, ins.HealthcheckCommand)
    assert shell.test == ["CMD-SHELL", "curl -f http://localhost/"]
    assert (shell.interval, shell.timeout, shell.start_period, shell.start_interval, shell.retries) == (
        90_000_000_000, 1_500_000_000, 2_000_000, 0, 3)
    assert exec_form.test == ["CMD", "curl", "-f"]
    assert exec_form.interval == 0 and exec_form.retries == 0
    assert none.test == ["NONE"]
    assert not hasattr(shell, "expand")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK CONNECT tcp", 'Unknown type "CONNECT" in HEALTHCHECK (try CMD)'),
        ("HEALTHCHECK --interval=5 CMD a", 'time: missing unit in duration "5"'),
        ("HEALTHCHECK --interval=5x CMD a", 'time: unknown unit "x" in duration "5x"'),
        ("HEALTHCHECK --timeout=1us CMD a", 'Interval "timeout" cannot be less than 1ms'),
        ("HEALTHCHECK --retries=-1 CMD a", "--retries cannot be negative (-1)"),
        ("HEALTHCHECK --retries=x CMD a", 'strconv.ParseInt: parsing "x": invalid syntax'),
        ("HEALTHCHECK --port=1 CMD a", "unknown flag: --port for HEALTHCHECK"),
    ],
)
def test_healthcheck_errors(line: str, message: str) -> None:
    assert str(error(line)) == f"Dockerfile:2: {message}"


def test_shell() -> None:
    command = one('SHELL ["powershell", "-command"]')
    assert isinstance(command, ins.ShellCommand)
    assert command.shell == ["powershell", "-command"]
    assert not hasattr(command, "expand")
    assert str(error("SHELL /bin/sh -c")) == "Dockerfile:2: SHELL requires the arguments to be in JSON form"
    assert str(error("SHELL []")) == "Dockerfile:2: SHELL requires at least one argument"


def test_onbuild() -> None:
    run, copy, heredoc = commands(
        "ONBUILD RUN echo hi\n  onbuild   COPY --from=x a b\nONBUILD RUN <<EOF\necho body\nEOF\n"
    )
    assert isinstance(run, ins.OnbuildCommand)
    assert run.expression == "RUN echo hi"
    assert copy.expression == "COPY --from=x a b"
    assert heredoc.expression == "RUN <<EOF\necho body\nEOF"
    trigger = ins.parse_instruction_text(heredoc.expression)
    assert isinstance(trigger, ins.RunCommand) and trigger.heredocs[0].content == "echo body\n"
    assert str(error("ONBUILD")) == "Dockerfile:2: ONBUILD requires at least one argument"
    assert str(error("ONBUILD ONBUILD RUN x")) == "Dockerfile:2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    assert str(error("ONBUILD FROM x")) == "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"
    assert str(error("ONBUILD maintainer x")) == "Dockerfile:2: MAINTAINER isn't allowed as an ONBUILD trigger"


# --- helpers and cross-cutting rules --------------------------------------


def test_parse_instruction_text() -> None:
    command = ins.parse_instruction_text("COPY --chown=1 a b")
    assert isinstance(command, ins.CopyCommand) and command.chown == "1"
    assert command.location == (1, 1) and command.original == "COPY --chown=1 a b"
    command = ins.parse_instruction_text("RUN a `\n b", escape="`")
    assert command.cmd == ["a  b"]
    with pytest.raises(DockerfileError, match="unknown instruction: NOPE"):
        ins.parse_instruction_text("NOPE x")
    with pytest.raises(DockerfileError, match="single instruction"):
        ins.parse_instruction_text("RUN a\nRUN b")


def test_bool_flags_and_double_dash() -> None:
    assert one("COPY --link=TRUE a b").link is True
    assert one("COPY --link=false a b").link is False
    assert one("COPY --link -- a b").sources == ["a"]
    assert str(error("COPY --link= a b")) == "Dockerfile:2: missing a value on flag: --link"


def test_flags_ignored_where_buildkit_ignores_them() -> None:
    assert one("STOPSIGNAL --x SIGINT").signal == "SIGINT"
    assert one("ARG --x a").args == [("a", None)]
    assert one("HEALTHCHECK --bogus NONE").test == ["NONE"]


def test_json_form_heredoc_word_is_empty_inline_file() -> None:
    command = one('COPY ["<<EOF", "/dst"]')
    assert command.sources == [] and command.heredocs == [ins.SourceContent("EOF", "", True)]


def test_expand_errors_propagate() -> None:
    def fail(word: str) -> str:
        raise DockerfileError(f"bad {word}")

    with pytest.raises(DockerfileError, match="bad /x"):
        one("WORKDIR /x").expand(fail)


def test_location_and_original_on_every_command() -> None:
    body = (
        "RUN a\nCMD b\nLABEL a=b\nMAINTAINER m\nEXPOSE 1\nENV a=b\nADD a b\nCOPY a b\n"
        "ENTRYPOINT e\nVOLUME /v\nUSER u\nWORKDIR /w\nARG a\nONBUILD RUN x\nSTOPSIGNAL 9\n"
        "HEALTHCHECK NONE\nSHELL [\"sh\"]\n"
    )
    found = commands(body)
    assert len(found) == 17
    for line, command in enumerate(found, 2):
        assert command.location == (line, line)
        assert command.original == body.splitlines()[line - 2]
        assert command.name == command.original.split()[0].lower()

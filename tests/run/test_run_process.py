"""The container's process: command, environment, user, working directory, exit codes."""

from __future__ import annotations

import pytest

from dockyard.container import InvalidOption
from dockyard.errors import ContainerRuntimeError
from dockyard.runtime.runc import ContainerStartError

pytestmark = pytest.mark.root


@pytest.fixture
def app_image(derive_image):
    return derive_image("app:1", config={
        "Entrypoint": ["/bin/sh", "-c", 'echo "ep:$0:$*"', "first"], "Cmd": ["c1", "c2"],
        "Env": ["PATH=/usr/bin:/bin", "GREETING=hello world", "EMPTY="],
        "User": "app", "WorkingDir": "/home/app/work"})


def test_output_and_exit_code(ctr_run):
    result = ctr_run("sh", "-c", "echo out; echo err >&2; exit 7")
    assert (result.code, result.out, result.err) == (7, "out\n", "err\n")


def test_entrypoint_cmd_rules(ctr_run, app_image):
    assert ctr_run(image=app_image).out == "ep:first:c1 c2\n"
    assert ctr_run("x", "y", image=app_image).out == "ep:first:x y\n"
    # --entrypoint replaces ENTRYPOINT and the image's CMD is dropped.
    assert ctr_run(image=app_image, entrypoint="/bin/echo").out == "\n"
    assert ctr_run("a", "b", image=app_image, entrypoint="/bin/echo").out == "a b\n"
    assert ctr_run("echo", "plain", image=app_image, entrypoint="").out == "plain\n"
    with pytest.raises(InvalidOption, match="no command specified"):
        ctr_run(image=app_image, entrypoint="")


def test_image_env_user_and_workdir(ctr_run, app_image):
    out = ctr_run("-c", 'echo "$GREETING|$EMPTY|$PATH|$HOME|$(id -u):$(id -g)|$(pwd)"',
                  image=app_image, entrypoint="/bin/sh").out
    assert out == "hello world||/usr/bin:/bin|/home/app|1000:1000|/home/app/work\n"


def test_env_flags_override_the_image(ctr_run, app_image):
    out = ctr_run("-c", 'echo "$GREETING|$NEW|$HOME"', image=app_image, entrypoint="/bin/sh",
                  env=["GREETING=hi", "NEW=1", "HOME=/h"]).out
    assert out == "hi|1|/h\n"


def test_hostname_env_and_defaults(ctr_run):
    result = ctr_run("sh", "-c", 'echo "$HOSTNAME $(hostname) $PATH $HOME"', hostname="box1")
    assert result.out == "box1 box1 /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /root\n"
    default = ctr_run("hostname")
    assert default.out.strip() == default.id[:12]


def test_user_flag_with_names_from_the_image(ctr_run):
    assert ctr_run("sh", "-c", "id -u; id -g; id -G", user="app").out.split() == ["1000", "1000", "1000", "50"]
    assert ctr_run("sh", "-c", "id -u; id -g", user="app:staff").out.split() == ["1000", "50"]
    assert ctr_run("sh", "-c", "id -u; id -g", user="4242:4343").out.split() == ["4242", "4343"]
    assert ctr_run("sh", "-c", "echo $HOME", user="nobody").out == "/nonexistent\n"
    with pytest.raises(ContainerRuntimeError, match="unable to find user nosuch"):
        ctr_run("true", user="nosuch")


def test_workdir_flag_is_created(ctr_run):
    assert ctr_run("pwd", workdir="/new/dir").out == "/new/dir\n"
    with pytest.raises(InvalidOption, match="absolute path"):
        ctr_run("pwd", workdir="relative")


def test_start_errors_give_dockers_exit_codes(ctr_run):
    with pytest.raises(ContainerStartError) as missing:
        ctr_run("no-such-command")
    assert missing.value.exit_code == 127
    with pytest.raises(ContainerStartError) as not_exec:
        ctr_run("/etc/passwd")
    assert not_exec.value.exit_code == 126


def test_stdin_with_interactive(ctr_run):
    assert ctr_run("sh", "-c", "tr a-z A-Z", stdin=b"shout\n").out == "SHOUT\n"
    # Without -i the process reads an empty stdin.
    assert ctr_run("sh", "-c", "cat; echo done").out == "done\n"


def test_cli_exit_codes(dy):
    assert dy("run", "--rm", "busybox", "sh", "-c", "exit 42").returncode == 42
    assert dy("run", "--rm", "busybox", "no-such-command").returncode == 127
    assert dy("run", "--rm", "busybox", "/etc/passwd").returncode == 126
    bad = dy("run", "--rm", "-w", "rel", "busybox", "true")
    assert bad.returncode == 125 and "absolute path" in bad.stderr
    assert dy("run", "--rm", "no-such-image:1", "true").returncode == 125


def test_cli_env_and_env_file(dy, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# settings\nFROM_FILE=file value\nOVERRIDDEN=file\nFROM_HOST\n")
    dy.env["FROM_HOST"] = "host value"
    proc = dy("run", "--rm", "--env-file", str(env_file), "-e", "OVERRIDDEN=flag", "-e", "FROM_HOST",
              "-e", "UNSET_HERE", "busybox", "sh", "-c",
              'echo "$FROM_FILE|$OVERRIDDEN|$FROM_HOST|${UNSET_HERE-unset}"')
    assert proc.stdout == "file value|flag|host value|unset\n"


def test_cli_flags_reach_the_container(dy):
    proc = dy("run", "--rm", "-h", "myhost", "--workdir", "/w", "--security-opt", "no-new-privileges",
              "--cap-drop", "ALL", "--read-only", "--tmpfs", "/w", "--network", "none", "--user", "app",
              "busybox", "sh", "-c", "hostname; pwd; id -u; grep -E '^(NoNewPrivs|CapEff)' /proc/self/status; "
              "touch /w/ok && ls /w; touch /x || true; ip -o link | wc -l")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["myhost", "/w", "1000", "CapEff:", "0000000000000000", "NoNewPrivs:", "1",
                                   "ok", "1"]
    assert "Read-only file system" in proc.stderr


def test_name_is_unique(dy):
    assert dy("run", "--name", "only-one", "busybox", "true").returncode == 0
    again = dy("run", "--name", "only-one", "busybox", "true")
    assert again.returncode == 125 and "already in use" in again.stderr
    assert dy("rm", "only-one").returncode == 0
    assert dy("run", "--rm", "--name", "only-one", "busybox", "true").returncode == 0

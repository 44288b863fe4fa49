"""`docker run` details of issue #3: -it without a terminal, -p with the host
network, a detached start that fails, and logs of foreground containers.

Each behaviour is pinned here; the tests marked slow check it against Docker.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import shlex
import subprocess
import termios
import time

import pytest

from dockyard import container as ops

pytestmark = pytest.mark.root

NOT_A_TTY = "the input device is not a TTY\n"
HOST_PORTS_WARNING = "WARNING: Published ports are discarded when using host network mode\n"
CONTAINER_ID = re.compile(r"[0-9a-f]{64}\n")


def _names(dy) -> set[str]:
    return {c.name for c in ops.list_containers(dy.root, all_=True)}


# -it with a stdin that is not a terminal

def test_interactive_tty_needs_a_terminal(dy):
    for flags in (["-it"], ["-i", "-t", "--rm"], ["-ti", "--name", "no-tty"]):
        proc = dy("run", *flags, "busybox", "true", input="")
        assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", NOT_A_TTY)
    assert "no-tty" not in _names(dy)  # refused before anything was created
    # Refused even before the image is looked up, as Docker does.
    assert dy("run", "-it", "no-such-image:1", "true", input="").stderr == NOT_A_TTY
    # Detached, or without -i, there is no input to read: fine.
    assert dy("run", "--rm", "-t", "busybox", "echo", "ok", input="").stdout == "ok\n"  # text mode: \r\n
    assert CONTAINER_ID.fullmatch(dy("run", "-dit", "busybox", "sh", input="").stdout)


def test_api_refuses_interactive_tty_before_creating(ctr_run, dy):
    with pytest.raises(ops.InvalidOption, match="not a TTY"):
        ctr_run("true", name="api-no-tty", interactive=True, tty=True)
    assert "api-no-tty" not in _names(dy)


# -p with --network host

def test_published_ports_with_host_network_are_discarded(dy):
    proc = dy("run", "--rm", "--network", "host", "-p", "8080:80", "-p", "9090:90/udp", "busybox", "echo", "hi")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "hi\n", HOST_PORTS_WARNING)
    started = dy("run", "-d", "--net", "host", "-p", "8080:80", "busybox", "true")
    assert started.returncode == 0 and started.stderr == HOST_PORTS_WARNING
    assert CONTAINER_ID.fullmatch(started.stdout)
    doc = ops.inspect(dy.root, started.stdout.strip())
    assert not doc["NetworkSettings"]["Ports"]
    # -P publishes nothing by itself: no warning.
    assert dy("run", "--rm", "--network", "host", "-P", "busybox", "true").stderr == ""


# run -d whose process cannot start

def test_detached_start_failure_prints_the_id_then_the_error(dy, until):
    proc = dy("run", "-d", "--name", "no-start", "busybox", "no-such-command")
    assert proc.returncode == 127
    assert CONTAINER_ID.fullmatch(proc.stdout), proc.stdout
    assert "executable file not found" in proc.stderr
    doc = ops.inspect(dy.root, "no-start")
    assert doc["Id"] == proc.stdout.strip()
    assert (doc["State"]["Status"], doc["State"]["ExitCode"]) == ("created", 127)
    # With --rm the id is printed too, and the container goes.
    gone = dy("run", "-d", "--rm", "busybox", "/etc/passwd")
    assert gone.returncode == 126 and CONTAINER_ID.fullmatch(gone.stdout)
    until(lambda: gone.stdout.strip() not in {c.id for c in ops.list_containers(dy.root, all_=True)})


# logs of foreground containers

def _log(dy, name: str) -> list[tuple[str, bytes]]:
    return [(stream, data) for stream, data, _ in ops.container_logs(dy.root, name)]


def test_foreground_output_is_logged(dy):
    proc = dy("run", "--name", "fg", "busybox", "sh", "-c", "echo out; echo err >&2; printf tail")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "out\ntail", "err\n")
    logs = dy("logs", "fg")
    assert (logs.stdout, logs.stderr) == ("out\ntail", "err\n")
    # (runc copies the two streams separately: their order between each other is not kept)
    entries = _log(dy, "fg")
    assert [e for e in entries if e[0] == "stdout"] == [("stdout", b"out\n"), ("stdout", b"tail")]
    assert [e for e in entries if e[0] == "stderr"] == [("stderr", b"err\n")]
    # With a terminal everything is on stdout, as the terminal showed it.
    tty = dy("run", "-t", "--name", "fg-tty", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (tty.stdout, tty.stderr) == ("out\nerr\n", "")  # text mode reads \r\n as \n
    assert _log(dy, "fg-tty") == [("stdout", b"out\r\n"), ("stdout", b"err\r\n")]
    # A process that never started leaves an empty log (not runc's complaint).
    failed = dy("run", "--name", "fg-failed", "busybox", "no-such-command")
    assert failed.returncode == 127 and "executable file not found" in failed.stderr
    assert dy("logs", "fg-failed").stdout == ""
    assert dy("logs", "--tail", "1", "fg").stdout == "tail"


def test_foreground_terminal_session_is_logged(dy):
    # -it on a real terminal (runc relays it): the log reads as the terminal showed it.
    master, slave = os.openpty()
    proc = subprocess.Popen(dy.command("run", "-it", "--name", "fg-pty", "busybox", "sh", "-c",
                                       "read line; echo got $line; echo done"),
                            env=dy.env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))  # noqa: PLW1509
    os.close(slave)
    seen = b""
    try:
        os.write(master, b"hello\r")
        deadline = time.monotonic() + 20
        while b"done\r\n" not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        assert proc.wait(15) == 0
    finally:
        os.close(master)
    assert seen.endswith(b"got hello\r\ndone\r\n"), seen
    logged = b"".join(data for _, data in _log(dy, "fg-pty"))
    assert logged == b"hello\r\ngot hello\r\ndone\r\n"  # the echo of the input, then the output


def test_foreground_logs_while_it_runs(dy, until):
    proc = subprocess.Popen(dy.command("run", "--name", "fg-live", "busybox", "sh", "-c",
                                       "trap 'exit 5' TERM; echo first; sleep 30 & wait"),
                            env=dy.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"first\n"
        assert dy("logs", "fg-live").stdout == "first\n"
        assert ops.inspect(dy.root, "fg-live")["State"]["Status"] == "running"
    finally:
        proc.terminate()
        assert proc.wait(15) == 5
        proc.stdout.close()
        proc.stderr.close()


def test_foreground_output_to_a_closed_pipe_ends_the_container(dy):
    # `run ... | head -1`: the writer is not left writing into a pipe nobody reads.
    start = time.monotonic()
    shell = f"{shlex.join(dy.command('run', '--name', 'fg-yes', 'busybox', 'yes'))} | head -1"
    proc = subprocess.run(["sh", "-c", shell], env=dy.env, capture_output=True, timeout=30, check=False,
                          stdin=subprocess.DEVNULL)
    assert proc.stdout == b"y\n" and time.monotonic() - start < 20
    assert ops.inspect(dy.root, "fg-yes")["State"]["Status"] == "exited"


# Docker as the oracle

@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ["-it", "busybox", "true"],
    ["-i", "-t", "busybox", "true"],
    ["--network", "host", "-p", "8080:80", "busybox", "echo", "hi"],
    ["--network", "host", "-P", "busybox", "echo", "hi"],
], ids=["-it", "-i -t", "host -p", "host -P"])
def test_same_as_docker(docker, dy, args):
    ours = dy("run", "--rm", *args, input="")
    theirs = subprocess.run([docker, "run", "--rm", *args], input="", capture_output=True, text=True,
                            timeout=60, check=False)
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


@pytest.mark.slow
def test_detached_start_failure_same_as_docker(docker, dy):
    name = f"dockyard-gaps-{time.monotonic_ns()}"
    theirs = subprocess.run([docker, "run", "-d", "--name", name, "busybox", "no-such-command"],
                            capture_output=True, text=True, timeout=60, check=False)
    try:
        state = subprocess.run([docker, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name],
                               capture_output=True, text=True, timeout=60, check=False).stdout.split()
    finally:
        subprocess.run([docker, "rm", "-f", name], capture_output=True, timeout=60, check=False)
    ours = dy("run", "-d", "--name", "oracle-fail", "busybox", "no-such-command")
    doc = ops.inspect(dy.root, "oracle-fail")
    assert ours.returncode == theirs.returncode == 127
    assert CONTAINER_ID.fullmatch(ours.stdout) and CONTAINER_ID.fullmatch(theirs.stdout)
    assert "executable file not found" in ours.stderr and "executable file not found" in theirs.stderr
    assert [doc["State"]["Status"], str(doc["State"]["ExitCode"])] == state == ["created", "127"]

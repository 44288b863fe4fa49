"""Terminals and signals: -t gives a real pty, Ctrl-C and SIGTERM reach the process."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

pytestmark = pytest.mark.root

TRAP = 'trap "echo got-{sig}; exit {code}" {sig}; echo ready; while true; do sleep 0.1; done'


class Terminal:
    """dockyard running on a pty of ours, as in a user's terminal."""

    def __init__(self, command: list[str], env: dict[str, str]):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        self.proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))  # noqa: PLW1509
        os.close(slave)
        self.seen = b""

    def expect(self, needle: bytes, timeout: float = 15) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen in {self.seen!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"EOF before {needle!r} in {self.seen!r}")
                self.seen += chunk
        return self.seen

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 15) -> int:
        """The exit code, after reading what is left on the terminal."""
        try:
            code = self.proc.wait(timeout)
            while select.select([self.master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                self.seen += chunk
            return code
        finally:
            os.close(self.master)


@pytest.fixture
def terminal(dy):
    def start(*args: str) -> Terminal:
        return Terminal(dy.command(*args), dy.env)
    return start


def test_interactive_terminal(terminal):
    term = terminal("run", "--rm", "-it", "busybox", "sh")
    term.expect(b"# ")
    term.send(b"tty; echo $((6*7)) $TERM; stty size; exit 3\r")
    out = term.expect(b"42 xterm")
    assert term.wait() == 3
    assert b"/dev/pts/0" in out and b"30 100" in term.seen


def test_ctrl_c_in_a_terminal_reaches_the_container(terminal):
    term = terminal("run", "--rm", "-it", "busybox", "sh", "-c", TRAP.format(sig="INT", code=9))
    term.expect(b"ready")
    term.send(b"\x03")
    assert term.wait() == 9
    # Without -t, the terminal signals dockyard, which forwards to the container.
    term = terminal("run", "--rm", "busybox", "sh", "-c", TRAP.format(sig="INT", code=10))
    term.expect(b"ready")
    term.send(b"\x03")
    assert term.wait() == 10
    assert b"got-INT" in term.seen


def test_sigterm_reaches_the_container(dy):
    proc = subprocess.Popen(dy.command("run", "--rm", "busybox", "sh", "-c", TRAP.format(sig="TERM", code=7)),
                            env=dy.env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 7
    assert proc.stdout.read() == b"got-TERM\n"
    proc.stdout.close()
    # With --init, a process without handlers is terminated by the forwarded signal.
    proc = subprocess.Popen(dy.command("run", "--rm", "--init", "busybox", "sh", "-c", "echo up; exec sleep 60"),
                            env=dy.env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout.readline() == b"up\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 143
    proc.stdout.close()


def test_tty_without_a_terminal(dy):
    proc = subprocess.run(dy.command("run", "--rm", "-t", "busybox", "sh", "-c", "tty; echo done"),
                          env=dy.env, capture_output=True, stdin=subprocess.DEVNULL, timeout=30, check=False)
    assert (proc.returncode, proc.stdout) == (0, b"/dev/pts/0\r\ndone\r\n")
    refused = dy("run", "--rm", "-it", "busybox", "sh", input="")
    assert refused.returncode != 0 and "not a TTY" in refused.stderr


def test_exec_with_a_terminal(dy, terminal):
    started = dy("run", "-d", "--name", "tty-host", "busybox", "sleep", "60")
    assert started.returncode == 0, started.stderr
    term = terminal("exec", "-it", "tty-host", "sh")
    term.expect(b"# ")
    term.send(b"echo in-$((1+1)); exit 6\r")
    term.expect(b"in-2")
    assert term.wait() == 6


def test_detached_tty_output_goes_to_the_log(dy, until):
    from dockyard import container as ops

    cid = dy("run", "-dt", "busybox", "sh", "-c", "tty; echo logged").stdout.strip()
    assert ops.wait(dy.root, cid) == 0
    out = b"".join(data for _, data, _ in ops.container_logs(dy.root, cid))
    assert out == b"/dev/pts/0\r\nlogged\r\n"

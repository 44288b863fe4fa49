"""Waiting for a runc child the way `docker run` waits: signals go through.

`wait_forwarding` blocks the usual termination signals in the calling
thread and forwards each one it receives to runc, which passes it on to the
container's process (runc run/exec forward every signal they get). A
terminal's Ctrl-C is sent by the kernel to the whole foreground process
group: when runc shares our group (it must, to read a terminal) it already
got that one, so kernel-sent signals are not forwarded twice.

`PtyRelay` gives runc a pseudo-terminal of ours as its controlling terminal:
runc needs one for a terminal process (`-t`) in the foreground, and a
detached container or a test has none. Output from the pty goes to a sink
(an fd or a callback); with `-i` our stdin is copied in.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import struct
import subprocess
import termios
import threading
from collections.abc import Callable

__all__ = ["FORWARDED_SIGNALS", "PtyRelay", "wait_forwarding"]

FORWARDED_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                               signal.SIGUSR1, signal.SIGUSR2})
_SI_KERNEL = 0x80


def wait_forwarding(proc: subprocess.Popen[bytes], *, shares_terminal: bool = False,
                    on_signal: Callable[[int], None] | None = None,
                    meanwhile: Callable[[], None] | None = None) -> int:
    """Wait for `proc`, forwarding FORWARDED_SIGNALS to it; return its exit status.

    Call it from the main thread right after starting `proc`. Threads must be
    started only once the signals are blocked (they inherit the mask, so the
    signals come here and not to them): `meanwhile` is called at that point.
    """
    watched = set(FORWARDED_SIGNALS) | {signal.SIGCHLD}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    try:
        if meanwhile is not None:
            meanwhile()
        while True:
            code = proc.poll()
            if code is not None:
                return code
            info = signal.sigtimedwait(watched, 0.25)  # SIGCHLD ends the wait early
            if info is None or info.si_signo == signal.SIGCHLD:
                continue
            if shares_terminal and info.si_code == _SI_KERNEL:
                continue  # the terminal signalled runc's group too
            if on_signal is not None:
                on_signal(info.si_signo)
            try:
                os.kill(proc.pid, info.si_signo)
            except ProcessLookupError:
                pass
    finally:
        # Drop what arrived meanwhile instead of acting on it after unblocking.
        while signal.sigtimedwait(watched, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _take_controlling_tty() -> None:
    # Runs in the child after setsid(): its stdin (the pty slave) becomes its terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyRelay:
    """A pty pair: runc gets the slave as stdio and controlling terminal.

    `sink` receives what the container writes (bytes); `source`, when given,
    is an fd whose input is copied to the container until EOF.
    """

    def __init__(self, sink: Callable[[bytes], None], source: int | None = None,
                 rows: int = 24, cols: int = 80):
        self.master, self.slave = os.openpty()
        os.set_inheritable(self.slave, False)
        _set_winsize(self.slave, rows, cols)
        self.sink = sink
        self.source = source
        self._threads: list[threading.Thread] = []

    # The three stdio arguments and the preexec hook for Runtime.start_run/start_exec.
    @property
    def stdio(self) -> dict[str, object]:
        return {"stdin": self.slave, "stdout": self.slave, "stderr": self.slave,
                "preexec_fn": _take_controlling_tty}

    def start(self) -> None:
        """Close our slave copy and start copying (call after spawning runc)."""
        os.close(self.slave)
        self.slave = -1
        out = threading.Thread(target=self._pump_out, name="pty-out", daemon=True)
        out.start()
        self._threads.append(out)
        if self.source is not None:
            inp = threading.Thread(target=self._pump_in, name="pty-in", daemon=True)
            inp.start()

    def _pump_out(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                break  # EIO: every slave descriptor is closed
            if not data:
                break
            self.sink(data)

    def _pump_in(self) -> None:
        assert self.source is not None
        while True:
            try:
                data = os.read(self.source, 65536)
            except OSError:
                break
            try:
                if not data:
                    os.write(self.master, b"\x04")  # EOF on our stdin: ^D to the terminal
                    break
                os.write(self.master, data)
            except OSError:
                break

    def close(self, timeout: float = 2.0) -> None:
        """Wait for the output to drain, then close the master."""
        for thread in self._threads:
            thread.join(timeout)
        if self.slave >= 0:
            os.close(self.slave)
        os.close(self.master)


def fd_sink(fd: int) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view):]
            except BrokenPipeError:
                return
    return write

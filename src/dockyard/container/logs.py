"""Container logs in Docker's json-file shape: one JSON object per line.

    {"log": "hello\\n", "stream": "stdout", "time": "2024-05-01T10:00:00.123456789Z"}

Bytes that are not UTF-8 survive the trip: they are decoded with
surrogateescape, which JSON writes as \\udcXX and reading turns back into the
original bytes. A line longer than 16 KiB is split, as Docker splits it.

A detached container's monitor pumps its output into the log; a container
in the foreground (without --rm) writes into pipes of a `LogTee`, which copies
the output to the user's streams and into the log, so `logs` works for it too.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from dockyard.container.records import rfc3339

__all__ = ["LogTee", "LogWriter", "read_log"]

_MAX_LINE = 16 * 1024


class LogWriter:
    """Thread-safe: one pump thread per stream writes here."""

    def __init__(self, path: Path):
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._lock = threading.Lock()
        self._partial: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        with self._lock:
            buf = self._partial.pop(stream, b"") + data
            lines = buf.split(b"\n")
            rest = lines.pop()
            out = [line + b"\n" for line in lines]
            while len(rest) >= _MAX_LINE:
                out.append(rest[:_MAX_LINE])
                rest = rest[_MAX_LINE:]
            if rest:
                self._partial[stream] = rest
            self._emit(stream, out)

    def flush(self, stream: str | None = None) -> None:
        with self._lock:
            for name in [stream] if stream else list(self._partial):
                rest = self._partial.pop(name, b"")
                if rest:
                    self._emit(name, [rest])

    def _emit(self, stream: str, chunks: list[bytes]) -> None:
        if not chunks:
            return
        stamp = rfc3339(time.time_ns())
        text = "".join(json.dumps({"log": c.decode("utf-8", "surrogateescape"), "stream": stream,
                                   "time": stamp}) + "\n" for c in chunks)
        os.write(self._fd, text.encode())

    def pump(self, fd: int, stream: str) -> None:
        """Copy `fd` into the log until EOF, then close it."""
        try:
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                self.write(stream, data)
        finally:
            os.close(fd)
            self.flush(stream)

    def close(self) -> None:
        self.flush()
        os.close(self._fd)


class LogTee:
    """Pipes for a foreground container's stdout/stderr, copied to `stdout`/`stderr` and the log.

    With a terminal (`tty`) everything arrives on stdout, and `stderr` stays
    the user's own (runc's errors go there, not into the log). Call `close`
    once the container is done: it closes the pipes' write ends, drains them
    and closes the log. When the user's stream goes away (EPIPE: `run ... |
    head`) its pipe is closed too, so the container gets SIGPIPE as it would
    writing there itself.

    `onlcr`: the log gets NL as CR NL, as a terminal's ONLCR does. runc turns
    ONLCR off on the container's terminal when it relays it to a terminal of
    the user's (which then adds the CRs); the log should read the same as
    when the container's terminal adds them itself.
    """

    def __init__(self, path: Path, stdout, stderr, *, tty: bool = False, onlcr: bool = False):
        # callers of the Python API pass file objects; the pump writes to fds
        stdout, stderr = (f if isinstance(f, int) else _flushed_fd(f) for f in (stdout, stderr))
        self._path = path
        self._onlcr = onlcr
        self._writer = LogWriter(path)
        self._sources: dict[int, tuple[str, int]] = {}  # read end -> (stream, user's fd)
        self._ends: list[int] = []
        self._closed = False
        self.stdout, self.stderr = stdout, stderr
        try:
            out_r, self.stdout = self._pipe()
            self._sources[out_r] = ("stdout", stdout)
            if not tty:
                err_r, self.stderr = self._pipe()
                self._sources[err_r] = ("stderr", stderr)
        except BaseException:
            self._close_all()
            raise
        # The thread must not take the signals that the supervisor waits for
        # (runtime.supervise.wait_forwarding): it inherits our mask, so block them for its start.
        from dockyard.runtime.supervise import FORWARDED_SIGNALS

        old = signal.pthread_sigmask(signal.SIG_BLOCK, set(FORWARDED_SIGNALS) | {signal.SIGCHLD})
        try:
            self._thread = threading.Thread(target=self._pump, name="log-tee", daemon=True)
            self._thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _pipe(self) -> tuple[int, int]:
        read_end, write_end = os.pipe()
        self._ends += [read_end, write_end]
        return read_end, write_end

    def _pump(self) -> None:
        poller = select.poll()
        for fd in self._sources:
            poller.register(fd, select.POLLIN)
        live = dict(self._sources)
        while live:
            for fd, _ in poller.poll():
                if fd not in live:
                    continue
                stream, target = live[fd]
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if data:
                    self._writer.write(stream, data.replace(b"\n", b"\r\n") if self._onlcr else data)
                    if _write_all(target, data):
                        continue
                poller.unregister(fd)
                del live[fd]
                self._writer.flush(stream)
                os.close(fd)  # EOF, or the user's side is gone: the writer now gets EPIPE
                self._ends.remove(fd)

    def discard(self) -> None:
        """Empty the log (the process never started: what came was runc's error)."""
        os.truncate(self._path, 0)

    def close(self, timeout: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in (self.stdout, self.stderr):
            if fd in self._ends:
                os.close(fd)
                self._ends.remove(fd)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._close_all()
            self._writer.close()

    def _close_all(self) -> None:
        for fd in self._ends:
            os.close(fd)
        self._ends.clear()


def _flushed_fd(f) -> int:
    flush = getattr(f, "flush", None)
    if flush is not None:
        flush()
    return f.fileno()


def _write_all(fd: int, data: bytes) -> bool:
    """False when `fd` cannot take it any more (EPIPE and the like)."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except InterruptedError:
            continue
        except BlockingIOError:
            select.select([], [fd], [])
        except OSError as exc:
            return exc.errno not in (errno.EPIPE, errno.EBADF, errno.EIO)
    return True


def _entries(fh: object) -> Iterator[tuple[str, bytes, str]]:
    for line in fh:  # type: ignore[attr-defined]
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        yield entry.get("stream", "stdout"), entry.get("log", "").encode("utf-8", "surrogateescape"), \
            entry.get("time", "")


def read_log(path: Path, *, tail: int | None = None, follow: bool = False,
             alive: object = None) -> Iterator[tuple[str, bytes, str]]:
    """(stream, bytes, time) entries; with `follow`, keep reading while `alive()` is true."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        entries = list(_entries(fh))
        if tail is not None:
            entries = entries[-tail:] if tail > 0 else []
        yield from entries
        if not follow:
            return
        pending = ""
        while True:
            chunk = fh.readline()
            if chunk:
                pending += chunk
                if pending.endswith("\n"):
                    yield from _entries([pending])
                    pending = ""
                continue
            if not alive():  # type: ignore[operator]
                rest = fh.read()
                if rest:
                    yield from _entries((pending + rest).splitlines(True))
                return
            time.sleep(0.1)

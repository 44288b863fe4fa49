"""Container logs in Docker's json-file shape: one JSON object per line.

    {"log": "hello\\n", "stream": "stdout", "time": "2024-05-01T10:00:00.123456789Z"}

Bytes that are not UTF-8 survive the trip: they are decoded with
surrogateescape, which JSON writes as \\udcXX and reading turns back into the
original bytes. A line longer than 16 KiB is split, as Docker splits it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from dockyard.container.records import rfc3339

__all__ = ["LogWriter", "read_log"]

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

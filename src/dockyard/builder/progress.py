"""Build progress as events, and printers for them.

The builder never prints: it emits events. The CLI picks a printer.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO


@dataclass
class Event:
    kind: str            # start | cached | done | error | output | info | miss
    step: int            # vertex number, 1-based; 0 for build-wide messages
    text: str = ""
    seconds: float = 0.0
    at: float = field(default_factory=time.monotonic)


Listener = Callable[[Event], None]


def null_listener(event: Event) -> None:
    pass


class PlainPrinter:
    """BuildKit's --progress=plain style: one line per event, `#N` prefixed."""

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stderr
        self.started: dict[int, float] = {}
        self.lock = threading.Lock()

    def __call__(self, ev: Event) -> None:
        with self.lock:
            self._print(ev)

    def _print(self, ev: Event) -> None:
        w = self.out.write
        if ev.kind == "start":
            self.started[ev.step] = ev.at
            w(f"#{ev.step} {ev.text}\n")
        elif ev.kind == "output":
            offset = ev.at - self.started.get(ev.step, ev.at)
            for line in ev.text.splitlines() or [""]:
                w(f"#{ev.step} {offset:.3f} {line}\n")
        elif ev.kind == "cached":
            w(f"#{ev.step} CACHED\n\n")
        elif ev.kind == "miss":
            w(f"#{ev.step} cache miss: {ev.text}\n")
        elif ev.kind == "done":
            w(f"#{ev.step} DONE {ev.seconds:.1f}s\n\n")
        elif ev.kind == "error":
            w(f"#{ev.step} ERROR: {ev.text}\n\n")
        elif ev.kind == "info":
            w(f"{ev.text}\n")
        self.out.flush()


class TtyPrinter(PlainPrinter):
    """A compact live view: one line per step with its state and timing.
    Lines are cut to the terminal width so in-place updates never wrap."""

    def _fit(self, text: str, reserve: int = 12) -> str:
        import shutil

        width = shutil.get_terminal_size((100, 24)).columns - reserve
        return text if len(text) <= width else text[: max(width - 3, 10)] + "..."

    def _print(self, ev: Event) -> None:
        w = self.out.write
        if ev.kind == "start":
            ev = Event(ev.kind, ev.step, self._fit(ev.text), ev.seconds, ev.at)
        elif ev.kind == "output":
            ev = Event(ev.kind, ev.step, ev.text[-40:], ev.seconds, ev.at)
        if ev.kind == "start":
            self.started[ev.step] = ev.at
            self._title = getattr(self, "_title", {})
            self._title[ev.step] = ev.text
            w(f"\r\x1b[K => {ev.text}")
        elif ev.kind == "output":
            last = ev.text.splitlines()[-1] if ev.text.strip() else ""
            w(f"\r\x1b[K => {self._title.get(ev.step, '')}  \x1b[2m{last[:60]}\x1b[0m")
        elif ev.kind == "cached":
            w(f"\r\x1b[K => CACHED {self._title.get(ev.step, '')}\n")
        elif ev.kind == "miss":
            w(f"\r\x1b[K    \x1b[33mcache miss: {ev.text}\x1b[0m\n")
        elif ev.kind == "done":
            w(f"\r\x1b[K => {self._title.get(ev.step, '')}  {ev.seconds:.1f}s\n")
        elif ev.kind == "error":
            w(f"\r\x1b[K => ERROR {self._title.get(ev.step, '')}\n{ev.text}\n")
        elif ev.kind == "info":
            w(f"\r\x1b[K{ev.text}\n")
        self.out.flush()

"""State.OOMKilled: did the OOM killer kill a process of the container?

runc removes the container's cgroup as soon as the container ends, and
with it the `oom_kill` counter (memory.oom_control on cgroup v1,
memory.events on v2). So a thread reads the counter while the cgroup
lives: once at the start, and again whenever the kernel signals a memory
event (v1: an eventfd registered in cgroup.event_control; v2: a poll
wake-up on memory.events). It ends when the cgroup goes away.
"""

from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path

__all__ = ["OomWatch", "oom_kills"]

_CGROUP_ROOT = Path("/sys/fs/cgroup")


def oom_kills(path: Path) -> int | None:
    """The `oom_kill` count in memory.oom_control or memory.events (None: gone)."""
    try:
        return _count(path.read_text(encoding="ascii"))
    except OSError:
        return None


def _count(text: str) -> int:
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def _memory_cgroup(pid: int) -> Path | None:
    """The counter file of `pid`'s memory cgroup (v1 first, then v2)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    unified = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return _CGROUP_ROOT / "memory" / path.lstrip("/") / "memory.oom_control"
        if controllers == "":
            unified = _CGROUP_ROOT / path.lstrip("/") / "memory.events"
    return unified if unified is not None and unified.exists() else None


class OomWatch:
    """Watches a container's memory cgroup from when runc writes `pid_file`."""

    def __init__(self, pid_file: Path) -> None:
        self.killed = False
        self._pid_file = Path(pid_file)
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="oom-watch", daemon=True)
        self._thread.start()

    def result(self, timeout: float = 1.0) -> bool:
        """Call once the container has ended."""
        self._ended.set()
        self._thread.join(timeout)
        return self.killed

    def _see(self, counter: Path) -> bool:
        """Record the counter; False once the cgroup is gone."""
        count = oom_kills(counter)
        if count:
            self.killed = True
        return count is not None

    def _watch(self) -> None:
        while not self._pid_file.exists():
            if self._ended.wait(0.005):
                return
        try:
            pid = int(self._pid_file.read_text(encoding="ascii").strip() or 0)
        except (OSError, ValueError):
            return
        counter = _memory_cgroup(pid) if pid > 0 else None
        if counter is None:
            return
        try:
            if counter.name == "memory.oom_control":
                self._watch_v1(counter)
            else:
                self._watch_v2(counter)
        except OSError:
            self._see(counter)

    def _watch_v1(self, counter: Path) -> None:
        event = os.eventfd(0, os.EFD_CLOEXEC)
        control = os.open(counter, os.O_RDONLY | os.O_CLOEXEC)
        try:
            (counter.parent / "cgroup.event_control").write_text(f"{event} {control}", encoding="ascii")
            while self._see(counter) and not self.killed:
                os.eventfd_read(event)  # an OOM in the cgroup, or its removal
                # The event comes just before the kill is counted.
                for _ in range(100):
                    if not self._see(counter) or self.killed:
                        return
                    time.sleep(0.001)
        finally:
            os.close(event)
            os.close(control)

    def _watch_v2(self, counter: Path) -> None:
        fd = os.open(counter, os.O_RDONLY | os.O_CLOEXEC)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLPRI | select.POLLERR)
            while True:
                # read through this fd: that is what re-arms its poll
                if _count(os.pread(fd, 4096, 0).decode("ascii")):
                    self.killed = True
                    return
                if self._ended.is_set():
                    return
                poller.poll(50)
        finally:
            os.close(fd)

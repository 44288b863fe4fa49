"""State.OOMKilled: did the OOM killer kill a process of the container?

runc removes the container's cgroup as soon as the container ends, and
with it the `oom_kill` counter (memory.oom_control on cgroup v1,
memory.events on v2). So a thread reads the counter while the cgroup
lives, whenever the kernel signals a memory event, until the cgroup goes.

On cgroup v1 runc puts the container in `<our memory cgroup>/<id>`. The
watch makes that cgroup and registers its eventfd (cgroup.event_control)
before runc starts, so even a process that goes over its limit at once is
seen. On v2 the cgroup is found from the container's pid once runc writes
it, and memory.events is polled; a container that is killed before that
is missed.
"""

from __future__ import annotations

import contextlib
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


def _memory_cgroups(pid: int | str) -> tuple[Path | None, Path | None]:
    """(v1 memory cgroup dir, v2 cgroup dir) of a process, from /proc/PID/cgroup."""
    v1 = v2 = None
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None, None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            v1 = _CGROUP_ROOT / "memory" / path.lstrip("/")
        elif controllers == "":
            v2 = _CGROUP_ROOT / path.lstrip("/")
    return v1, v2


class OomWatch:
    """Watches the memory cgroup of container `name`; create it before runc starts."""

    def __init__(self, name: str, pid_file: Path) -> None:
        self.killed = False
        self._pid_file = Path(pid_file)
        self._ended = threading.Event()
        self._made: Path | None = None
        self._event = -1
        target = self._watch_v2
        own, _ = _memory_cgroups("self")
        if own is not None and own.is_dir():
            with contextlib.suppress(OSError):
                self._register_v1(own / name)
                target = self._watch_v1
        self._thread = threading.Thread(target=target, name="oom-watch", daemon=True)
        self._thread.start()

    def result(self, timeout: float = 1.0) -> bool:
        """Call once the container has ended."""
        self._ended.set()
        if self._made is not None:
            with contextlib.suppress(OSError):  # runc removed it, unless it never started
                self._made.rmdir()
        self._thread.join(timeout)
        return self.killed

    def _see(self, counter: Path) -> bool:
        """Record the counter; False once the cgroup is gone."""
        count = oom_kills(counter)
        if count:
            self.killed = True
        return count is not None

    def _register_v1(self, cgroup: Path) -> None:
        try:
            cgroup.mkdir()
            self._made = cgroup
        except FileExistsError:
            pass
        counter = cgroup / "memory.oom_control"
        control = os.open(counter, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._event = os.eventfd(0, os.EFD_CLOEXEC)
            (cgroup / "cgroup.event_control").write_text(f"{self._event} {control}", encoding="ascii")
        except OSError:
            if self._event >= 0:
                os.close(self._event)
            raise
        finally:
            os.close(control)
        self._counter = counter

    def _watch_v1(self) -> None:
        try:
            while self._see(self._counter) and not self.killed:
                os.eventfd_read(self._event)  # an OOM in the cgroup, or its removal
                # The event comes just before the kill is counted.
                for _ in range(100):
                    if not self._see(self._counter) or self.killed:
                        return
                    time.sleep(0.001)
        finally:
            os.close(self._event)

    def _watch_v2(self) -> None:
        while not self._pid_file.exists():
            if self._ended.wait(0.005):
                return
        try:
            _, cgroup = _memory_cgroups(self._pid_file.read_text(encoding="ascii").strip())
            fd = os.open(cgroup / "memory.events", os.O_RDONLY | os.O_CLOEXEC) if cgroup else -1
        except OSError:
            return
        if fd < 0:
            return
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
        except OSError:
            return
        finally:
            os.close(fd)

"""Limits of RUN steps: a default pids limit on every RUN, others through
BuildOptions.run_limits, and a fork bomb that ends without hurting the host.

The default (runtime.container.default_run_limits) is 4096 processes, or a
quarter of kernel.pid_max where that is smaller.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from support import Events

from dockyard import api
from dockyard.builder.executor import Builder, BuildOptions
from dockyard.errors import BuildError
from dockyard.runtime.container import RUN_PIDS_LIMIT, default_run_limits
from dockyard.runtime.spec import Limits, cgroup_version

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runc") is None,
                                 reason="needs root and runc")]

V2 = cgroup_version() == 2
PIDS_MAX = "/sys/fs/cgroup/pids.max" if V2 else "/sys/fs/cgroup/pids/pids.max"


def _context(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def _build(store, ctx: Path, **options) -> tuple[object, list[str]]:
    events = Events()
    opts = BuildOptions(context=ctx, tags=[api.normalize("limited:1")], progress=events, **options)
    image = Builder(store).build(opts)
    return image, [e.text for e in events.kinds("output")]


def test_default_run_limit_is_a_pids_limit():
    with open("/proc/sys/kernel/pid_max", encoding="ascii") as fh:
        pid_max = int(fh.read())
    assert default_run_limits() == Limits(pids=min(RUN_PIDS_LIMIT, pid_max // 4))
    assert BuildOptions(context=Path(".")).run_limits == default_run_limits()


def test_every_run_gets_the_default_pids_limit(store, base_image, tmp_path):
    ctx = _context(tmp_path, f"FROM busybox:latest\nRUN cat {PIDS_MAX}\n")
    _, out = _build(store, ctx)
    assert out == [str(default_run_limits().pids)]


def test_run_limits_from_build_options(store, base_image, tmp_path):
    mem = "/sys/fs/cgroup/memory.max" if V2 else "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    quota = "/sys/fs/cgroup/cpu.max" if V2 else "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"
    ctx = _context(tmp_path, f"FROM busybox:latest\nRUN cat {PIDS_MAX} {mem} {quota}\n")
    _, out = _build(store, ctx, run_limits=Limits(pids=50, memory=64 << 20, cpus=0.5))
    assert out == ["50", str(64 << 20), "50000 100000" if V2 else "50000"]
    # None: no limit at all, as BuildKit
    ctx = _context(tmp_path, f"FROM busybox:latest\nRUN cat {PIDS_MAX} && echo unlimited\n")
    _, out = _build(store, ctx, run_limits=None)
    assert out == ["max", "unlimited"]


def test_memory_limit_fails_a_greedy_run(store, base_image, tmp_path):
    ctx = _context(tmp_path, "FROM busybox:latest\nRUN dd if=/dev/zero of=/dev/null bs=200M count=1\n")
    with pytest.raises(BuildError, match="exit code: 137"):
        _build(store, ctx, run_limits=Limits(memory=48 << 20))


def test_the_classic_fork_bomb_is_a_syntax_error_in_busybox_sh(store, base_image, tmp_path):
    # `:` is not a valid function name for busybox ash: it ends at once
    ctx = _context(tmp_path, "FROM busybox:latest\nRUN :(){ :|:& };:\n")
    started = time.monotonic()
    with pytest.raises(BuildError, match="exit code: 2"):
        _build(store, ctx)
    assert time.monotonic() - started < 30


def _own_cgroup_dir() -> Path:
    with open("/proc/self/cgroup", encoding="ascii") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if (V2 and controllers == "") or (not V2 and "pids" in controllers.split(",")):
                base = Path("/sys/fs/cgroup") if V2 else Path("/sys/fs/cgroup/pids")
                return base / path.lstrip("/")
    raise AssertionError("no pids cgroup for this process")


class _Watch(threading.Thread):
    """Samples the RUN containers' pids cgroups (runc's default: beside ours) and
    checks that the host can still start processes, until stopped."""

    def __init__(self, parent: Path):
        super().__init__(daemon=True)
        self.parent = parent
        self.before = set(os.listdir(parent))
        self.peak: dict[str, int] = {}
        self.limit: dict[str, str] = {}
        self.hit_max: dict[str, int] = {}
        self.spawn_failures = 0
        self.slowest_spawn = 0.0
        self.stop = threading.Event()
        self.last_spawn = 0.0

    def _sample(self) -> None:
        for name in set(os.listdir(self.parent)) - self.before:
            if not name.startswith("dockyard-"):
                continue
            path = self.parent / name
            try:
                current = int((path / "pids.current").read_text())
                self.limit[name] = (path / "pids.max").read_text().strip()
                events = (path / "pids.events").read_text()
            except (OSError, ValueError):
                continue
            self.peak[name] = max(self.peak.get(name, 0), current)
            match = re.search(r"^max (\d+)", events, re.MULTILINE)
            if match:
                self.hit_max[name] = max(self.hit_max.get(name, 0), int(match.group(1)))

    def run(self) -> None:
        while not self.stop.is_set():
            self._sample()
            if time.monotonic() - self.last_spawn > 0.5:
                started = time.monotonic()
                try:
                    subprocess.run(["/bin/true"], check=True, timeout=60)
                except (OSError, subprocess.SubprocessError):
                    self.spawn_failures += 1
                self.slowest_spawn = max(self.slowest_spawn, time.monotonic() - started)
                self.last_spawn = time.monotonic()
            time.sleep(0.02)


def _kill_leftovers(store) -> None:
    state = store.root / "tmp" / "runc" / "runtime"
    runc = shutil.which("runc") or "/usr/sbin/runc"
    if state.is_dir():
        for entry in os.listdir(state):
            if (state / entry).is_dir():
                subprocess.run([runc, "--root", str(state), "kill", "--all", entry, "KILL"],
                               capture_output=True, check=False)


def test_fork_bomb_in_run_is_contained_and_ends(store, base_image, tmp_path):
    limit = default_run_limits().pids
    # pid 1 starts the bomb, waits two seconds without forking (`read -t` on a
    # FIFO nobody writes: a fork of its own would queue behind 4096 busy
    # processes for a CPU, seconds to minutes on a loaded 2-CPU host) and fails
    # the step. When pid 1 ends, the kernel kills the rest of its PID namespace.
    ctx = _context(tmp_path, "FROM busybox:latest\n"
                             "RUN mkfifo /tmp/never; bomb() { bomb | bomb & }; bomb; "
                             "read -t 2 x <>/tmp/never; exit 1\n")
    watch = _Watch(_own_cgroup_dir())
    watch.start()
    outcome: list[BaseException | None] = []

    def build() -> None:
        try:
            _build(store, ctx)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    started = time.monotonic()
    worker = threading.Thread(target=build, daemon=True)
    worker.start()
    worker.join(timeout=120)
    elapsed = time.monotonic() - started
    watch.stop.set()
    watch.join()
    if worker.is_alive():
        _kill_leftovers(store)
        worker.join(timeout=60)
        pytest.fail(f"the fork bomb build did not end in 120 s (peaks {watch.peak})")

    assert isinstance(outcome[0], BuildError), outcome
    assert "did not complete successfully" in str(outcome[0])
    assert elapsed < 120
    assert watch.peak, "no RUN container cgroup was seen"
    name = max(watch.peak, key=lambda n: watch.peak[n])
    assert watch.limit[name] == str(limit)
    assert limit * 0.9 <= watch.peak[name] <= limit, watch.peak  # it filled its cgroup, no more
    if watch.hit_max:
        assert watch.hit_max[name] > 0  # forks were refused at the limit
    assert watch.spawn_failures == 0  # the host could start processes all along
    # nothing is left: no cgroup, no process of the container, no mount
    assert name not in os.listdir(_own_cgroup_dir())
    assert str(store.root) not in Path("/proc/self/mountinfo").read_text()
    # and the store still builds
    ctx = _context(tmp_path, "FROM busybox:latest\nRUN echo after\n")
    assert _build(store, ctx)[1] == ["after"]

"""Runs inside the VM (see vmharness): drives dockyard on a cgroup2-only host
and writes what it saw to /tmp/out/results.json for test_vm_cgroup2.py.

Each scenario records raw observations (exit codes, the files a container
reads from its own /sys/fs/cgroup); the assertions live on the host side.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from support import Events, make_busybox_rootfs

from dockyard import api
from dockyard.builder.executor import Builder, BuildOptions
from dockyard.container import RunOptions
from dockyard.container import run as run_container
from dockyard.runtime.container import default_run_limits
from dockyard.runtime.spec import Limits, cgroup_version
from dockyard.store import Store

OUT = Path("/tmp/out")
PID_MAX = int(sys.argv[1]) if len(sys.argv) > 1 else 0  # for the fork bomb; 0: the kernel's
CGROUP = Path("/sys/fs/cgroup")
MiB = 1 << 20
results: dict[str, object] = {}


def scenario(fn):
    started = time.monotonic()
    try:
        results[fn.__name__] = fn()
    except BaseException:  # noqa: BLE001 - recorded for the host to show
        results[fn.__name__] = {"error": traceback.format_exc()}
    results.setdefault("seconds", {})[fn.__name__] = round(time.monotonic() - started, 1)  # type: ignore[union-attr]
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    return fn


work = Path(tempfile.mkdtemp(prefix="vm-limits-"))
store = Store(work / "store")
tar = work / "busybox.tar"
subprocess.run(["tar", "--numeric-owner", "-C", str(make_busybox_rootfs(work / "rootfs")), "-cf", str(tar), "."],
               check=True)
image = api.import_image(tar, "busybox:latest", store=store)


def run(*command: str, **options) -> dict[str, object]:
    options.setdefault("network", "none")  # slirp4netns costs seconds under emulation; cli() keeps it
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        _, code = run_container(store, image, RunOptions(command=list(command), rm=True, **options),
                                stdout=out.fileno(), stderr=err.fileno())
        out.seek(0)
        err.seek(0)
        return {"code": code, "out": out.read().decode(), "err": err.read().decode()}


def show(*files: str) -> str:
    """A shell script printing `name=content` for each of the container's cgroup files."""
    return "; ".join(f"echo {f}=$(cat /sys/fs/cgroup/{f} 2>/dev/null || echo none)" for f in files)


def parse(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def build(dockerfile: str, **options) -> dict[str, object]:
    ctx = Path(tempfile.mkdtemp(dir=work))
    (ctx / "Dockerfile").write_text(dockerfile)
    events = Events()
    opts = BuildOptions(context=ctx, tags=[api.normalize("limited:1")], progress=events, **options)
    try:
        Builder(store).build(opts)
        error = None
    except Exception as exc:  # noqa: BLE001 - the build's error is an observation
        error = f"{type(exc).__name__}: {exc}"
    return {"error": error, "output": [e.text for e in events.kinds("output")]}


@scenario
def host():
    own = Path("/proc/self/cgroup").read_text()
    return {"cgroup_version": cgroup_version(), "own_cgroup": own.strip(),
            "controllers": (CGROUP / "cgroup.controllers").read_text().split(),
            "subtree_control": (CGROUP / "cgroup.subtree_control").read_text().split(),
            "default_run_limits": default_run_limits().pids}


@scenario
def no_limits():
    return parse(run("sh", "-c", show("memory.max", "cpu.max", "pids.max"))["out"])


@scenario
def memory():
    got = run("sh", "-c", show("memory.max", "memory.swap.max") + "; cat /proc/self/cgroup; "
              "grep ' /sys/fs/cgroup ' /proc/self/mountinfo", memory=64 * MiB)
    # one allocation past the limit, then the container's own count of OOM kills
    over = run("sh", "-c", "dd if=/dev/zero of=/dev/null bs=200M count=1; echo dd=$?; "
               "grep oom_kill /sys/fs/cgroup/memory.events", memory=48 * MiB)
    alone = run("dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1", memory=48 * MiB)
    fits = run("dd", "if=/dev/zero", "of=/dev/null", "bs=16M", "count=1", memory=48 * MiB)
    swap = {str(value): parse(run("sh", "-c", show("memory.swap.max"), memory=32 * MiB,
                                  memory_swap=value)["out"])["memory.swap.max"]
            for value in (32 * MiB, 96 * MiB, -1)}
    return {"view": got, "files": parse(got["out"]), "over": over, "alone": alone["code"],
            "fits": fits["code"], "swap": swap}


@scenario
def pids():
    got = run("sh", "-c", show("pids.max"), pids_limit=25)
    forks = run("sh", "-c", "n=0; for i in $(seq 40); do sleep 3 & n=$((n+1)); done; echo started $n; "
                + show("pids.events"), pids_limit=10)
    return {"files": parse(got["out"]), "forks": forks,
            "zero": parse(run("sh", "-c", show("pids.max"), pids_limit=0)["out"])}


@scenario
def cpus():
    got = run("sh", "-c", show("cpu.max"), cpus=0.5)
    busy = run("sh", "-c", "timeout 1 sh -c 'while :; do :; done'; cat /sys/fs/cgroup/cpu.stat", cpus=0.2)
    return {"files": parse(got["out"]), "stat": dict(line.split() for line in busy["out"].splitlines()),
            "busy": busy}


@scenario
def cli():
    env = dict(os.environ, DOCKYARD_ROOT=str(store.root))
    proc = subprocess.run([sys.executable, "-c", "from dockyard.cli.main import main; main()", "run", "--rm",
                           "-m", "64m", "--cpus", "0.5", "--pids-limit", "33", "busybox", "sh", "-c",
                           show("memory.max", "cpu.max", "pids.max")],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    return {"code": proc.returncode, "files": parse(proc.stdout), "err": proc.stderr}


@scenario
def build_limits():
    files = ("pids.max", "memory.max", "cpu.max")
    default = build("FROM busybox:latest\nRUN " + show(*files) + "\n")
    limited = build("FROM busybox:latest\nRUN echo limited; " + show(*files) + "\n",
                    run_limits=Limits(pids=50, memory=64 * MiB, cpus=0.5))
    greedy = build("FROM busybox:latest\nRUN dd if=/dev/zero of=/dev/null bs=200M count=1\n",
                   run_limits=Limits(memory=48 * MiB))
    return {"default": parse("\n".join(default["output"])), "limited": parse("\n".join(limited["output"])),
            "errors": [default["error"], limited["error"]], "greedy": greedy["error"]}


class Watch(threading.Thread):
    """Samples every dockyard-* cgroup under /sys/fs/cgroup, and checks that
    the VM can still start processes, until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.before = self.cgroups()
        self.peak: dict[str, int] = {}
        self.limit: dict[str, str] = {}
        self.refused: dict[str, int] = {}
        self.spawn_failures = 0
        self.stop = threading.Event()

    @staticmethod
    def cgroups() -> set[Path]:
        return {Path(d) for d, _, _ in os.walk(CGROUP) if os.path.basename(d).startswith("dockyard-")}

    def run(self) -> None:
        last_spawn = 0.0
        while not self.stop.is_set():
            for path in self.cgroups() - self.before:
                try:
                    current = int((path / "pids.current").read_text())
                    self.limit[str(path)] = (path / "pids.max").read_text().strip()
                    events = (path / "pids.events").read_text()
                except (OSError, ValueError):
                    continue
                self.peak[str(path)] = max(self.peak.get(str(path), 0), current)
                match = re.search(r"^max (\d+)", events, re.MULTILINE)
                if match:
                    self.refused[str(path)] = int(match.group(1))
            if time.monotonic() - last_spawn > 1:
                try:
                    subprocess.run(["/bin/true"], check=True, timeout=120)
                except (OSError, subprocess.SubprocessError):
                    self.spawn_failures += 1
                last_spawn = time.monotonic()
            time.sleep(0.05)


@scenario
def fork_bomb():
    # 4096 busy shells take many minutes under emulation: a smaller pid_max
    # gives a smaller default cap (a quarter of it), through the same code path.
    if PID_MAX:
        Path("/proc/sys/kernel/pid_max").write_text(str(PID_MAX))
    watch = Watch()
    watch.start()
    started = time.monotonic()
    # pid 1 starts the bomb, waits without forking (`read -t` on a FIFO nobody
    # writes) and fails the step; when it ends the kernel kills its PID namespace.
    got = build("FROM busybox:latest\n"
                "RUN mkfifo /tmp/never; bomb() { bomb | bomb & }; bomb; read -t 5 x <>/tmp/never; exit 1\n")
    elapsed = time.monotonic() - started
    watch.stop.set()
    watch.join()
    after = build("FROM busybox:latest\nRUN echo after\n")
    return {"error": got["error"], "seconds": elapsed, "default_cap": default_run_limits().pids, "peak": watch.peak, "limit": watch.limit,
            "refused": watch.refused, "spawn_failures": watch.spawn_failures,
            "left": sorted(str(p) for p in Watch.cgroups() - watch.before),
            "after": after}

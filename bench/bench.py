#!/usr/bin/env python3
"""dockyard against Docker (BuildKit) and Buildah: same workloads, same machine, same run.

Start it through bench/run, which installs and starts what this needs. Each
measure is repeated; the tools take turns inside each repetition (the order
rotates), so that load from elsewhere on the machine falls on all of them alike.
Prints medians and dockyard/Docker per scenario, writes bench/results.json and
the generated part of bench/RESULTS.md, and profiles dockyard in each scenario
with py-spy into bench/profiles/.

After shared/bench/compare.py (scenarios, tool verbs), extended with Buildah in
every scenario, pull, the scaling series, peak memory and profiles.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import fixtures as fx
import hotspots
import report
from tools import Buildah, Docker, Dockyard, Tool

APP_TAG = "dockyard-bench-app:1"
BIG_TAG = "dockyard-bench-big:1"
SCALE_TAG = "dockyard-bench-scale:1"
GROUPS = ("app", "run", "push", "bigctx", "scale")


@dataclass
class Sample:
    wall: float  # seconds
    cpu: float  # user + system seconds of the process tree we started (the CLI only, for Docker)
    rss_mb: float  # peak resident set of the largest process in that tree
    load: float  # 1-minute load average right after
    busy: float = 0.0  # share of all cores busy (anyone) in the half second before the start


def cpu_busy(interval: float = 0.5) -> float:
    """Share of the machine's CPU time that was busy over `interval` seconds (/proc/stat)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return sum(v) - idle, sum(v)
    b0, t0 = snap()
    time.sleep(interval)
    b1, t1 = snap()
    return (b1 - b0) / max(1, t1 - t0)


class StepFailed(Exception):
    pass


class Bench:
    def __init__(self, args, tools: list[Tool], scratch: Path, push_registry: fx.Registry):
        self.args = args
        self.tools = tools
        self.scratch = scratch
        self.push_registry = push_registry
        self.samples: dict[str, dict[str, list[Sample]]] = {}
        self.notes: dict[str, dict[str, str]] = {}
        self.hot: dict[str, str] = {}
        self.broken: set[tuple[str, str]] = set()  # (group, tool) that failed a step
        self.logs = scratch / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.count = 0

    # -- measuring ------------------------------------------------------------

    def measure(self, scenario: str, tool: Tool, cmd, cwd: Path | None = None, *, keep: bool = True,
                group: str = "") -> Sample | None:
        if (group, tool.name) in self.broken:
            return None
        if cmd is None:
            self.notes.setdefault(scenario, {})[tool.name] = "n/a"
            return None
        busy = self.wait_quiet()
        self.count += 1
        logfile = self.logs / f"{self.count:04d}-{scenario}-{tool.name}.log"
        with open(logfile, "w") as log:
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd, shell=isinstance(cmd, str), env=tool.env(), cwd=cwd, stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            _, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
            p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            tail = logfile.read_text()[-1500:]
            self.notes.setdefault(scenario, {})[tool.name] = f"failed: {tail.strip().splitlines()[-1][:120] if tail.strip() else p.returncode}"
            self.broken.add((group, tool.name))
            fx.log(f"  {scenario:<16} {tool.name:<9} FAILED ({p.returncode}); log {logfile}\n{tail}")
            return None
        s = Sample(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, os.getloadavg()[0], round(busy, 2))
        if keep:
            self.samples.setdefault(scenario, {}).setdefault(tool.name, []).append(s)
        fx.log(f"  {scenario:<16} {tool.name:<9} {wall:8.2f}s  cpu {s.cpu:6.2f}s  rss {s.rss_mb:6.0f} MB  "
               f"busy before {100 * busy:3.0f}%")
        return s

    def wait_quiet(self) -> float:
        """On a shared machine: before a measure, wait (up to --max-wait s) while more than
        --max-busy of all cores are busy with other work; returns the share seen last."""
        deadline = time.time() + self.args.max_wait
        busy = cpu_busy()
        while busy > self.args.max_busy and time.time() < deadline:
            busy = cpu_busy(1.0)
        if busy > self.args.max_busy:
            fx.log(f"  machine still {100 * busy:.0f}% busy after {self.args.max_wait} s: measuring anyway")
        return busy

    def untimed(self, tool: Tool, group: str, fn, *a, **kw) -> bool:
        if (group, tool.name) in self.broken:
            return False
        try:
            fn(*a, **kw)
            return True
        except Exception as e:  # a tool whose set-up fails loses the group, not the run
            self.broken.add((group, tool.name))
            fx.log(f"  {tool.name}: set-up for {group} failed: {str(e)[:1500]}")
            return False

    def turns(self, rep: int) -> list[Tool]:
        k = rep % len(self.tools)
        return self.tools[k:] + self.tools[:k]

    @property
    def dockyard(self) -> Dockyard | None:
        return next((t for t in self.tools if isinstance(t, Dockyard)), None)

    def profile(self, scenario: str, argv, cwd: Path | None = None, repeat: int = 1, before=None) -> None:
        """One more dockyard run of the scenario, under py-spy, into bench/profiles/."""
        dy = self.dockyard
        if self.args.no_profile or dy is None or argv is None or not hotspots.py_spy():
            return
        raw = report.PROFILES / f"{scenario}.raw.gz"
        try:
            for i in range(repeat):
                if before:
                    before()
                self.wait_quiet()
                hotspots.record(argv, raw, env=dy.env(), cwd=cwd, append=i > 0)
            text, hot = hotspots.summarise(raw, f"dockyard {scenario}: {' '.join(argv[1:])}", runs=repeat)
            (report.PROFILES / f"{scenario}.txt").write_text(text)
            self.hot[scenario] = hot
            fx.log(f"  profile {scenario}: hot spot {hot}")
        except Exception as e:
            fx.log(f"  profile {scenario} failed: {str(e)[:800]}")

    # -- scenarios --------------------------------------------------------------

    def group_app(self) -> None:
        ctx = fx.app_context()
        fx.undo_app_edits(ctx)
        reps = self.args.reps
        for rep in range(reps):
            for t in self.turns(rep):
                if self.untimed(t, "app", t.reset, debian=True):
                    self.measure("app-cold", t, t.build(APP_TAG), ctx, group="app")
        for rep in range(reps):
            for t in self.turns(rep):
                self.measure("app-noop", t, t.build(APP_TAG), ctx, group="app")
        for rep in range(reps):
            fx.edit_app(ctx)
            for t in self.turns(rep):
                self.measure("app-edit", t, t.build(APP_TAG), ctx, group="app")
        dy = self.dockyard
        if dy and ("app", dy.name) not in self.broken:
            self.profile("app-edit", dy.build(APP_TAG), ctx, before=lambda: fx.edit_app(ctx))
            self.profile("app-noop", dy.build(APP_TAG), ctx)
            self.profile("app-cold", dy.build(APP_TAG), ctx, before=lambda: dy.reset(debian=True))
        fx.undo_app_edits(ctx)
        for t in self.tools:  # the run and push groups use this image
            self.measure("app-final", t, t.build(APP_TAG), ctx, keep=False, group="app")

    def group_run(self) -> None:
        reps = max(self.args.reps, 5)
        for t in self.tools:
            self.measure("run-warmup", t, t.run_true(APP_TAG), keep=False, group="app")
        for rep in range(reps):
            for t in self.turns(rep):
                self.measure("run", t, t.run_true(APP_TAG), group="app")
        dy = self.dockyard
        if dy and ("app", dy.name) not in self.broken:
            self.profile("run", dy.run_true(APP_TAG), repeat=5)

    def _dest(self, tool: Tool) -> str:
        return f"{self.push_registry.addr}/dockyard-bench/{tool.name}/app:1"

    def group_push_pull(self) -> None:
        reps = self.args.reps
        pushed: dict[str, str] = {}
        for rep in range(reps):
            self.push_registry.restart_empty()  # cold: the registry has none of the blobs
            for t in self.turns(rep):
                cmd = None
                if ("app", t.name) not in self.broken:
                    try:
                        cmd = t.push(APP_TAG, self._dest(t))
                    except Exception as e:
                        self.notes.setdefault("push-cold", {})[t.name] = f"failed: {str(e)[:100]}"
                        continue
                if self.measure("push-cold", t, cmd, group="push") and \
                        self.measure("push-noop", t, cmd, group="push"):
                    pushed[t.name] = self._dest(t)
        dy = self.dockyard
        if dy and dy.name in pushed:  # the built image, before the pulls below replace it
            self.profile("push-noop", dy.push(APP_TAG, self._dest(dy)))
            self.profile("push-cold", dy.push(APP_TAG, self._dest(dy)), before=self.push_registry.restart_empty)
            self.push_registry.restart_empty()
            for t in self.tools:  # the pulls need every pushed image back in the registry
                if t.name in pushed:
                    self.measure("push-again", t, t.push(APP_TAG, pushed[t.name]), keep=False, group="push")
        for rep in range(reps):
            for t in self.turns(rep):
                src = pushed.get(t.name) or pushed.get("docker")
                cmd = t.pull(src) if src else None
                if cmd is None:
                    self.notes.setdefault("pull-cold", {}).setdefault(t.name, "n/a")
                    self.notes.setdefault("pull-noop", {}).setdefault(t.name, "n/a")
                    continue
                if not self.untimed(t, "pull", t.reset, debian=False):  # cold: bases only
                    continue
                if self.measure("pull-cold", t, cmd, group="pull"):
                    self.measure("pull-noop", t, cmd, group="pull")
        src = dy and (pushed.get(dy.name) or pushed.get("docker"))
        if src and dy.pull(src) is not None and ("pull", dy.name) not in self.broken:
            self.profile("pull-noop", dy.pull(src))
            self.profile("pull-cold", dy.pull(src), before=lambda: dy.reset(debian=False))

    def group_bigctx(self) -> None:
        ctx = fx.bigctx_context()
        self._cold_noop("bigctx", ctx, BIG_TAG, self.args.reps)

    def _cold_noop(self, name: str, ctx: Path, tag: str, reps: int, profile: bool = True,
                   skip: tuple[str, ...] = ()) -> None:
        group = name
        for tool in skip:
            for phase in ("cold", "noop"):
                self.notes.setdefault(f"{name}-{phase}", {})[tool] = "skipped (time; --full-scale)"
        for rep in range(reps):
            for t in self.turns(rep):
                if t.name not in skip and self.untimed(t, group, t.reset, debian=False):
                    self.measure(f"{name}-cold", t, t.build(tag), ctx, group=group)
        for rep in range(reps):
            for t in self.turns(rep):
                if t.name not in skip:
                    self.measure(f"{name}-noop", t, t.build(tag), ctx, group=group)
        dy = self.dockyard
        if profile and dy and (group, dy.name) not in self.broken:
            self.profile(f"{name}-noop", dy.build(tag), ctx)
            self.profile(f"{name}-cold", dy.build(tag), ctx, before=lambda: dy.reset(debian=False))

    def group_scale(self) -> None:
        """Cold and no-op COPY of N files, then of N MiB. At the largest sizes of the
        default run Buildah sits out (its no-op re-reads everything: minutes) unless
        --full-scale, and there are fewer repetitions."""
        a = self.args
        for n in a.files:
            big = n == max(a.files)
            self._cold_noop(f"files-{report.count_label(n)}", fx.files_context(n), SCALE_TAG,
                            a.scale_reps_big if big else a.reps, profile=big,
                            skip=("buildah",) if big and not a.quick and not a.full_scale else ())
        for mib in a.mib:
            big = mib == max(a.mib)
            self._cold_noop(f"bytes-{report.mib_label(mib)}", fx.bytes_context(mib), SCALE_TAG,
                            a.scale_reps_big if big else a.reps, profile=big,
                            skip=("buildah",) if big and not a.quick and not a.full_scale else ())


# -- set-up -------------------------------------------------------------------

def free_port(start: int) -> int:
    for port in range(start, start + 50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port for the push registry")


def dockyard_exe() -> list[str]:
    exe = os.environ.get("DOCKYARD")
    if exe:
        return exe.split()
    script = Path(sys.executable).with_name("dockyard")
    if script.exists():
        return [str(script)]  # the console script, as users run it (not a pyenv shim)
    return [sys.executable, "-m", "dockyard.cli.main"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="2 repetitions, scaling series 1k/10k files and 10/100 MiB (~12 min)")
    ap.add_argument("--reps", type=int, help="repetitions per measure (default 3, quick 2)")
    ap.add_argument("--tools", default="docker,buildah,dockyard")
    ap.add_argument("--only", default=",".join(GROUPS), help=f"groups to run, of {','.join(GROUPS)}")
    ap.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    ap.add_argument("--full-scale", action="store_true",
                    help="Buildah too at 100k files and 1 GiB (adds ~10 min)")
    ap.add_argument("--no-write", action="store_true", help="do not write RESULTS.md / results.json / profiles")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (stores, logs)")
    ap.add_argument("--max-busy", type=float, default=0.9,
                    help="before each measure wait while more than this share of all cores is busy (0.9)")
    ap.add_argument("--max-wait", type=float, default=60, help="... for at most this many seconds (60)")
    ap.add_argument("--report", action="store_true",
                    help="measure nothing: print the tables and rewrite RESULTS.md from bench/results.json")
    ap.add_argument("--merge", action="store_true",
                    help="keep the scenarios of bench/results.json that this run does not measure")
    a = ap.parse_args(argv)
    a.reps = a.reps or (2 if a.quick else 3)
    a.files = [1000, 10000] if a.quick else [1000, 10000, 100000]
    a.mib = [10, 100] if a.quick else [10, 100, 1024]
    a.scale_reps_big = 2 if not a.quick else a.reps
    a.only = [g for g in a.only.split(",") if g]
    return a


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def report_only(args) -> int:
    data = json.loads((fx.HERE / "results.json").read_text())
    samples = {sc: {tn: [Sample(**d) for d in ss] for tn, ss in per.items()} for sc, per in data["samples"].items()}
    tools = [t for t in ("docker", "buildah", "dockyard") if any(t in per for per in samples.values())]
    print(report.table(samples, data["notes"], tools))
    print(report.scaling(samples, tools))
    report.write_results(data["meta"], samples, data["notes"], data.get("hot_spots", {}), tools, args)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report:
        return report_only(args)
    signal.signal(signal.SIGTERM, _interrupt)  # clean up (registries, stores) when stopped
    started = datetime.datetime.now().astimezone()
    fx.CACHE.mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir="/var/tmp"))
    fx.log(f"scratch {scratch}")
    base_registry = fx.Registry(fx.BASE_REGISTRY, scratch).start()
    push_registry = fx.Registry(f"127.0.0.1:{free_port(5001)}", scratch)
    base_what = fx.seed_registry()
    deb, _ = fx.debian_tar()
    bases = [(fx.BUSYBOX_REF, fx.busybox_tar()), (fx.DEBIAN_REF, deb)]
    every = {"docker": Docker(), "buildah": Buildah(scratch), "dockyard": Dockyard(scratch, dockyard_exe(), bases)}
    tools = [every[n] for n in args.tools.split(",")]
    bench = Bench(args, tools, scratch, push_registry)
    if args.no_write:
        args.no_profile = True
    else:
        report.PROFILES.mkdir(exist_ok=True)
    loads = [os.getloadavg()[0]]
    t0 = time.time()
    try:
        for t in tools:
            t.reset(debian=True)
        dy = bench.dockyard
        if dy:  # compile dockyard's bytecode once, outside any measure
            fx.sh(dy._d("images"), env=dy.env())
        for group in GROUPS:
            if group not in args.only:
                continue
            fx.log(f"== {group}")
            try:
                {"app": bench.group_app, "run": bench.group_run, "push": bench.group_push_pull,
                 "bigctx": bench.group_bigctx, "scale": bench.group_scale}[group]()
            except Exception:
                fx.log(f"group {group} stopped:\n{traceback.format_exc()}")
            loads.append(os.getloadavg()[0])
            print(report.table(bench.samples, bench.notes, [t.name for t in tools]), flush=True)
    finally:
        for t in tools:
            try:
                t.cleanup()
            except Exception as e:
                fx.log(f"cleanup of {t.name}: {e}")
        push_registry.stop()
        base_registry.stop()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.time() - t0
    all_loads = [s.load for per in bench.samples.values() for ss in per.values() for s in ss] + loads
    busy = [s.busy for per in bench.samples.values() for ss in per.values() for s in ss]
    meta = report.machine(started, elapsed, all_loads, args, base_what, bench.dockyard)
    meta["busy_before"] = {"median": round(statistics.median(busy), 2), "max": round(max(busy), 2)} if busy else {}
    meta["measured_at"] = {sc: meta["date"] for sc in bench.samples}
    if args.merge:
        merge_previous(bench, meta)
    text = report.table(bench.samples, bench.notes, [t.name for t in tools])
    print(text)
    print(report.scaling(bench.samples, [t.name for t in tools], args))
    if not args.no_write:
        data = {"meta": meta, "samples": {sc: {tn: [asdict(s) for s in ss] for tn, ss in per.items()}
                                          for sc, per in bench.samples.items()},
                "notes": bench.notes, "hot_spots": bench.hot}
        (fx.HERE / "results.json").write_text(json.dumps(data, indent=1) + "\n")
        report.write_results(meta, bench.samples, bench.notes, bench.hot, [t.name for t in tools], args)
        fx.log(f"wrote {fx.HERE / 'RESULTS.md'} and {fx.HERE / 'results.json'}")
    fx.log(f"done in {elapsed / 60:.1f} min")
    return 0


def merge_previous(bench: Bench, meta: dict) -> None:
    """Keep what the last results.json measured and this run did not (--merge)."""
    path = fx.HERE / "results.json"
    if not path.exists():
        return
    old = json.loads(path.read_text())
    kept = sorted(sc for sc in old.get("samples", {}) if sc not in bench.samples)
    for sc in kept:
        bench.samples[sc] = {tn: [Sample(**d) for d in ss] for tn, ss in old["samples"][sc].items()}
        if sc in old.get("notes", {}):
            bench.notes.setdefault(sc, old["notes"][sc])
    for sc, note in old.get("notes", {}).items():
        if sc not in bench.samples:
            bench.notes.setdefault(sc, note)
    for sc, hot in old.get("hot_spots", {}).items():
        bench.hot.setdefault(sc, hot)
    prev = old.get("meta", {})
    for sc in kept:
        meta["measured_at"][sc] = prev.get("measured_at", {}).get(sc, prev.get("date", "?"))

if __name__ == "__main__":
    sys.exit(main())

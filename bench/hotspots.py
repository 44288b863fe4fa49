"""Profiles: record a dockyard command under py-spy and summarise where the time goes.

py-spy samples every thread of the process (push and pull use thread pools) with
--idle, so the samples measure wall-clock time, waits on runc and sockets
included. The raw output (collapsed stacks, one "frame;frame;... count" a line)
is kept next to the summary, gzipped (SCENARIO.raw.gz): flamegraph.pl or
speedscope.app open it once unzipped.

The summary has three views:
  * by dockyard function: each sample is charged to the deepest dockyard frame
    on its stack, so library work (hashlib, tarfile, zlib, subprocess waits)
    counts for the dockyard function that asked for it. The first row is the
    hot spot named in RESULTS.md.
  * by leaf: the frame actually running (or waiting) when sampled;
  * a top-down tree of the main thread, branches under 3% cut.

usage: python bench/hotspots.py RAW [RAW ...]   (re-summarise raw files)
"""

from __future__ import annotations

import collections
import gzip
import re
import shutil
import subprocess
import sys
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    exe = Path(sys.executable).with_name("py-spy")
    return str(exe) if exe.exists() else shutil.which("py-spy")


def record(argv: list[str], raw: Path, *, env: dict, cwd: Path | None = None, append: bool = False,
           rate: int = 250) -> None:
    """Run argv under py-spy, writing (or adding to) the raw collapsed stacks in `raw`."""
    tmp = raw.with_name(raw.name + ".part")
    p = subprocess.run([py_spy(), "record", "--idle", "--rate", str(rate), "--format", "raw",
                        "--output", str(tmp), "--", *argv], env=env, cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0 or not tmp.exists():
        raise RuntimeError(f"py-spy failed ({p.returncode}): {argv}\n{p.stdout[-2000:]}")
    counts: collections.Counter[str] = collections.Counter()
    for path in ([raw, tmp] if append and raw.exists() else [tmp]):
        with (gzip.open(path, "rt") if path.suffix == ".gz" else open(path)) as f:
            for line in f:
                if line.strip():
                    stack, _, n = line.rstrip("\n").rpartition(" ")
                    counts[stack] += int(n)
    with gzip.open(raw, "wt") as out:
        out.writelines(f"{stack} {n}\n" for stack, n in sorted(counts.items()))
    tmp.unlink()


def _frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rstrip("\n").rpartition(" ")
    return [_LINE.sub(")", f) for f in stack.split(";")], int(count)


def _raw_frames(line: str) -> list[str]:
    return line.rstrip("\n").rpartition(" ")[0].split(";")


def _source_line(frame: str) -> str:
    """The text of `func (dockyard/x.py:N)` from the source tree in use now."""
    m = re.search(r"\((dockyard/[^:]+):(\d+)\)$", frame)
    if not m:
        return ""
    try:
        import dockyard

        path = Path(dockyard.__file__).resolve().parent.parent / m.group(1)
        return path.read_text().splitlines()[int(m.group(2)) - 1].strip()
    except Exception:
        return ""


def _is_dockyard(frame: str) -> bool:
    return "(dockyard/" in frame


def _is_worker(frames: list[str]) -> bool:
    return "(threading.py)" in frames[0]


def _owner(frames: list[str]) -> tuple[str, str]:
    """Who a sample is charged to, and the callee that did the work."""
    imp = next((i for i, fr in enumerate(frames) if "importlib._bootstrap" in fr), None)
    if imp is not None:  # import time: charged to imports, by the top-level module being imported
        module = next((fr for fr in frames[imp:] if fr.startswith("<module> (")), "?")
        return "(importing modules at start-up or on first use)", module
    idx = max((i for i, fr in enumerate(frames) if _is_dockyard(fr)), default=None)
    if idx is None:
        return "(outside dockyard code: interpreter start-up, click, exit)", frames[-1] or "(no Python frame)"
    return frames[idx], frames[idx + 1] if idx + 1 < len(frames) else "(itself)"


def _table(stacks, total: int, top: int) -> tuple[list[str], list[tuple[str, int, str]]]:
    charged: collections.Counter[str] = collections.Counter()
    callee: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for frames, count in stacks:
        owner, sub = _owner(frames)
        charged[owner] += count
        callee[owner][sub] += count
    rows, lines = [], ["  share  samples  function  -> its heaviest callee"]
    for fn, n in charged.most_common(top):
        sub, subn = callee[fn].most_common(1)[0]
        rows.append((fn, n, sub))
        lines.append(f"  {100 * n / total:5.1f}%  {n:7d}  {fn}  -> {sub} ({100 * subn / total:.0f}%)")
    return lines, rows


def summarise(raw: Path, title: str, top: int = 12, runs: int = 1, rate: int = 250) -> tuple[str, str]:
    """(summary text, the hot spot: the dockyard function charged with the most main-thread samples,
    or with the most worker samples when the main thread mostly waits for its pool)."""
    stacks, raw_stacks = [], []
    with gzip.open(raw, "rt") as f:
        for line in f:
            if line.strip():
                stacks.append(_frames(line))
                raw_stacks.append(_raw_frames(line))
    main = [(fr, c) for fr, c in stacks if not _is_worker(fr)]
    workers = [(fr, c) for fr, c in stacks if _is_worker(fr)]
    main_total = sum(c for _, c in main) or 1
    worker_total = sum(c for _, c in workers)
    lines = [f"# {title}", "",
             f"{main_total} main-thread samples at {rate} Hz: ~{main_total / rate / runs:.2f} s of wall-clock time"
             f"{f' per run, {runs} runs' if runs > 1 else ''} (idle waits included); "
             f"{worker_total} samples in worker threads.", "",
             "## Main thread by dockyard function (deepest dockyard frame on the stack)", ""]
    main_lines, main_rows = _table(main, main_total, top)
    lines += main_lines
    hot = f"{main_rows[0][0]}" if main_rows else "-"
    if workers:
        lines += ["", "## Worker threads by dockyard function (shares of main-thread time; "
                      "idle pool threads and lock waits included)", ""]
        worker_lines, worker_rows = _table(workers, main_total, top)
        lines += worker_lines
        if main_rows and main_rows[0][2].startswith("wait (concurrent/futures") and worker_rows:
            busy = [r[0] for r in worker_rows if not r[0].startswith("(outside")][:2]
            hot = f"worker threads: {' + '.join(busy)} (the main thread waits in {main_rows[0][0]})"
    modules: collections.Counter[str] = collections.Counter()
    imports = 0
    for frames, count in main:
        if _owner(frames)[0].startswith("(importing"):
            imports += count
            for fr in dict.fromkeys(fr for fr in frames[1:] if fr.startswith("<module> (")):
                modules[fr] += count
    if modules:
        lines += ["", f"## Import time, main thread: {100 * imports / main_total:.0f}% in all; by module, "
                      "inclusive (a module's own body and what it imports)", ""]
        for fn, n in modules.most_common(top):
            lines.append(f"  {100 * n / main_total:5.1f}%  {n:7d}  {fn}")
    leaves: collections.Counter[str] = collections.Counter()
    for frames, count in main:
        leaves[frames[-1] or "(no Python frame: process start or exit)"] += count
    lines += ["", "## Main thread by leaf frame (what was running or waiting)", ""]
    for fn, n in leaves.most_common(top):
        lines.append(f"  {100 * n / main_total:5.1f}%  {n:7d}  {fn}")
    lines += ["", "## Hot lines of the top main-thread functions (line: samples, source as it is now)", ""]
    for fn, _, _ in main_rows[:4]:
        if fn.startswith("("):
            continue
        by_line: collections.Counter[str] = collections.Counter()
        for (frames, count), rframes in zip(stacks, raw_stacks):
            if _is_worker(frames) or _owner(frames)[0] != fn:
                continue
            idx = max(i for i, fr in enumerate(frames) if fr == fn)
            by_line[rframes[idx]] += count
        lines.append(f"  {fn}")
        for fr, n in by_line.most_common(3):
            lines.append(f"    {100 * n / main_total:5.1f}%  line {fr.rsplit(':', 1)[-1][:-1]}: {_source_line(fr)}")
    lines += ["", "## Main thread, top-down (branches under 3% cut)", ""]
    lines += _tree(main, main_total)
    return "\n".join(lines) + "\n", hot


def _tree(stacks: list[tuple[list[str], int]], total: int, cut: float = 0.03) -> list[str]:
    root: dict = {}
    for frames, count in stacks:
        node = root
        for fr in frames:
            child = node.setdefault(fr, [0, {}])
            child[0] += count
            node = child[1]
    out: list[str] = []

    def walk(node: dict, depth: int) -> None:
        for fr, (n, kids) in sorted(node.items(), key=lambda kv: -kv[1][0]):
            if n / total < cut:
                continue
            out.append(f"{100 * n / total:5.1f}% {'  ' * depth}{fr}")
            walk(kids, depth + 1)

    walk(root, 0)
    return out


if __name__ == "__main__":
    write = "--write" in sys.argv  # rewrite SCENARIO.txt beside each raw file
    for arg in (a for a in sys.argv[1:] if a != "--write"):
        raw = Path(arg)
        txt = raw.with_name(raw.name.replace(".raw.gz", ".txt"))
        title = txt.read_text().splitlines()[0][2:] if write and txt.exists() else raw.name
        runs = int(m.group(1)) if (m := re.search(r"(\d+) runs", txt.read_text() if txt.exists() else "")) else 1
        text, hot = summarise(raw, title, runs=runs)
        if write:
            txt.write_text(text)
        else:
            print(text)
        print(f"{raw.name}: hot spot {hot}")

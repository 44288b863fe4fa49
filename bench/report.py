"""Tables: medians per scenario and tool, dockyard/Docker against issue #6's targets,
the scaling series, the machine; and the generated part of bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROFILES = HERE / "profiles"
RESULTS = HERE / "RESULTS.md"
BEGIN, END = "<!-- bench:begin (written by bench/run) -->", "<!-- bench:end -->"

# issue #6: medians of dockyard/Docker in the same run on a 2-core machine
TARGETS = {
    "app-cold": 0.8, "app-noop": 1.0, "app-edit": 0.7,
    "bigctx-cold": 0.5, "bigctx-noop": 1.0,
    "run": 0.3,
    "push-cold": 1.0, "push-noop": 1.0, "pull-cold": 1.0, "pull-noop": 1.0,
}
MEMORY_TARGET_MB = 300  # dockyard's peak RSS on the large context
ORDER = ["app-cold", "app-noop", "app-edit", "run", "push-cold", "push-noop", "pull-cold", "pull-noop",
         "bigctx-cold", "bigctx-noop"]
WHAT = {
    "app-cold": "multi-stage app on Debian, cold build",
    "app-noop": "same, no-op rebuild",
    "app-edit": "same, rebuild after a one-file edit",
    "run": "`run --rm IMAGE true`",
    "push-cold": "push the app image, empty registry",
    "push-noop": "push again, nothing changed",
    "pull-cold": "pull it, store holds only the bases",
    "pull-noop": "pull again, nothing changed",
    "bigctx-cold": "20,000 files + 256 MiB, cold build",
    "bigctx-noop": "same, no-op rebuild",
}


def count_label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def mib_label(mib: int) -> str:
    return f"{mib // 1024}g" if mib % 1024 == 0 else f"{mib}m"


def _scenarios(samples) -> list[str]:
    rest = sorted((s for s in samples if s not in ORDER), key=_scale_key)
    return [s for s in ORDER if s in samples] + rest


def _scale_key(name: str):
    m = re.match(r"(files|bytes)-(\d+)([kmg]?)-(cold|noop)", name)
    if not m:
        return (2, name)
    mult = {"": 1, "k": 1000, "m": 1, "g": 1024}[m.group(3)]
    return (0 if m.group(1) == "files" else 1, int(m.group(2)) * mult, m.group(4))


def median(samples, scenario: str, tool: str, attr: str = "wall") -> float | None:
    ss = samples.get(scenario, {}).get(tool)
    return statistics.median(getattr(s, attr) for s in ss) if ss else None


def peak(samples, scenario: str, tool: str) -> float | None:
    ss = samples.get(scenario, {}).get(tool)
    return max(s.rss_mb for s in ss) if ss else None


def _cell(samples, notes, sc, tool) -> str:
    m = median(samples, sc, tool)
    if m is not None:
        return f"{m:.2f}s"
    return notes.get(sc, {}).get(tool, "-").split(":")[0].split(" (")[0]


def ratio(samples, sc: str) -> float | None:
    d, k = median(samples, sc, "dockyard"), median(samples, sc, "docker")
    return d / k if d is not None and k else None


def table(samples, notes, tools: list[str]) -> str:
    """The console table."""
    head = f"{'scenario':<18}" + "".join(f"{t:>11}" for t in tools) + "  dockyard/docker  target  dockyard RSS"
    rows = [head]
    for sc in _scenarios(samples) + [s for s in ORDER if s in notes and s not in samples]:
        r = ratio(samples, sc)
        t = TARGETS.get(sc)
        verdict = "" if r is None or t is None else (" ok" if r <= t else " MISS")
        rss = peak(samples, sc, "dockyard")
        rows.append(f"{sc:<18}" + "".join(f"{_cell(samples, notes, sc, tl):>11}" for tl in tools)
                    + f"  {(f'{r:.2f}' if r is not None else 'n/a'):>15}"
                    + f"  {('<= ' + str(t)) if t else '':>6}{verdict:<5}"
                    + f"  {(f'{rss:.0f} MB' if rss else ''):>8}")
    return "\n".join(rows)


def _series(samples, kind: str) -> list[tuple[str, float]]:
    out = []
    for sc in _scenarios(samples):
        m = re.match(rf"{kind}-(\d+)([kmg]?)-cold$", sc)
        if m:
            n = int(m.group(1)) * {"": 1, "k": 1000, "m": 1, "g": 1024}[m.group(2)]
            out.append((sc[:-5], n))
    return out


def scaling(samples, tools: list[str], args=None, markdown: bool = False) -> str:
    """Cold and no-op times per size, and the marginal cost between sizes
    (linear cost = the same marginal cost at every size)."""
    out = []
    for kind, unit, scale, uname in (("files", "file", 1e6, "µs/file"), ("bytes", "MiB", 1e3, "ms/MiB")):
        series = _series(samples, kind)
        if not series:
            continue
        cols = ["size"] + [f"{t} cold" for t in tools] + [f"{t} no-op" for t in tools] + \
            ["dockyard/docker cold", "dockyard/docker no-op"]
        rows = []
        for name, n in series:
            row = [name]
            for phase in ("cold", "noop"):
                for t in tools:
                    m = median(samples, f"{name}-{phase}", t)
                    row.append(f"{m:.2f}s" if m is not None else "-")
            for phase in ("cold", "noop"):
                r = ratio(samples, f"{name}-{phase}")
                row.append(f"{r:.2f}" if r is not None else "-")
            rows.append(row)
        slopes = []
        for (a, na), (b, nb) in zip(series, series[1:]):
            row = [f"marginal {a.split('-')[1]}->{b.split('-')[1]}"]
            for phase in ("cold", "noop"):
                for t in tools:
                    ma, mb = median(samples, f"{a}-{phase}", t), median(samples, f"{b}-{phase}", t)
                    row.append(f"{(mb - ma) / (nb - na) * scale:.1f} {uname}" if ma is not None and mb is not None
                               else "-")
            row += ["", ""]
            slopes.append(row)
        out.append(_render(cols, rows + slopes, markdown, title=f"Scaling in {kind}"))
        verdict = linearity(samples, series)
        if verdict:
            out.append(("" if markdown else "  ") + verdict)
    return "\n\n".join(out)


def linearity(samples, series) -> str:
    """dockyard's marginal cost (time per extra file or MiB) from one size to the next:
    a linear cost keeps it (within 2x: these are medians on a shared machine)."""
    if len(series) < 2:
        return ""
    kind = series[0][0].split("-")[0]
    unit, scale = ("µs/file", 1e6) if kind == "files" else ("ms/MiB", 1e3)
    parts = []
    for phase in ("cold", "noop"):
        slopes, last = [], None
        for (a, na), (b, nb) in zip(series, series[1:]):
            ma, mb = median(samples, f"{a}-{phase}", "dockyard"), median(samples, f"{b}-{phase}", "dockyard")
            if ma is not None and mb is not None:
                slopes.append((mb - ma) / (nb - na))
                last = (ma, mb, nb)
        if not slopes or last is None:
            continue
        first = median(samples, f"{series[0][0]}-{phase}", "dockyard")
        ma, mb, nb = last
        text = " -> ".join(f"{x * scale:.1f}" for x in slopes) + f" {unit}"
        if first and mb < 1.5 * first:
            verdict = f"flat: x{nb / series[0][1]:.0f} the size, x{mb / first:.1f} the time"
        elif len(slopes) == 1:
            verdict = "two sizes only: linearity needs three"
        elif slopes[0] > 0 and 0.5 <= slopes[-1] / slopes[0] <= 2:
            verdict = f"linear (x{slopes[-1] / slopes[0]:.2f})"
        elif slopes[0] > 0 and slopes[-1] / slopes[0] < 0.5:
            verdict = f"sub-linear (x{slopes[-1] / slopes[0]:.2f}: fixed costs dominate the small sizes)"
        else:
            verdict = f"SUPER-LINEAR (x{slopes[-1] / slopes[0]:.2f})" if slopes[0] > 0 else "noisy"
        parts.append(f"{'no-op' if phase == 'noop' else phase}: marginal {text}, {verdict}")
    return "dockyard " + "; ".join(parts) if parts else ""


def _render(cols, rows, markdown, title=""):
    if markdown:
        lines = [f"**{title}**", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [cols, *rows]) for i in range(len(cols))]
    lines = [title] + ["  ".join(str(v).rjust(w) for v, w in zip(r, widths)) for r in [cols, *rows]]
    return "\n".join(lines)


def _out(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:
        return "?"


def python_startup(dockyard) -> dict:
    """Median ms of `python -c pass` with and without site (.pth files run at start-up)."""
    import time

    exe = sys.executable
    env = dockyard.env() if dockyard else None
    out = {}
    for name, argv in (("with_site", [exe, "-c", "pass"]), ("without_site", [exe, "-S", "-c", "pass"]),
                       ("import_dockyard_cli", [exe, "-c", "import dockyard.cli.main"])):
        ts = []
        for _ in range(7):
            t = time.perf_counter()
            subprocess.run(argv, env=env, check=False)
            ts.append(time.perf_counter() - t)
        out[name] = round(statistics.median(ts) * 1000)
    return out


def machine(started, elapsed: float, loads: list[float], args, base_what: str, dockyard) -> dict:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    except Exception:
        mem = 0
    startup = python_startup(dockyard)
    repo = HERE.parent
    commit = _out(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    dirty = _out(["git", "-C", str(repo), "status", "--porcelain", "--", "src"])
    others = _out(["sh", "-c", "ps -eo args | grep -cE '[p]ytest|[d]ockerd|[b]uildah'"])
    return {
        "date": started.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{mem / 1024 / 1024:.1f} GiB",
        "os": f"{_out(['sh', '-c', '. /etc/os-release; echo $PRETTY_NAME'])}, kernel {platform.release()}",
        "docker": f"Docker {_out(['/usr/bin/docker', 'version', '--format', '{{.Server.Version}}'])} (BuildKit)",
        "buildah": _out(["buildah", "--version"]),
        "python": sys.version.split()[0],
        "dockyard": f"{' '.join(dockyard.exe) if dockyard else '-'} at {commit}"
                    f"{' + uncommitted changes in src/' if dirty and dirty != '?' else ''}",
        "base": base_what,
        "mode": ("--quick" if args.quick else "default") + f", {args.reps} repetitions"
                + f" ({args.scale_reps_big} for the largest scaling sizes)",
        "elapsed_min": round(elapsed / 60, 1),
        "max_busy": args.max_busy, "max_wait": args.max_wait,
        "python_startup_ms": startup,
        "load": {"min": round(min(loads), 2), "median": round(statistics.median(loads), 2),
                 "max": round(max(loads), 2)},
        "busy": others,
    }


def _provenance(meta) -> list[str]:
    """One line per run when the results merge several (--merge)."""
    runs: dict[str, list[str]] = {}
    for sc, date in meta.get("measured_at", {}).items():
        runs.setdefault(date, []).append(sc)
    if len(runs) < 2:
        return []
    return ["- Merged from runs (`--merge`): " + "; ".join(
        f"{date}: {', '.join(sorted(scs, key=lambda s: (s not in ORDER, ORDER.index(s) if s in ORDER else 0, _scale_key(s))))}"
        for date, scs in sorted(runs.items()))]


def results_block(meta, samples, notes, hot, tools, args) -> str:
    lines = [BEGIN, "",
             f"Run of {meta['date']} ({meta['mode']}, {meta['elapsed_min']} min).", "",
             f"- Machine: {meta['cpu']}, {meta['memory']}; {meta['os']}",
             f"- Tools: {meta['docker']}; {meta['buildah']}; Python {meta['python']}; dockyard {meta['dockyard']}",
             f"- Debian base: {meta['base']}",
             f"- Load average (1 min) during the run: min {meta['load']['min']}, median {meta['load']['median']}, "
             f"max {meta['load']['max']} on {os.cpu_count()} cores; shared with other engineers' test runs "
             f"({meta['busy']} pytest/dockerd/buildah processes at the end)"
             + ("; fork-heavy tests elsewhere inflate the load average, the busy share below says more"
                if meta['load']['max'] > 10 * (os.cpu_count() or 1) else ""),
             f"- Python start-up here: `python -c pass` {meta['python_startup_ms']['with_site']} ms, "
             f"with -S (no site, no .pth files) {meta['python_startup_ms']['without_site']} ms; "
             f"`import dockyard.cli.main` {meta['python_startup_ms']['import_dockyard_cli']} ms in all",
             *_provenance(meta),
             *([f"- Machine busy (all cores, anyone) in the half second before each measure: median "
                f"{100 * meta['busy_before']['median']:.0f}%, max {100 * meta['busy_before']['max']:.0f}% "
                f"(measures wait up to {meta.get('max_wait', 60):.0f} s for it to drop under "
                f"{100 * meta.get('max_busy', 0.9):.0f}%)"] if meta.get("busy_before") else []),
             "",
             "Medians; n/a = the command does not exist yet; RSS = peak resident memory of the largest "
             "dockyard process.", "",
             "| scenario | what | " + " | ".join(tools) + " | dockyard/docker | target | met | dockyard peak RSS |",
             "|---|---|" + "---:|" * len(tools) + "---:|---:|---|---:|"]
    for sc in [s for s in ORDER if s in samples or s in notes]:
        r = ratio(samples, sc)
        t = TARGETS.get(sc)
        met = "" if r is None or t is None else ("yes" if r <= t else "**no**")
        rss = peak(samples, sc, "dockyard")
        lines.append(f"| {sc} | {WHAT.get(sc, '')} | " + " | ".join(_cell(samples, notes, sc, tl) for tl in tools)
                     + f" | {f'{r:.2f}' if r is not None else 'n/a'} | ≤ {t} | {met} | "
                     + (f"{rss:.0f} MB" if rss else "") + " |")
    big = peak(samples, "bigctx-cold", "dockyard")
    if big:
        lines += ["", f"Peak memory on the large context: {big:.0f} MB "
                      f"({'under' if big < MEMORY_TARGET_MB else '**over**'} the {MEMORY_TARGET_MB} MB target)."]
    sc_text = scaling(samples, tools, args, markdown=True)
    if sc_text:
        lines += ["", sc_text]
    if hot:
        lines += ["", "Top hot spot per scenario (deepest dockyard function, wall-clock samples; "
                      "details in profiles/SCENARIO.txt):", "",
                  "| scenario | hot spot | share |", "|---|---|---:|"]
        for sc, fn in hot.items():
            share = _share(PROFILES / f"{sc}.txt")
            lines.append(f"| {sc} | `{fn}` | {share} |")
    lines += ["", END]
    return "\n".join(lines)


def _share(path: Path) -> str:
    try:
        for line in path.read_text().splitlines():
            m = re.match(r"\s+([\d.]+%)\s+\d+\s+", line)
            if m:
                return m.group(1)
    except OSError:
        pass
    return ""


def write_results(meta, samples, notes, hot, tools, args) -> None:
    block = results_block(meta, samples, notes, hot, tools, args)
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)

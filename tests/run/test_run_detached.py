"""Detached containers: the monitor, ps, logs, stop, kill, rm, exec, inspect, wait, health."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from dockyard import container as ops

pytestmark = pytest.mark.root

TICKER = 'i=0; while true; do echo "tick $i"; echo "err $i" >&2; i=$((i+1)); sleep 0.1; done'


def _inspect(dy, ref):
    return ops.inspect(dy.root, ref)


def _logs(dy, ref, **kw):
    out = {"stdout": b"", "stderr": b""}
    for stream, data, _ in ops.container_logs(dy.root, ref, **kw):
        out[stream] += data
    return out["stdout"].decode(), out["stderr"].decode()


def _start(dy, *args):
    proc = dy("run", "-d", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_run_d_returns_an_id_and_ps_shows_it(dy):
    started = time.monotonic()
    cid = _start(dy, "--name", "ticker", "busybox", "sh", "-c", TICKER)
    assert len(cid) == 64 and time.monotonic() - started < 10
    ps = dy("ps").stdout.splitlines()
    assert ps[0].split()[:3] == ["CONTAINER", "ID", "IMAGE"]
    assert any(line.startswith(cid[:12]) and "Up " in line and line.endswith("ticker") for line in ps[1:])
    assert dy("ps", "-q").stdout.split() == [cid[:12]]
    state = _inspect(dy, "ticker")["State"]
    assert state["Status"] == "running" and state["Running"] and state["Pid"] > 0


def test_logs_keep_stdout_and_stderr_apart(dy, until):
    _start(dy, "--name", "logger", "busybox", "sh", "-c", TICKER)
    until(lambda: "tick 3" in _logs(dy, "logger")[0])
    logs = dy("logs", "logger")
    assert logs.stdout.startswith("tick 0\ntick 1\n") and logs.stderr.startswith("err 0\nerr 1\n")
    tail = dy("logs", "--tail", "2", "-t", "logger")
    lines = sorted(tail.stdout.splitlines() + tail.stderr.splitlines(), key=lambda line: line.split()[1])
    assert len(lines) == 2 and lines[0].split()[1] == "err" and lines[1].split()[1] == "tick"
    assert lines[0][:4].isdigit() and lines[0][10] == "T"


def test_logs_follow_ends_when_the_container_exits(dy):
    _start(dy, "--name", "short", "busybox", "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.3; done")
    follow = dy("logs", "-f", "short", timeout=20)
    assert follow.stdout == "line 1\nline 2\nline 3\n"


def test_stop_sends_the_stop_signal_then_kills(dy, derive_image, until):
    derive_image("stopper:1", config={"StopSignal": "SIGUSR1"})
    _start(dy, "--name", "polite", "stopper:1", "sh", "-c",
           'trap "echo got usr1; exit 4" USR1; echo ready; while true; do sleep 0.1; done')
    until(lambda: "ready" in _logs(dy, "polite")[0])
    assert dy("stop", "polite").stdout == "polite\n"
    state = _inspect(dy, "polite")["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 4)
    assert "got usr1" in _logs(dy, "polite")[0]
    # PID 1 ignores SIGTERM without a handler: stop falls back to SIGKILL after the timeout.
    _start(dy, "--name", "stubborn", "busybox", "sleep", "60")
    started = time.monotonic()
    ops.stop(dy.root, "stubborn", timeout=1)
    assert 0.9 < time.monotonic() - started < 8
    assert _inspect(dy, "stubborn")["State"]["ExitCode"] == 137


def test_kill_wait_and_rm(dy, until):
    cid = _start(dy, "--name", "victim", "busybox", "sh", "-c",
                 'trap "exit 12" HUP; echo ready; while true; do sleep 0.1; done')
    until(lambda: "ready" in _logs(dy, "victim")[0])
    refused = dy("rm", "victim")
    assert refused.returncode == 1 and "running container" in refused.stderr
    assert dy("kill", "-s", "HUP", "victim").returncode == 0
    assert dy("wait", "victim").stdout == "12\n"
    assert "Exited (12)" in dy("ps", "-a").stdout
    with pytest.raises(ops.ContainerConflict, match="not running"):
        ops.kill(dy.root, "victim")
    assert dy("rm", "victim").stdout == "victim\n"
    assert cid not in [c.id for c in ops.list_containers(dy.root, all_=True)]
    _start(dy, "--name", "forced", "busybox", "sleep", "60")
    ops.remove_container(dy.root, "forced", force=True)
    assert [c.name for c in ops.list_containers(dy.root, all_=True)] == []


def test_exec_in_a_running_container(dy, tmp_path):
    _start(dy, "--name", "host1", "-e", "FROM_RUN=yes", "-w", "/tmp", "busybox", "sleep", "60")
    proc = dy("exec", "host1", "sh", "-c", 'echo "$FROM_RUN $(pwd) $(id -u)"; exit 5')
    assert (proc.returncode, proc.stdout) == (5, "yes /tmp 0\n")
    proc = dy("exec", "-e", "X=1", "-u", "app", "-w", "/home", "host1", "sh", "-c", 'echo "$X $(pwd) $(id -u) $HOME"')
    assert proc.stdout == "1 /home 1000 /home/app\n"
    assert dy("exec", "-i", "host1", "cat", input="piped\n").stdout == "piped\n"
    assert dy("exec", "-d", "host1", "touch", "/tmp/from-detached-exec").returncode == 0
    assert dy("exec", "host1", "ls", "/tmp/from-detached-exec").returncode == 0
    assert dy("exec", "host1", "no-such-command").returncode == 126
    refused = dy("exec", "-w", "/proc/self/fd/7", "host1", "pwd")
    assert refused.returncode == 1 and "kernel filesystem" in refused.stderr
    assert dy("exec", "host1", "ls", "/proc/self/fd").stdout.split() == ["0", "1", "2", "3"]
    ops.stop(dy.root, "host1", timeout=0)
    stopped = dy("exec", "host1", "true")
    assert stopped.returncode == 1 and "not running" in stopped.stderr


def test_inspect_document(dy, tmp_path):
    cid = _start(dy, "--name", "described", "-e", "A=1", "-v", f"{tmp_path}:/h:ro", "--cap-drop", "ALL",
                 "--label", "team=ships", "busybox", "sleep", "60")
    doc = _inspect(dy, "described")
    assert doc["Id"] == cid and doc["Name"] == "/described" and doc["Path"] == "sleep"
    assert doc["Args"] == ["60"] and "A=1" in doc["Config"]["Env"]
    assert doc["Config"]["Labels"] == {"team": "ships"} and doc["HostConfig"]["CapDrop"] == ["ALL"]
    assert doc["Mounts"] == [{"Type": "bind", "Source": str(tmp_path), "Destination": "/h", "Mode": "ro",
                              "RW": False, "Propagation": "rprivate"}]
    assert doc["State"]["StartedAt"] > "2000" and doc["State"]["FinishedAt"].startswith("0001")
    fmt = dy("container", "inspect", "-f", "{{.State.Status}} {{.Config.Labels.team}}", "described")
    assert fmt.stdout == "running ships\n"
    # The writable layer is a volatile overlay: no syncs of the disk below it.
    merged = doc["GraphDriver"]["Data"]["MergedDir"]
    with open("/proc/self/mounts") as fh:
        line = next(entry for entry in fh if f" {merged} " in entry)
    assert "volatile" in line  # shown as fsync=volatile by newer kernels


def test_detached_rm_and_start_errors(dy, until):
    cid = _start(dy, "--rm", "busybox", "sh", "-c", "sleep 0.3; exit 3")
    assert ops.wait(dy.root, cid) == 3
    until(lambda: cid not in [c.id for c in ops.list_containers(dy.root, all_=True)])
    assert ops.wait(dy.root, cid) == 3  # still known for a while after removal
    bad = dy("run", "-d", "--name", "broken", "busybox", "no-such-command")
    assert bad.returncode == 127 and "executable file not found" in bad.stderr
    state = ops.inspect(dy.root, "broken")["State"]
    assert (state["Status"], state["ExitCode"]) == ("created", 127)


def test_state_survives_and_a_dead_monitor_shows_exited(dy, run_store, until):
    _start(dy, "--name", "orphan", "busybox", "sleep", "60")
    state = json.loads((run_store.root / "containers" / _inspect(dy, "orphan")["Id"] / "state.json").read_text())
    os.kill(state["MonitorPid"], signal.SIGKILL)
    until(lambda: "Exited (255)" in dy("ps", "-a").stdout)
    assert _inspect(dy, "orphan")["State"]["Running"] is False
    assert ops.list_containers(dy.root) == []
    # The container's process went with it.
    until(lambda: not os.path.exists(f"/proc/{state['Pid']}"))


def test_healthcheck_reported_by_ps(dy, derive_image, until):
    derive_image("healthy:1", config={"Healthcheck": {
        "Test": ["CMD-SHELL", "test -f /tmp/healthy"], "Interval": 200_000_000, "Retries": 2}})
    _start(dy, "--name", "checked", "healthy:1", "sh", "-c",
           "touch /tmp/healthy; sleep 1.5; rm /tmp/healthy; sleep 60")
    until(lambda: _inspect(dy, "checked")["State"]["Health"]["Status"] == "healthy", timeout=10)
    assert "(healthy)" in dy("ps").stdout
    until(lambda: _inspect(dy, "checked")["State"]["Health"]["Status"] == "unhealthy", timeout=10)
    assert "(unhealthy)" in dy("ps").stdout
    health = _inspect(dy, "checked")["State"]["Health"]
    assert health["Status"] == "unhealthy" and health["FailingStreak"] >= 2
    assert health["Log"][-1]["ExitCode"] == 1 and len(health["Log"]) <= 5


def test_init_reaps_zombies(dy, until):
    script = "(sleep 0.1 &); exec sleep 60"
    for name, flags in (("no-init", []), ("with-init", ["--init"])):
        _start(dy, "--name", name, *flags, "busybox", "sh", "-c", script)
    time.sleep(0.6)
    zombies = {name: dy("exec", name, "sh", "-c", "ps -o stat | grep -c ^Z").stdout.strip()
               for name in ("no-init", "with-init")}
    assert zombies == {"no-init": "1", "with-init": "0"}
    # tini passes SIGTERM on: `stop` does not need to wait for the SIGKILL timeout.
    started = time.monotonic()
    ops.stop(dy.root, "with-init")
    assert time.monotonic() - started < 5
    assert _inspect(dy, "with-init")["State"]["ExitCode"] == 143

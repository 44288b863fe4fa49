"""run_process end to end: real runc on a busybox overlay."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import ContainerRuntimeError
from dockyard.runtime import ContainerStartError, run_process
from dockyard.runtime.runc import Runtime, _probe_by_running, find_runtime
from dockyard.runtime.spec import DEFAULT_CAPABILITIES, capability_mask, host_capabilities

pytestmark = pytest.mark.root


def run(root: Any, runtime: Runtime, state_dir: Path, script: str, **kw: Any) -> tuple[int, str]:
    out = state_dir / f"out-{time.monotonic_ns()}"
    kw.setdefault("env", ["PATH=/bin"])
    with open(out, "wb") as fh:
        result = run_process(root.merged, ["sh", "-c", script], stdout=fh, stderr=fh,
                             state_dir=state_dir, runtime=runtime, **kw)
    return result.exit_code, out.read_text()


def test_echo_output_goes_to_stdout_file(container_root, runtime, state_dir):
    assert run(container_root, runtime, state_dir, "echo hello world") == (0, "hello world\n")


def test_exit_code_is_propagated(container_root, runtime, state_dir):
    assert run(container_root, runtime, state_dir, "exit 3")[0] == 3


def test_env_and_cwd_are_applied(container_root, runtime, state_dir):
    code, out = run(container_root, runtime, state_dir, 'echo "$FOO|$PATH|$(pwd)"',
                    env=["FOO=bar baz", "PATH=/bin"], cwd="/home/app")
    assert (code, out) == (0, "bar baz|/bin|/home/app\n")


def test_default_path_and_home_are_added(container_root, runtime, state_dir):
    code, out = run(container_root, runtime, state_dir, 'echo "$PATH|$HOME"', env=[], user="app")
    assert out == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/home/app\n"


def test_user_by_name_gets_primary_and_supplementary_groups(container_root, runtime, state_dir):
    code, out = run(container_root, runtime, state_dir, "id -u; id -g; id -G")
    assert out.split("\n")[:2] == ["0", "0"]
    code, out = run(container_root, runtime, state_dir, "id -u; id -g; id -G", user="app")
    uid, gid, groups = out.splitlines()
    assert (uid, gid) == ("1000", "1000")
    assert sorted(groups.split()) == ["1000", "44", "50"]


def test_user_by_uid_gid(container_root, runtime, state_dir):
    code, out = run(container_root, runtime, state_dir, "id -u; id -g; id -G", user="1234:4321")
    assert out.splitlines() == ["1234", "4321", "4321"]


def test_hostname_is_set(container_root, runtime, state_dir):
    code, out = run(container_root, runtime, state_dir, "hostname; cat /etc/hostname",
                    hostname="buildbox")
    assert out == "buildbox\nbuildbox\n"


def test_pid_namespace_and_proc(container_root, runtime, state_dir):
    code, out = run(container_root, runtime, state_dir, "echo $$; ls /proc | grep -c '^[0-9]'; "
                    "grep ' /proc proc ' /proc/mounts | wc -l")
    pid, nprocs, proc_mounts = out.split()
    assert pid == "1"
    assert int(nprocs) <= 4  # sh, ls, grep and nothing of the host's
    assert proc_mounts == "1"


def test_etc_files_are_present(container_root, runtime, state_dir, tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\nsearch example.test\n")
    code, out = run(container_root, runtime, state_dir,
                    "cat /etc/resolv.conf; grep -c localhost /etc/hosts; grep myhost /etc/hosts",
                    hostname="myhost", resolv_conf=resolv)
    assert code == 0
    assert out.startswith("nameserver 192.0.2.53\nsearch example.test\n")
    assert "myhost" in out.splitlines()[-1]
    # Generated into the bundle: nothing of them lands in the image.
    assert not (container_root.upper / "etc" / "hosts").exists() or \
        (container_root.upper / "etc" / "hosts").stat().st_size == 0


def test_no_caller_descriptor_leaks_into_container(container_root, runtime, state_dir, tmp_path):
    leaked = os.open(tmp_path, os.O_RDONLY)
    os.set_inheritable(leaked, True)
    try:
        code, out = run(container_root, runtime, state_dir, "ls /proc/self/fd")
    finally:
        os.close(leaked)
    # 0-2 plus the directory fd `ls` itself opens to list /proc/self/fd.
    assert code == 0
    assert out.split() == ["0", "1", "2", "3"]


def test_capabilities_are_dockers_default_set(container_root, runtime, state_dir):
    code, out = run(container_root, runtime, state_dir,
                    "grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb)' /proc/self/status")
    caps = dict(line.split(":\t") for line in out.splitlines())
    expected = capability_mask(c for c in DEFAULT_CAPABILITIES if c in host_capabilities())
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert int(caps[key], 16) == expected
    assert int(caps["CapInh"], 16) == 0 and int(caps["CapAmb"], 16) == 0
    if set(DEFAULT_CAPABILITIES) <= host_capabilities():
        assert caps["CapEff"] == "00000000a80425fb"  # what `docker run` shows


def test_network_none_has_only_loopback(container_root, runtime, state_dir):
    code, out = run(container_root, runtime, state_dir, "ls /sys/class/net; cat /etc/resolv.conf",
                    network="none")
    assert code == 0
    assert out.splitlines()[0] == "lo"
    assert "nameserver" not in out


def test_network_host_shares_the_hosts_interfaces(container_root, runtime, state_dir):
    before = set(os.listdir("/sys/class/net"))
    code, out = run(container_root, runtime, state_dir, "ls /sys/class/net", network="host")
    after = set(os.listdir("/sys/class/net"))
    # Other containers on this host may come and go meanwhile.
    assert before & after <= set(out.split()) <= before | after


def test_missing_workdir_is_created(container_root, runtime, state_dir):
    code, out = run(container_root, runtime, state_dir, "pwd", cwd="/srv/app/../data/x")
    assert (code, out) == (0, "/srv/data/x\n")
    made = container_root.upper / "srv" / "data" / "x"
    assert made.is_dir() and (made.stat().st_mode & 0o777) == 0o755


@pytest.mark.parametrize("cwd", ["/proc/self/fd/3", "/proc/self/cwd", "/sys/fs/cgroup", "/dev/fd/5"])
def test_workdir_into_kernel_filesystems_is_refused(container_root, runtime, state_dir, cwd):
    with pytest.raises(ContainerRuntimeError, match="kernel filesystem"):
        run(container_root, runtime, state_dir, "pwd", cwd=cwd)
    assert not (container_root.upper / "proc").exists()


def test_workdir_symlink_into_proc_is_refused(container_root, runtime, state_dir):
    os.symlink("../proc/self/fd/7", container_root.merged / "home" / "evil")
    with pytest.raises(ContainerRuntimeError, match="kernel filesystem"):
        run(container_root, runtime, state_dir, "pwd", cwd="/home/evil")


def test_readonly_rootfs(container_root, runtime, state_dir):
    code, out = run(container_root, runtime, state_dir, "touch /newfile || echo refused",
                    readonly_rootfs=True)
    assert "refused" in out
    assert not (container_root.upper / "newfile").exists()


def _state_is_clean(runtime: Runtime, state_dir: Path) -> None:
    assert [p for p in runtime.state_root.iterdir()] == []
    assert list((state_dir / "bundles").iterdir()) == []


def test_failed_start_raises_and_cleans_state(container_root, runtime, state_dir):
    with pytest.raises(ContainerStartError) as info:
        run_process(container_root.merged, ["no-such-command"], env=["PATH=/bin"],
                    state_dir=state_dir, runtime=runtime, stderr=open(os.devnull, "w"))
    assert info.value.exit_code == 127
    assert "no-such-command" in str(info.value)
    _state_is_clean(runtime, state_dir)


def test_unknown_user_fails_before_running(container_root, runtime, state_dir):
    with pytest.raises(ContainerRuntimeError, match="unable to find user nobody"):
        run(container_root, runtime, state_dir, "true", user="nobody")


def test_killed_container_reports_128_plus_signal(container_root, runtime, state_dir):
    def killer() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            ids = [p.name for p in runtime.state_root.iterdir() if p.is_dir()]
            state = runtime.state(ids[0]) if ids else None
            # Killing it while runc still sets it up is a start failure, not an exit.
            if state is not None and state["status"] == "running":
                seen.append(state)
                runtime.kill(ids[0], "KILL")
                return
            time.sleep(0.01)

    seen: list = []
    t = threading.Thread(target=killer)
    t.start()
    code, _ = run(container_root, runtime, state_dir, "echo started; sleep 30")
    t.join()
    assert code == 128 + signal.SIGKILL
    assert seen and seen[-1]["pid"] > 0
    _state_is_clean(runtime, state_dir)
    assert runtime.state(seen[-1]["id"]) is None


def _sleepers() -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if fh.read() == b"sleep\x0031\x00":
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


@pytest.mark.parametrize("delay", [0.02, 0.3])  # while runc sets up / while it runs
def test_keyboard_interrupt_kills_container_and_cleans_state(container_root, runtime, state_dir, delay):
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, delay)
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run(container_root, runtime, state_dir, "touch /started; sleep 31")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.monotonic() - start < 10
    if delay > 0.1:
        assert (container_root.upper / "started").exists()
    _state_is_clean(runtime, state_dir)
    assert _sleepers() == []


def test_find_runtime_prefers_a_working_runc(tmp_path):
    rt = find_runtime(tmp_path / "state")
    assert rt.name == "runc" and rt.state_root == tmp_path / "state"
    assert find_runtime().state_root == Path("/run/dockyard/runtime")
    with pytest.raises(ContainerRuntimeError, match="no working OCI runtime"):
        find_runtime(tmp_path, candidates=("dockyard-no-such-runtime",))


def test_other_runtimes_must_pass_a_real_run(tmp_path, runtime):
    # The probe used for crun, exercised with runc (which works here) and
    # with a binary that answers --version but cannot run anything.
    assert _probe_by_running(runtime.binary, "runc") is True
    fake = tmp_path / "fake-runtime"
    fake.write_text("#!/bin/sh\necho 'fake 1.0'; [ \"$1\" = --version ]\n")
    fake.chmod(0o755)
    assert _probe_by_running(str(fake), "fake") is False

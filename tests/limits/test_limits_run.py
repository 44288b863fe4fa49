"""`run --memory/--memory-swap/--cpus/--pids-limit` on the real runc and kernel.

On this kind of host (legacy or hybrid cgroups) runc drives the v1
controllers, and the container sees its own cgroup directories under
/sys/fs/cgroup/<controller>; on a cgroup2 host it sees the unified files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from dockyard.container import InvalidOption, RunOptions
from dockyard.container import run as run_container
from dockyard.runtime.spec import cgroup_version

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runc") is None,
                                 reason="needs root and runc")]

V2 = cgroup_version() == 2
_FILES = {  # what the container reads: (v1 file, v2 file)
    "memory": ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"),
    "memsw": ("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "/sys/fs/cgroup/memory.swap.max"),
    "quota": ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu.max"),
    "pids": ("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"),
}


def _file(key: str) -> str:
    return _FILES[key][1 if V2 else 0]


def run(store, image, *command, **options) -> tuple[int | None, str, str]:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        _, code = run_container(store, image, RunOptions(command=list(command), rm=True, **options),
                                stdout=out.fileno(), stderr=err.fileno())
        out.seek(0)
        err.seek(0)
        return code, out.read().decode(), err.read().decode()


def read_limits(store, image, **options) -> dict[str, str]:
    keys = list(_FILES)
    script = "; ".join(f"cat {_file(k)} 2>/dev/null || echo none" for k in keys)
    code, out, err = run(store, image, "sh", "-c", script, **options)
    assert code == 0, err
    return dict(zip(keys, out.split("\n")))


def test_no_flags_no_limits(store, base_image):
    got = read_limits(store, base_image)
    assert got["pids"] == "max"
    if not V2:
        assert got["quota"] == "-1"
        assert int(got["memory"]) > 1 << 50


def test_memory_limit_and_dockers_default_swap(store, base_image):
    got = read_limits(store, base_image, memory=64 << 20)
    if V2:
        assert got["memory"] == str(64 << 20)
    else:
        assert got["memory"] == str(64 << 20)
        if os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"):
            assert got["memsw"] == str(128 << 20)  # memory + as much swap: Docker's default


def test_memory_swap_values(store, base_image):
    if V2 or not os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"):
        pytest.skip("checks the v1 memsw file (swap accounting on a v1 host)")
    assert read_limits(store, base_image, memory=32 << 20, memory_swap=32 << 20)["memsw"] == str(32 << 20)
    assert int(read_limits(store, base_image, memory=32 << 20, memory_swap=-1)["memsw"]) > 1 << 50


def test_memory_limit_kills_a_process_that_goes_over(store, base_image):
    # dd touches its whole 200 MiB buffer: more than memory + swap allows
    code, _, _ = run(store, base_image, "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1",
                     memory=48 << 20)
    assert code == 137  # SIGKILL from the OOM killer, as in Docker
    code, _, err = run(store, base_image, "dd", "if=/dev/zero", "of=/dev/null", "bs=16M", "count=1",
                       memory=48 << 20)
    assert code == 0, err


def test_cpus_sets_the_cfs_quota_and_throttles(store, base_image):
    got = read_limits(store, base_image, cpus=0.5)
    assert got["quota"] == ("50000 100000" if V2 else "50000")
    if V2:
        usage = "/sys/fs/cgroup/cpu.stat"
        script = f"timeout 1 sh -c 'while :; do :; done'; grep usage_usec {usage}"
    else:
        script = "timeout 1 sh -c 'while :; do :; done'; cat /sys/fs/cgroup/cpuacct/cpuacct.usage"
    code, out, err = run(store, base_image, "sh", "-c", script, cpus=0.2)
    assert code == 0, err
    used = int(out.split()[-1]) / (1e6 if V2 else 1e9)  # seconds of CPU
    assert used < 0.6, f"a busy loop used {used:.2f}s of CPU in 1s with --cpus 0.2"


def test_pids_limit_stops_forks(store, base_image):
    assert read_limits(store, base_image, pids_limit=25)["pids"] == "25"
    code, out, err = run(store, base_image, "sh", "-c",
                         "n=0; for i in $(seq 40); do sleep 3 & n=$((n+1)); done; echo started $n",
                         pids_limit=10)
    assert code != 0 and "can't fork" in err  # the shell itself could not fork any more
    assert "started 40" not in out
    # 0 and negative mean no limit, as in Docker
    assert read_limits(store, base_image, pids_limit=0)["pids"] == "max"
    assert read_limits(store, base_image, pids_limit=-1)["pids"] == "max"


def test_invalid_values_are_refused(store, base_image):
    with pytest.raises(InvalidOption, match="minimum memory limit allowed is 6MB"):
        run(store, base_image, "true", memory=1 << 20)
    with pytest.raises(InvalidOption, match="always set the memory limit"):
        run(store, base_image, "true", memory_swap=64 << 20)
    with pytest.raises(InvalidOption, match="larger than memory limit"):
        run(store, base_image, "true", memory=64 << 20, memory_swap=32 << 20)
    with pytest.raises(InvalidOption, match="range of CPUs is from 0.01"):
        run(store, base_image, "true", cpus=(os.cpu_count() or 1) + 1)


def _cli(store, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DOCKYARD_ROOT=str(store.root))
    return subprocess.run([sys.executable, "-c", "from dockyard.cli.main import main; main()", *args],
                          env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          check=False)


def test_cli_flags(store, base_image):
    proc = _cli(store, "run", "--rm", "-m", "64m", "--cpus", "0.5", "--pids-limit", "33", "busybox",
                "cat", _file("memory"), _file("quota"), _file("pids"))
    assert proc.returncode == 0, proc.stderr
    quota = "50000 100000" if V2 else "50000"
    assert proc.stdout.split("\n")[:3] == [str(64 << 20), quota, "33"]

    proc = _cli(store, "run", "-d", "--name", "limited", "--memory", "1g", "--memory-swap", "-1",
                "--cpus", "1.5", "--pids-limit", "100", "busybox", "true")
    assert proc.returncode == 0, proc.stderr
    proc = _cli(store, "container", "inspect", "limited")
    host = json.loads(proc.stdout)[0]["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"]) == \
        (1 << 30, -1, 1_500_000_000, 100)
    _cli(store, "rm", "-f", "limited")


@pytest.mark.parametrize("args, message", [
    (["-m", "lots"], "invalid size"),
    (["-m", "1k"], "minimum memory limit allowed is 6MB"),
    (["--cpus", "many"], "not a number"),
    (["--memory-swap", "1g"], "always set the memory limit"),
])
def test_cli_bad_values_exit_125(store, base_image, args, message):
    proc = _cli(store, "run", "--rm", *args, "busybox", "true")
    assert proc.returncode == 125
    assert message in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.skipif(not V2, reason="this host's /sys/fs/cgroup is not cgroup2 (legacy or hybrid: "
                                   "runc uses the v1 controllers, covered above; "
                                   "tests/vm covers cgroup2 in a VM)")
def test_v2_unified_limits(store, base_image):
    got = read_limits(store, base_image, memory=64 << 20, cpus=0.5, pids_limit=50)
    assert (got["memory"], got["quota"], got["pids"]) == (str(64 << 20), "50000 100000", "50")

"""`run --memory/--cpus/--pids-limit` and RUN limits on a cgroup2-only kernel.

This host is hybrid (every controller bound to v1), so runc never takes the
unified path here. The module boots one VM (vmharness.py: a Debian kernel,
the host's root shared read-only, only cgroup2 at /sys/fs/cgroup, the test
process in /system.slice/guest.service as under systemd), runs
guest_limits.py in it, and checks what the containers saw. One boot serves
every test: about a minute with KVM, two under emulation (TCG).

The fork bomb runs with the guest's kernel.pid_max at 2048, so the default
RUN cap is a quarter of it (512), through the same code path as the 4096 cap
(tests/limits meets that one on the host): 4096 busy shells take more than
ten minutes to schedule under emulation. DOCKYARD_VM_PID_MAX=0 keeps the
guest's pid_max, and so the 4096 cap.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from vmharness import VMUnavailable, check_host, results, run_python

pytestmark = [pytest.mark.slow, pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (qemu's 9p share of /)")]

GUEST = Path(__file__).with_name("guest_limits.py")
MiB = 1 << 20
PID_MAX = int(os.environ.get("DOCKYARD_VM_PID_MAX", 2048))


@pytest.fixture(scope="module")
def guest(tmp_path_factory) -> dict:
    try:
        check_host()
    except VMUnavailable as exc:
        pytest.skip(f"no VM: {exc}")
    got = results(run_python(GUEST, str(PID_MAX), timeout=900, workdir=tmp_path_factory.mktemp("vm")))
    got["expected_cap"] = PID_MAX // 4 if PID_MAX else 4096
    return got


def seen(guest: dict, name: str) -> dict:
    got = guest.get(name)
    if got is None:
        pytest.fail(f"the guest never got to {name!r} (seconds so far: {guest.get('seconds')})")
    if isinstance(got, dict) and set(got) == {"error"}:
        pytest.fail(f"{name} failed in the guest:\n{got['error']}")
    return got


def test_the_guest_has_only_cgroup2_with_controllers(guest):
    host = seen(guest, "host")
    assert host["cgroup_version"] == 2
    assert {"memory", "pids", "cpu"} <= set(host["subtree_control"])
    assert host["own_cgroup"] == "0::/system.slice/guest.service"


def test_no_flags_no_limits(guest):
    files = seen(guest, "no_limits")
    assert files == {"memory.max": "max", "cpu.max": "max 100000", "pids.max": "max"}


def test_memory_limit_in_the_containers_own_cgroup(guest):
    memory = seen(guest, "memory")
    assert memory["view"]["code"] == 0, memory["view"]
    assert memory["files"]["memory.max"] == str(64 * MiB)
    assert memory["files"]["memory.swap.max"] == str(64 * MiB)  # Docker: as much swap as memory
    # its own cgroup namespace: the limits sit at the root of its /sys/fs/cgroup
    assert "0::/\n" in memory["view"]["out"]
    assert " - cgroup2 " in memory["view"]["out"]


def test_memory_swap_is_swap_alone_on_cgroup2(guest):
    # --memory-swap is memory plus swap; cgroup2's memory.swap.max counts swap alone
    assert seen(guest, "memory")["swap"] == {str(32 * MiB): "0", str(96 * MiB): str(64 * MiB), "-1": "max"}


def test_memory_limit_oom_kills_what_goes_over(guest):
    memory = seen(guest, "memory")
    assert memory["alone"] == 137  # SIGKILL from the OOM killer, as in Docker
    assert memory["fits"] == 0
    over = memory["over"]["out"]
    assert "dd=137" in over and "oom_kill 1" in over, memory["over"]  # the container saw it too


def test_pids_limit_stops_forks(guest):
    pids = seen(guest, "pids")
    assert pids["files"] == {"pids.max": "25"}
    forks = pids["forks"]
    assert forks["code"] != 0 and "can't fork" in forks["err"], forks
    assert "started 40" not in forks["out"]
    assert pids["zero"] == {"pids.max": "max"}  # 0: no limit, as in Docker


def test_cpus_sets_cpu_max_and_throttles(guest):
    cpus = seen(guest, "cpus")
    assert cpus["files"] == {"cpu.max": "50000 100000"}
    assert cpus["busy"]["code"] == 0, cpus["busy"]
    assert int(cpus["stat"]["nr_throttled"]) > 0, cpus["stat"]  # a busy loop at --cpus 0.2 hit its quota


def test_cli_flags(guest):
    cli = seen(guest, "cli")
    assert cli["code"] == 0, cli["err"]
    assert cli["files"] == {"memory.max": str(64 * MiB), "cpu.max": "50000 100000", "pids.max": "33"}


def test_run_steps_get_their_limits(guest):
    build = seen(guest, "build_limits")
    assert build["errors"] == [None, None]
    assert build["default"] == {"pids.max": str(seen(guest, "host")["default_run_limits"]), "memory.max": "max",
                                "cpu.max": "max 100000"}
    assert build["limited"] == {"pids.max": "50", "memory.max": str(64 * MiB), "cpu.max": "50000 100000"}
    assert "did not complete successfully: exit code: 137" in build["greedy"]


def test_fork_bomb_in_run_is_contained(guest):
    bomb = seen(guest, "fork_bomb")
    cap = bomb["default_cap"]
    assert cap == guest["expected_cap"]  # 4096, or a quarter of a small pid_max
    assert bomb["error"] and "did not complete successfully" in bomb["error"]
    assert bomb["peak"], "no RUN container cgroup was seen"
    name = max(bomb["peak"], key=lambda n: bomb["peak"][n])
    assert bomb["limit"][name] == str(cap)
    assert cap * 0.9 <= bomb["peak"][name] <= cap, bomb["peak"]  # it filled its cgroup, no more
    assert bomb["refused"].get(name, 0) > 0  # forks were refused at the limit
    assert bomb["spawn_failures"] == 0  # the rest of the system could start processes
    assert bomb["left"] == []  # no cgroup left behind
    assert bomb["after"] == {"error": None, "output": ["after"]}  # and the store still builds

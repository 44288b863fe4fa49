"""Limits and user namespaces in config.json, without running anything: the
v1 fields, the cgroup2 `unified` keys, Docker's checks of the flag values."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.container import InvalidOption, RunOptions
from dockyard.container.options import parse_cpus, parse_memory, resource_limits
from dockyard.errors import ContainerRuntimeError
from dockyard.runtime.spec import (
    Limits,
    UserNamespace,
    cgroup_version,
    limit_resources,
    make_spec,
)

MiB = 1 << 20


def test_v1_resources():
    got = limit_resources(Limits(memory=64 * MiB, cpus=1.5, pids=100), version=1, swap_accounting=True)
    assert got == {"memory": {"limit": 64 * MiB, "swap": 128 * MiB},
                   "cpu": {"quota": 150_000, "period": 100_000},
                   "pids": {"limit": 100}}


def test_v1_swap_values_and_no_swap_accounting():
    assert limit_resources(Limits(memory=64 * MiB, memory_swap=-1), 1, True)["memory"]["swap"] == -1
    assert limit_resources(Limits(memory=64 * MiB, memory_swap=96 * MiB), 1, True)["memory"]["swap"] == 96 * MiB
    # without swap accounting runc would fail on a swap value: it is left out, as Docker does
    assert limit_resources(Limits(memory=64 * MiB), 1, False) == {"memory": {"limit": 64 * MiB}}


def test_v2_unified_keys():
    got = limit_resources(Limits(memory=64 * MiB, cpus=0.5, pids=10), version=2, swap_accounting=True)
    # memory.swap.max counts swap alone: Docker's default of as much swap as memory
    assert got == {"unified": {"memory.max": str(64 * MiB), "memory.swap.max": str(64 * MiB),
                               "cpu.max": "50000 100000", "pids.max": "10"}}
    assert limit_resources(Limits(memory=64 * MiB, memory_swap=-1), 2, True)["unified"]["memory.swap.max"] == "max"
    assert "memory.swap.max" not in limit_resources(Limits(memory=64 * MiB), 2, False)["unified"]
    assert limit_resources(Limits(), 2, True) == {}


def test_tiny_cpu_share_keeps_the_kernel_minimum_quota():
    assert limit_resources(Limits(cpus=0.001), 1, True)["cpu"]["quota"] == 1000


@pytest.mark.parametrize("kwargs", [{"memory": 0}, {"memory": -5}, {"memory_swap": 10},
                                    {"memory": 100, "memory_swap": 50}, {"cpus": 0}, {"pids": 0}])
def test_limits_are_checked(kwargs):
    with pytest.raises(ContainerRuntimeError):
        Limits(**kwargs)


def test_make_spec_puts_limits_beside_the_device_rules(tmp_path):
    spec = make_spec(rootfs=tmp_path, args=["true"], limits=Limits(pids=7))
    resources = spec["linux"]["resources"]
    assert resources["devices"][0] == {"allow": False, "access": "rwm"}
    key = "unified" if cgroup_version() == 2 else "pids"
    assert key in resources
    assert "pids" not in make_spec(rootfs=tmp_path, args=["true"])["linux"]["resources"]


def test_cgroup_version_reads_mountinfo(tmp_path):
    hybrid = tmp_path / "hybrid"
    hybrid.write_text(
        "30 24 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755\n"
        "31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
        "32 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
    unified = tmp_path / "unified"
    unified.write_text("30 24 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n")
    assert cgroup_version(hybrid) == 1
    assert cgroup_version(unified) == 2


def test_user_namespace_in_the_spec(tmp_path):
    ns = UserNamespace(200_000, 300_000)
    spec = make_spec(rootfs=tmp_path, args=["true"], network="none", userns=ns)
    assert {"type": "user"} in spec["linux"]["namespaces"]
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 200_000, "size": 65536}]
    assert spec["linux"]["gidMappings"] == [{"containerID": 0, "hostID": 300_000, "size": 65536}]
    sys_mount = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert sys_mount["type"] == "sysfs"  # its own network namespace: sysfs can be mounted
    # in a network namespace it does not own, the host's /sys is bound read-only
    spec = make_spec(rootfs=tmp_path, args=["true"], network="host", userns=ns)
    sys_mount = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert sys_mount["type"] == "bind" and "ro" in sys_mount["options"]
    assert "uidMappings" not in make_spec(rootfs=tmp_path, args=["true"])["linux"]
    with pytest.raises(ContainerRuntimeError):
        UserNamespace(0, 100_000)


@pytest.mark.parametrize("text, value", [("512", 512), ("64k", 64 << 10), ("64m", 64 * MiB),
                                         ("64MB", 64 * MiB), ("1.5g", 3 << 29), ("1t", 1 << 40)])
def test_parse_memory(text, value):
    assert parse_memory(text) == value


@pytest.mark.parametrize("text", ["", "lots", "64x", "-1", "1e3"])
def test_parse_memory_refuses(text):
    with pytest.raises(InvalidOption, match="invalid size"):
        parse_memory(text)


def test_parse_cpus():
    assert parse_cpus("1.25") == 1.25
    with pytest.raises(InvalidOption, match="not a number"):
        parse_cpus("two")


def test_resource_limits_follow_dockers_rules():
    assert resource_limits(RunOptions()) is None
    assert resource_limits(RunOptions(pids_limit=0, cpus=0)) is None
    assert resource_limits(RunOptions(pids_limit=-1)) is None
    assert resource_limits(RunOptions(memory=64 * MiB, memory_swap=-1, cpus=2, pids_limit=5),
                           cpu_count=4) == Limits(64 * MiB, -1, 2.0, 5)
    for opts, message in [(RunOptions(memory=5 * MiB), "minimum memory limit allowed is 6MB"),
                          (RunOptions(memory_swap=64 * MiB), "always set the memory limit"),
                          (RunOptions(memory=64 * MiB, memory_swap=32 * MiB), "larger than memory limit"),
                          (RunOptions(cpus=0.001), "range of CPUs is from 0.01 to 4.00"),
                          (RunOptions(cpus=5), "only 4 CPUs available")]:
        with pytest.raises(InvalidOption, match=message):
            resource_limits(opts, cpu_count=4)


def test_swap_accounting_probe_on_this_host():
    # whichever way this host is set up, the probe gives a bool and runc gets a valid spec
    from dockyard.runtime.spec import _swap_accounting

    assert isinstance(_swap_accounting(cgroup_version()), bool)
    assert Path("/sys/fs/cgroup").exists()


def test_cgroup_namespace_on_cgroup2_only(monkeypatch, tmp_path):
    # Docker's default: a private cgroup namespace on cgroup2 (the container's
    # /sys/fs/cgroup shows its own limits), the host's on v1.
    from dockyard.runtime import spec

    def kinds() -> list[str]:
        return [n["type"] for n in make_spec(rootfs=tmp_path, args=["true"])["linux"]["namespaces"]]

    monkeypatch.setattr(spec, "cgroup_version", lambda: 2)
    assert "cgroup" in kinds()
    monkeypatch.setattr(spec, "cgroup_version", lambda: 1)
    assert "cgroup" not in kinds()

"""config.json contents: Docker's defaults, cut to what the host can grant."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest

from dockyard.errors import ContainerRuntimeError
from dockyard.runtime import spec as oci
from dockyard.runtime._etc import hosts_content, resolv_content


def make(**kw):
    kw.setdefault("rootfs", Path("/r"))
    kw.setdefault("args", ["sh"])
    return oci.make_spec(**kw)


def test_docker_default_capabilities_bitmask():
    assert oci.capability_mask(oci.DEFAULT_CAPABILITIES) == 0xA80425FB


def test_capabilities_default_set_only_bounding_effective_permitted():
    caps = make()["process"]["capabilities"]
    assert set(caps) == {"bounding", "effective", "permitted"}
    expected = [c for c in oci.DEFAULT_CAPABILITIES if c in oci.host_capabilities()]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == expected


def test_capabilities_the_host_lacks_are_never_requested(monkeypatch):
    monkeypatch.setattr(oci, "_host_caps", frozenset(oci.DEFAULT_CAPABILITIES) - {"CAP_MKNOD"})
    caps = make(capabilities=["SYS_RESOURCE", "CAP_chown", "mknod", "CAP_CHOWN"])["process"]["capabilities"]
    assert caps["bounding"] == ["CAP_CHOWN"]
    with pytest.raises(ContainerRuntimeError, match="unknown capability: CAP_WIZARDRY"):
        make(capabilities=["CAP_WIZARDRY"])


def test_host_bounding_set_matches_proc():
    with open("/proc/self/status") as fh:
        bnd = next(int(line.split()[1], 16) for line in fh if line.startswith("CapBnd:"))
    assert oci.capability_mask(oci.host_capabilities()) == bnd


def test_namespaces_by_network_mode():
    def kinds(network):
        return {ns["type"]: ns.get("path") for ns in make(network=network)["linux"]["namespaces"]}

    assert kinds("host") == {"pid": None, "ipc": None, "uts": None, "mount": None}
    assert kinds("none") == {"pid": None, "ipc": None, "uts": None, "mount": None, "network": None}
    assert kinds("/run/netns/x")["network"] == "/run/netns/x"
    with pytest.raises(ContainerRuntimeError, match="unknown network mode"):
        make(network="bridge")


def test_kernel_mounts_then_caller_mounts():
    extra = oci.bind_mount("/src/hosts", "/etc/hosts", readonly=True)
    mounts = make(mounts=[extra])["mounts"]
    dests = [m["destination"] for m in mounts]
    assert dests == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue",
                     "/dev/shm", "/etc/hosts"]
    assert mounts[-1] == {"destination": "/etc/hosts", "type": "bind", "source": "/src/hosts",
                          "options": ["rbind", "rprivate", "ro"]}
    sysfs = mounts[3]
    assert "ro" in sysfs["options"] and "nosuid" in sysfs["options"]
    # Each spec gets its own option lists.
    mounts[0]["options"].append("oops")
    assert "oops" not in make()["mounts"][0]["options"]


def test_process_fields_and_defaults():
    s = make(args=["echo", "hi"], env=["A=1"], cwd="/w", uid=5, gid=6, additional_gids=[7],
             terminal=True, hostname="h", readonly_rootfs=True)
    p = s["process"]
    assert p["args"] == ["echo", "hi"] and p["env"] == ["A=1"] and p["cwd"] == "/w"
    assert p["user"] == {"uid": 5, "gid": 6, "additionalGids": [7]}
    assert p["terminal"] is True and p["noNewPrivileges"] is False
    assert "rlimits" not in p
    assert s["root"] == {"path": "/r", "readonly": True}
    assert s["hostname"] == "h"
    linux = s["linux"]
    assert "/proc/kcore" in linux["maskedPaths"] and "/sys/firmware" in linux["maskedPaths"]
    assert "/proc/sys" in linux["readonlyPaths"]
    assert linux["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    null = {"allow": True, "access": "rwm", "type": "c", "major": 1, "minor": 3}
    assert null in linux["resources"]["devices"]
    assert "seccomp" not in linux and "cgroupsPath" not in linux
    json.dumps(s)


def test_optional_seccomp_cgroups_nonewprivs():
    profile = {"defaultAction": "SCMP_ACT_ALLOW"}
    s = make(seccomp=profile, cgroups_path="dockyard/x", no_new_privileges=True)
    assert s["linux"]["seccomp"] == profile and s["linux"]["cgroupsPath"] == "dockyard/x"
    assert s["process"]["noNewPrivileges"] is True


def test_rlimits_are_clamped_to_the_hosts_hard_limit(monkeypatch):
    monkeypatch.setattr(oci, "_host_caps", frozenset(oci.DEFAULT_CAPABILITIES))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    (limit,) = make(rlimits={"nofile": (1048576, 1048576)})["process"]["rlimits"]
    assert limit["type"] == "RLIMIT_NOFILE"
    if hard != resource.RLIM_INFINITY:
        assert limit["hard"] == min(hard, 1048576) and limit["soft"] <= limit["hard"]
    monkeypatch.setattr(oci, "_host_caps", frozenset(oci.CAPABILITY_NUMBERS))
    (limit,) = make(rlimits={"RLIMIT_NOFILE": (1048576, 1048576)})["process"]["rlimits"]
    assert limit == {"type": "RLIMIT_NOFILE", "soft": 1048576, "hard": 1048576}
    with pytest.raises(ContainerRuntimeError, match="unknown rlimit"):
        make(rlimits={"bogus": (1, 1)})


def test_bad_arguments():
    with pytest.raises(ContainerRuntimeError, match="no command"):
        make(args=[])
    with pytest.raises(ContainerRuntimeError, match="absolute"):
        make(cwd="rel")


def test_write_config_is_private(tmp_path):
    path = oci.write_config(tmp_path, make())
    assert json.loads(path.read_text())["process"]["args"] == ["sh"]
    assert path.stat().st_mode & 0o077 == 0


def test_hosts_and_resolv_conf(tmp_path):
    hosts = hosts_content("box", [("db", "10.0.0.5")])
    assert hosts.splitlines()[0] == "127.0.0.1\tlocalhost box"
    assert hosts.splitlines()[-1] == "10.0.0.5\tdb"
    src = tmp_path / "resolv.conf"
    src.write_text("nameserver 127.0.0.53\noptions edns0\n")
    assert resolv_content("host", src) == "nameserver 127.0.0.53\noptions edns0\n"
    assert "nameserver" not in resolv_content("none", src)
    filtered = resolv_content("/run/netns/x", src)
    assert "127.0.0.53" not in filtered and "nameserver 8.8.8.8" in filtered
    assert "options edns0" in filtered
    src.write_text("nameserver 192.0.2.1\n")
    assert resolv_content("/run/netns/x", src) == "nameserver 192.0.2.1\n"

"""Docker's security defaults and the flags that change them."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from dockyard.container import InvalidOption
from dockyard.runtime.spec import (
    DEFAULT_CAPABILITIES,
    capability_mask,
    host_capabilities,
)

pytestmark = pytest.mark.root

BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def _caps(text: str, field: str = "CapEff") -> int:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(f"{field} not in {text!r}")


def test_default_capabilities_are_dockers(ctr_run):
    out = ctr_run("cat", "/proc/self/status").out
    expected = capability_mask(c for c in DEFAULT_CAPABILITIES if c in host_capabilities())
    assert _caps(out) == _caps(out, "CapBnd") == expected
    assert _caps(out, "CapInh") == _caps(out, "CapAmb") == 0


def test_cap_drop_all_prevents_chown(ctr_run):
    assert ctr_run("chown", "1000", "/tmp").code == 0
    result = ctr_run("chown", "1000", "/tmp", cap_drop=["ALL"])
    assert result.code != 0 and "Operation not permitted" in result.err
    assert _caps(ctr_run("cat", "/proc/self/status", cap_drop=["ALL"]).out) == 0


def test_cap_add_and_drop_single(ctr_run):
    out = ctr_run("cat", "/proc/self/status", cap_add=["NET_ADMIN"], cap_drop=["CHOWN"]).out
    caps = _caps(out)
    assert caps & capability_mask(["CAP_NET_ADMIN"])
    assert not caps & capability_mask(["CAP_CHOWN"])
    assert ctr_run("chown", "1", "/tmp", cap_drop=["chown"]).code != 0
    with pytest.raises(InvalidOption, match="unknown capability"):
        ctr_run("true", cap_add=["NOT_A_CAP"])


def test_privileged_gets_every_host_capability_and_devices(ctr_run):
    result = ctr_run("sh", "-c", "cat /proc/self/status; mkdir /mnt; mount -t tmpfs none /mnt && "
                     "echo mounted; ls /dev", privileged=True)
    assert _caps(result.out) == capability_mask(host_capabilities())
    assert "Seccomp:\t0" in result.out and "mounted" in result.out
    host_devices = {d for d in ("loop-control", "kmsg", "fuse") if os.path.exists("/dev/" + d)}
    assert host_devices <= set(result.out.split())
    # Without --privileged: no mount, no extra devices.
    plain = ctr_run("sh", "-c", "mkdir /mnt; mount -t tmpfs none /mnt && echo mounted; ls /dev")
    assert "mounted" not in plain.out and "kmsg" not in plain.out.split()


def test_proc_and_sys_are_masked_and_read_only(ctr_run):
    # /proc/keys is the host's key list unless masked (by /dev/null, so it reads empty).
    result = ctr_run("sh", "-c", "wc -c < /proc/keys; ls /sys/firmware | wc -l; "
                     "echo 1 > /proc/sys/vm/drop_caches || echo ro-proc; "
                     "touch /sys/x 2>/dev/null || echo ro-sys; "
                     "grep -E ' /proc/(sys|bus) ' /proc/self/mounts | grep -c ' ro,'")
    assert result.out.split() == ["0", "0", "ro-proc", "ro-sys", "2"]


def test_seccomp_default_unconfined_and_custom(ctr_run, tmp_path):
    assert "Seccomp:\t2" in ctr_run("cat", "/proc/self/status").out
    assert "Seccomp:\t0" in ctr_run("cat", "/proc/self/status", seccomp="unconfined").out
    profile = tmp_path / "deny-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    denied = ctr_run("mkdir", "/tmp/new", seccomp=str(profile))
    assert denied.code != 0 and "Operation not permitted" in denied.err
    assert ctr_run("mkdir", "/tmp/new").code == 0
    with pytest.raises(InvalidOption, match="seccomp profile"):
        ctr_run("true", seccomp=str(tmp_path / "missing.json"))


@pytest.fixture
def suid_image(derive_image):
    # A setuid-root copy of busybox named `id`, allowed by busybox.conf to keep root.
    with open(BUSYBOX, "rb") as fh:
        data = fh.read()
    return derive_image("suid:1", files={
        "/usr/local/bin/id": (data, 0o4755),
        "/etc/busybox.conf": ("[SUID]\nid = ssx root.root\n", 0o644)})


def test_no_new_privileges_stops_setuid(ctr_run, suid_image):
    gained = ctr_run("/usr/local/bin/id", image=suid_image, user="app")
    assert "euid=0(root)" in gained.out
    blocked = ctr_run("/usr/local/bin/id", image=suid_image, user="app", no_new_privileges=True)
    assert "euid=0" not in blocked.out and blocked.code != 0
    assert "NoNewPrivs:\t1" in ctr_run("cat", "/proc/self/status", no_new_privileges=True).out


def test_no_descriptor_of_ours_reaches_the_container(ctr_run, dy):
    leak = os.open("/etc/hostname", os.O_RDONLY)  # inheritable on purpose
    os.set_inheritable(leak, True)
    try:
        listing = ctr_run("ls", "/proc/self/fd").out.split()
        assert listing == ["0", "1", "2", "3"]  # 3 is ls's own directory handle
        proc = dy("run", "--rm", "busybox", "ls", "/proc/self/fd")
        assert proc.stdout.split() == ["0", "1", "2", "3"]
    finally:
        os.close(leak)


@pytest.mark.parametrize("workdir", ["/proc/self/fd/7", "/proc/self/cwd", "/sys/fs/cgroup", "/dev/fd/8"])
def test_workdir_cannot_reach_host_descriptors(ctr_run, workdir):
    with pytest.raises(InvalidOption, match="kernel filesystem"):
        ctr_run("pwd", workdir=workdir)


def test_workdir_symlinks_to_proc_are_refused(ctr_run, derive_image, tmp_path):
    evil = derive_image("evil:1", files={"/evil": ("->/proc/self/fd", 0o777)},
                        config={"WorkingDir": "/evil/7"})
    with pytest.raises(InvalidOption, match="kernel filesystem"):
        ctr_run("pwd", image=evil)
    host = tmp_path / "shared"
    host.mkdir()
    os.symlink("/proc/self/fd/7", host / "link")
    with pytest.raises(InvalidOption, match="kernel filesystem"):
        ctr_run("pwd", workdir="/mnt/link", mounts=[_bind(host, "/mnt")])
    # An ordinary directory inside a bind mount is fine.
    (host / "sub").mkdir()
    assert ctr_run("pwd", workdir="/mnt/sub", mounts=[_bind(host, "/mnt")]).out == "/mnt/sub\n"


def _bind(source, target):
    from dockyard.container import MountSpec

    return MountSpec("bind", target, str(source))

"""OCI runtime-spec config.json for runc, with Docker's defaults.

The defaults follow what `docker run` gives an unprivileged container: the 14
default capabilities (bounding/effective/permitted only: inheritable and
ambient stay empty, as Docker does since CVE-2022-24769), the kernel
filesystems on /proc /dev /sys, the masked and read-only /proc paths, and the
device cgroup allow list. The host may lack some capability in its own
bounding set (CAP_SYS_RESOURCE on the build machines): asking runc for it
fails the whole run, so every capability list is cut down to the host's.

Resource limits (`Limits`) become `linux.resources`: the v1 fields (memory
limit and memory+swap, CFS quota and period, pids) where runc drives the v1
controllers (legacy and hybrid hosts), `linux.resources.unified` keys where
/sys/fs/cgroup is cgroup2; there the container also gets its own cgroup
namespace, as Docker's default, so its /sys/fs/cgroup shows its own limits
(tests/vm proves this on a cgroup2-only kernel). A user namespace (`UserNamespace`) maps the
container's ids 0..size-1 onto a range of subordinate host ids.
"""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.errors import ContainerRuntimeError

__all__ = ["CAPABILITY_NUMBERS", "DEFAULT_CAPABILITIES", "DEFAULT_MASKED_PATHS",
           "DEFAULT_READONLY_PATHS", "Limits", "UserNamespace", "bind_mount", "capability_mask",
           "cgroup_version", "host_capabilities", "limit_resources", "make_spec", "write_config"]

OCI_VERSION = "1.0.2"

CAPABILITY_NUMBERS: dict[str, int] = {name: n for n, name in enumerate((
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"))}

# Docker's default set (moby oci/defaults.go), in Docker's order.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")

DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware")

DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# Docker's device cgroup rules: deny everything, then allow the basic nodes
# (null, zero, full, urandom, random, tty, console) and keep /dev/fuse denied.
# runc appends its own allow list (ptys, ptmx, tun, mknod) after these.
_DEVICE_RULES: tuple[tuple[bool, str | None, int | None, int | None], ...] = (
    (False, None, None, None),
    (True, "c", 1, 5), (True, "c", 1, 3), (True, "c", 1, 9), (True, "c", 1, 8),
    (True, "c", 5, 0), (True, "c", 5, 1),
    (False, "c", 10, 229),
)

_KERNEL_MOUNTS: tuple[dict[str, Any], ...] = (
    {"destination": "/proc", "type": "proc", "source": "proc",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
)

# Mount targets that live in the rootfs itself (the others sit inside these).
KERNEL_MOUNT_ROOTS: tuple[str, ...] = ("/proc", "/dev", "/sys")

_host_caps: frozenset[str] | None = None


def host_capabilities() -> frozenset[str]:
    """Capabilities in this process's bounding set: the most a container can get."""
    global _host_caps
    if _host_caps is None:
        mask = None
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapBnd:"):
                    mask = int(line.split()[1], 16)
        if mask is None:
            raise ContainerRuntimeError("cannot read the capability bounding set from /proc/self/status")
        _host_caps = frozenset(n for n, bit in CAPABILITY_NUMBERS.items() if mask >> bit & 1)
    return _host_caps


def capability_mask(names: Iterable[str]) -> int:
    """The /proc/PID/status bitmask for a set of capability names."""
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITY_NUMBERS[name]
    return mask


def _normalize_caps(names: Iterable[str]) -> list[str]:
    host = host_capabilities()
    out: list[str] = []
    for name in names:
        full = name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()
        if full not in CAPABILITY_NUMBERS:
            raise ContainerRuntimeError(f"unknown capability: {name}")
        # Asking for a capability the host lacks makes runc fail the run.
        if full in host and full not in out:
            out.append(full)
    return out


def _can_raise_rlimits() -> bool:
    return "CAP_SYS_RESOURCE" in host_capabilities()


def _rlimits(limits: Mapping[str, tuple[int, int]]) -> list[dict[str, Any]]:
    out = []
    for name, (soft, hard) in limits.items():
        key = name.upper() if name.upper().startswith("RLIMIT_") else "RLIMIT_" + name.upper()
        if not hasattr(resource, key):
            raise ContainerRuntimeError(f"unknown rlimit: {name}")
        if not _can_raise_rlimits():
            # Without CAP_SYS_RESOURCE runc cannot raise a hard limit past ours.
            _, host_hard = resource.getrlimit(getattr(resource, key))
            if host_hard != resource.RLIM_INFINITY:
                hard = min(hard, host_hard)
                soft = min(soft, hard)
        out.append({"type": key, "soft": soft, "hard": hard})
    return out


@dataclass(frozen=True)
class Limits:
    """Resource limits of one container; None means no limit.

    `memory_swap` is memory plus swap, as Docker's --memory-swap: None gives
    twice `memory` (Docker's default), -1 unlimited swap. `cpus` is a share
    of CPUs (0.5 = half of one CPU per CFS period), `pids` a process count.
    """

    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    pids: int | None = None

    def __post_init__(self) -> None:
        if self.memory is not None and self.memory <= 0:
            raise ContainerRuntimeError(f"memory limit must be positive: {self.memory}")
        if self.memory_swap not in (None, -1) and (self.memory is None or self.memory_swap < self.memory):
            raise ContainerRuntimeError("memory+swap limit must be at least the memory limit")
        if self.cpus is not None and not self.cpus > 0:
            raise ContainerRuntimeError(f"cpus must be positive: {self.cpus}")
        if self.pids is not None and self.pids <= 0:
            raise ContainerRuntimeError(f"pids limit must be positive: {self.pids}")

    @property
    def swap_total(self) -> int | None:
        """Memory plus swap in bytes, -1 for unlimited, None without a memory limit."""
        if self.memory is None:
            return None
        return self.memory * 2 if self.memory_swap is None else self.memory_swap


CPU_PERIOD = 100_000  # microseconds, Docker's CFS period for --cpus
_CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_version(mountinfo: Path = Path("/proc/self/mountinfo")) -> int:
    """2 when /sys/fs/cgroup is a cgroup2 mount (unified), else 1 (legacy or hybrid:
    runc then drives the v1 controllers)."""
    fstype = ""
    with open(mountinfo, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 6 and fields[4] == str(_CGROUP_ROOT) and "-" in fields:
                fstype = fields[fields.index("-") + 1]  # the last mount there is the visible one
    return 2 if fstype == "cgroup2" else 1


def _swap_accounting(version: int) -> bool:
    # Without swap accounting (swapaccount=0, or no swap controller) runc fails
    # on a memory+swap value, so it is left out, as Docker does.
    if version == 1:
        return (_CGROUP_ROOT / "memory" / "memory.memsw.limit_in_bytes").exists()
    return any(_CGROUP_ROOT.glob("*/memory.swap.max"))


def limit_resources(limits: Limits, version: int | None = None,
                    swap_accounting: bool | None = None) -> dict[str, Any]:
    """The `linux.resources` entries for `limits` on a cgroup v1 or v2 host."""
    version = cgroup_version() if version is None else version
    swap = swap_accounting if swap_accounting is not None else _swap_accounting(version)
    quota = None if limits.cpus is None else max(1000, round(limits.cpus * CPU_PERIOD))
    total = limits.swap_total
    out: dict[str, Any] = {}
    if version == 2:
        unified: dict[str, str] = {}
        if limits.memory is not None:
            unified["memory.max"] = str(limits.memory)
            if swap and total is not None:  # v2 counts swap alone
                unified["memory.swap.max"] = "max" if total == -1 else str(total - limits.memory)
        if quota is not None:
            unified["cpu.max"] = f"{quota} {CPU_PERIOD}"
        if limits.pids is not None:
            unified["pids.max"] = str(limits.pids)
        if unified:
            out["unified"] = unified
        return out
    if limits.memory is not None:
        out["memory"] = {"limit": limits.memory}
        if swap and total is not None:
            out["memory"]["swap"] = total
    if quota is not None:
        out["cpu"] = {"quota": quota, "period": CPU_PERIOD}
    if limits.pids is not None:
        out["pids"] = {"limit": limits.pids}
    return out


@dataclass(frozen=True)
class UserNamespace:
    """Container uids/gids 0..size-1 are host ids uid../gid.. (subordinate ids)."""

    uid: int
    gid: int
    size: int = 65536

    def __post_init__(self) -> None:
        if self.uid <= 0 or self.gid <= 0 or self.size <= 0:
            raise ContainerRuntimeError("a user namespace needs a non-root host id range")

    def host_uid(self, uid: int) -> int:
        return self.uid + uid

    def host_gid(self, gid: int) -> int:
        return self.gid + gid

    def mappings(self) -> dict[str, list[dict[str, int]]]:
        return {"uidMappings": [{"containerID": 0, "hostID": self.uid, "size": self.size}],
                "gidMappings": [{"containerID": 0, "hostID": self.gid, "size": self.size}]}


def bind_mount(source: Path | str, destination: str, *, readonly: bool = False) -> dict[str, Any]:
    """An OCI bind mount entry (recursive, private)."""
    options = ["rbind", "rprivate"]
    if readonly:
        options.append("ro")
    return {"destination": destination, "type": "bind", "source": str(source), "options": options}


def make_spec(
    *,
    rootfs: Path,
    args: Sequence[str],
    env: Sequence[str] = (),
    cwd: str = "/",
    uid: int = 0,
    gid: int = 0,
    additional_gids: Sequence[int] = (),
    terminal: bool = False,
    readonly_rootfs: bool = False,
    hostname: str = "dockyard",
    network: str = "host",
    mounts: Sequence[Mapping[str, Any]] = (),
    capabilities: Iterable[str] | None = None,
    no_new_privileges: bool = False,
    rlimits: Mapping[str, tuple[int, int]] | None = None,
    seccomp: Mapping[str, Any] | None = None,
    cgroups_path: str | None = None,
    masked_paths: Sequence[str] = DEFAULT_MASKED_PATHS,
    readonly_paths: Sequence[str] = DEFAULT_READONLY_PATHS,
    annotations: Mapping[str, str] | None = None,
    privileged: bool = False,
    devices: Sequence[Mapping[str, Any]] = (),
    limits: Limits | None = None,
    userns: UserNamespace | None = None,
) -> dict[str, Any]:
    """Build a config.json dict.

    network: "host" shares the host's network namespace, "none" gets a new
    (empty) one, and any other value is the path of a namespace to join.
    `mounts` are appended after the kernel filesystems, in order (OCI dicts,
    see `bind_mount`). `capabilities` defaults to Docker's set; either way only
    the ones in the host's bounding set are asked for. `privileged` makes
    /sys and the cgroup mount writable and allows every device in the device
    cgroup (masked paths, capabilities and seccomp are the caller's to set);
    `devices` are OCI device nodes to create in /dev. `limits` become
    cgroup resources (see `limit_resources`). `userns` runs the container in a
    new user namespace; without a network namespace of its own there, /sys is
    the host's, bound read-only (the kernel refuses a sysfs mount then).
    """
    if not args:
        raise ContainerRuntimeError("no command given to run")
    if not cwd.startswith("/"):
        raise ContainerRuntimeError(f"working directory must be absolute: {cwd}")
    caps = _normalize_caps(DEFAULT_CAPABILITIES if capabilities is None else capabilities)
    process: dict[str, Any] = {
        "terminal": terminal,
        "user": {"uid": uid, "gid": gid},
        "args": list(args),
        "env": list(env),
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": list(caps), "permitted": list(caps)},
        "noNewPrivileges": no_new_privileges,
    }
    if additional_gids:
        process["user"]["additionalGids"] = list(additional_gids)
    if rlimits:
        process["rlimits"] = _rlimits(rlimits)

    namespaces: list[dict[str, str]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if network == "none":
        namespaces.append({"type": "network"})
    elif network != "host":
        if not network.startswith("/"):
            raise ContainerRuntimeError(f"unknown network mode: {network}")
        namespaces.append({"type": "network", "path": network})
    if userns is not None:
        namespaces.append({"type": "user"})
    if cgroup_version() == 2:
        # Docker's default on cgroup2 (--cgroupns private): the container's
        # /sys/fs/cgroup is its own cgroup, with its limits in memory.max etc.
        namespaces.append({"type": "cgroup"})

    rules: list[dict[str, Any]] = []
    for allow, kind, major, minor in ((True, None, None, None),) if privileged else _DEVICE_RULES:
        rule: dict[str, Any] = {"allow": allow, "access": "rwm"}
        if kind is not None:
            rule.update(type=kind, major=major, minor=minor)
        rules.append(rule)

    if limits is not None and limits != Limits():
        from dockyard import rootless

        if rootless.active():
            raise ContainerRuntimeError(
                "resource limits (--memory, --cpus, --pids-limit) need root: rootless "
                "containers get no cgroup of their own")
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "maskedPaths": list(masked_paths),
        "readonlyPaths": list(readonly_paths),
        "resources": {"devices": rules, **(limit_resources(limits) if limits else {})},
    }
    if userns is not None:
        linux.update(userns.mappings())
    if devices:
        linux["devices"] = [dict(d) for d in devices]
    if seccomp is not None:
        linux["seccomp"] = dict(seccomp)
    if cgroups_path is not None:
        linux["cgroupsPath"] = cgroups_path

    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": str(rootfs), "readonly": readonly_rootfs},
        "hostname": hostname,
        "mounts": [_kernel_mount(m, privileged, host_sysfs=_host_sysfs(userns, network))
                   for m in _KERNEL_MOUNTS] + [dict(m) for m in mounts],
        "linux": linux,
    }
    if annotations:
        spec["annotations"] = dict(annotations)
    return spec


def _host_sysfs(userns: UserNamespace | None, network: str) -> bool:
    """sysfs can be mounted only by the user namespace owning the network
    namespace: not in the container's own userns joining another netns, nor
    rootless (dockyard's userns) on the host's network."""
    if userns is not None:
        return network != "none"
    from dockyard.rootless import in_user_namespace

    return network == "host" and in_user_namespace()


def _tty_group_mapped() -> bool:
    from dockyard.rootless import id_mapped

    return id_mapped("gid", 5)


def _kernel_mount(mount: Mapping[str, Any], privileged: bool, host_sysfs: bool = False) -> dict[str, Any]:
    options = list(mount["options"])
    if host_sysfs and mount["type"] == "sysfs":
        # sysfs may only be mounted by the user namespace owning the network
        # namespace; in a joined one, bind the host's, read-only (as Podman).
        return {"destination": "/sys", "type": "bind", "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    if mount["type"] == "devpts" and not _tty_group_mapped():
        options.remove("gid=5")     # rootless without subordinate ids: gid 5 does not exist
    if privileged and mount["type"] in ("sysfs", "cgroup"):
        options = [o for o in options if o != "ro"]  # as Docker: writable for --privileged
    return {**mount, "options": options}


def write_config(bundle: Path, spec: Mapping[str, Any]) -> Path:
    """Write `spec` as the bundle's config.json (0600: it may carry secrets in env)."""
    path = Path(bundle) / "config.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(spec))  # dumps uses the C encoder; dump(fh) does not
    return path

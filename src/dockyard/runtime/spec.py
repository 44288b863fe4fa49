"""OCI runtime-spec config.json for runc, with Docker's defaults.

The defaults follow what `docker run` gives an unprivileged container: the 14
default capabilities (bounding/effective/permitted only: inheritable and
ambient stay empty, as Docker does since CVE-2022-24769), the kernel
filesystems on /proc /dev /sys, the masked and read-only /proc paths, and the
device cgroup allow list. The host may lack some capability in its own
bounding set (CAP_SYS_RESOURCE on the build machines): asking runc for it
fails the whole run, so every capability list is cut down to the host's.
"""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dockyard.errors import ContainerRuntimeError

__all__ = ["CAPABILITY_NUMBERS", "DEFAULT_CAPABILITIES", "DEFAULT_MASKED_PATHS",
           "DEFAULT_READONLY_PATHS", "bind_mount", "capability_mask", "host_capabilities",
           "make_spec", "write_config"]

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
) -> dict[str, Any]:
    """Build a config.json dict.

    network: "host" shares the host's network namespace, "none" gets a new
    (empty) one, and any other value is the path of a namespace to join.
    `mounts` are appended after the kernel filesystems, in order (OCI dicts,
    see `bind_mount`). `capabilities` defaults to Docker's set; either way only
    the ones in the host's bounding set are asked for. `privileged` makes
    /sys and the cgroup mount writable and allows every device in the device
    cgroup (masked paths, capabilities and seccomp are the caller's to set);
    `devices` are OCI device nodes to create in /dev.
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

    rules: list[dict[str, Any]] = []
    for allow, kind, major, minor in ((True, None, None, None),) if privileged else _DEVICE_RULES:
        rule: dict[str, Any] = {"allow": allow, "access": "rwm"}
        if kind is not None:
            rule.update(type=kind, major=major, minor=minor)
        rules.append(rule)

    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "maskedPaths": list(masked_paths),
        "readonlyPaths": list(readonly_paths),
        "resources": {"devices": rules},
    }
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
        "mounts": [_kernel_mount(m, privileged) for m in _KERNEL_MOUNTS] + [dict(m) for m in mounts],
        "linux": linux,
    }
    if annotations:
        spec["annotations"] = dict(annotations)
    return spec


def _kernel_mount(mount: Mapping[str, Any], privileged: bool) -> dict[str, Any]:
    options = list(mount["options"])
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

"""Docker's security defaults and their flags: capabilities, seccomp, --privileged.

Capabilities follow Docker's rules: `--cap-add ALL` starts from every
capability (minus --cap-drop), `--cap-drop ALL` keeps only --cap-add, and
otherwise the default set loses the drops and gains the adds. Whatever the
result, the runtime spec asks only for capabilities in the host's bounding
set: on hosts without CAP_SYS_RESOURCE (the build machines) `--privileged`
therefore gets every capability but that one, where Docker fails outright.

The seccomp profile is Docker's own format (containers-common ships one at
/usr/share/containers/seccomp.json); it is turned into the OCI form for this
machine's architecture, kernel and the container's capabilities, with the
rules' includes/excludes applied the way the Docker engine applies them.

`--userns=auto` (as Podman's): each container gets its own block of 65536
subordinate ids from /etc/subuid and /etc/subgid (the lines for the user
"dockyard", else root's), so its root is an unprivileged id on the host.
The image layers are shared, so they are not chowned: each lower layer is
given to the overlay through an idmapped mount (Linux 5.12+; overlayfs
takes idmapped layers since 5.19) that shows on-disk id N as block+N. The
container's own upper layer stores host ids (block+N).

Volumes and bind mounts are idmapped the same way (`IdMapper`): their files
keep in-container ids on disk, so a volume moves between containers with
different blocks, or none, and a host directory owned by 1000 is 1000 inside.
runc 1.1 cannot idmap a mount itself, so each clone is attached under the
container's directory and runc bind-mounts it from there (a bind of an
idmapped mount keeps the mapping).
"""

from __future__ import annotations

import ctypes
import json
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from dockyard.container.errors import InvalidOption
from dockyard.runtime._libc import libc
from dockyard.runtime.spec import (
    CAPABILITY_NUMBERS,
    DEFAULT_CAPABILITIES,
    UserNamespace,
)

__all__ = ["DEFAULT_SECCOMP_PATHS", "USERNS_OWNERS", "USERNS_SIZE", "IdMapper", "allocate_userns",
           "capabilities", "device_entry", "host_devices", "idmapped_layers", "load_seccomp", "seccomp_for",
           "subordinate_ranges"]

DEFAULT_SECCOMP_PATHS = ("/usr/share/containers/seccomp.json", "/etc/containers/seccomp.json")

# uname machine -> (libseccomp arch, the Go arch name Docker profiles use)
_ARCHES = {
    "x86_64": ("SCMP_ARCH_X86_64", "amd64"), "aarch64": ("SCMP_ARCH_AARCH64", "arm64"),
    "armv7l": ("SCMP_ARCH_ARM", "arm"), "i686": ("SCMP_ARCH_X86", "386"),
    "ppc64le": ("SCMP_ARCH_PPC64LE", "ppc64le"), "s390x": ("SCMP_ARCH_S390X", "s390x"),
    "riscv64": ("SCMP_ARCH_RISCV64", "riscv64"),
}


def _cap_name(name: str) -> str:
    full = name.strip().upper()
    if full != "ALL" and not full.startswith("CAP_"):
        full = "CAP_" + full
    if full != "ALL" and full not in CAPABILITY_NUMBERS:
        raise InvalidOption(f"unknown capability: {name!r}")
    return full


def capabilities(cap_add: Iterable[str], cap_drop: Iterable[str], privileged: bool) -> list[str]:
    """The container's capability names (before the cut to the host's set)."""
    every = list(CAPABILITY_NUMBERS)
    adds = [_cap_name(c) for c in cap_add]
    drops = [_cap_name(c) for c in cap_drop]
    if privileged:
        return every
    if "ALL" in adds:
        return [c for c in every if c not in drops]
    if "ALL" in drops:
        return list(dict.fromkeys(c for c in adds if c != "ALL"))
    kept = [c for c in DEFAULT_CAPABILITIES if c not in drops]
    return list(dict.fromkeys(kept + adds))


_profile_cache: dict[tuple[str, int], dict[str, Any]] = {}


def load_seccomp(path: str | None) -> dict[str, Any]:
    """A seccomp profile: the given JSON file, or the default one found on this host."""
    candidates = [path] if path else list(DEFAULT_SECCOMP_PATHS)
    for candidate in candidates:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        key = (candidate, st.st_mtime_ns)
        if key not in _profile_cache:
            try:
                with open(candidate, encoding="utf-8") as fh:
                    _profile_cache[key] = json.load(fh)
            except (OSError, ValueError) as exc:
                raise InvalidOption(f"loading seccomp profile {candidate}: {exc}") from exc
        return _profile_cache[key]
    if path:
        raise InvalidOption(f"opening seccomp profile ({path}) failed: no such file")
    raise InvalidOption("no default seccomp profile: install containers-common "
                        "(/usr/share/containers/seccomp.json) or pass --security-opt seccomp=unconfined")


def _kernel() -> tuple[int, int]:
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return 0, 0


def _version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor.split(".")[0] or 0)
    except ValueError:
        raise InvalidOption(f"seccomp profile: invalid minKernel {text!r}") from None


def _applies(rule: Mapping[str, Any], arch: str, caps: set[str], kernel: tuple[int, int]) -> bool:
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if arch in (exc.get("arches") or ()) or any(c in caps for c in exc.get("caps") or ()):
        return False
    if exc.get("minKernel") and kernel >= _version(exc["minKernel"]):
        return False
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if any(c not in caps for c in inc.get("caps") or ()):
        return False
    return not (inc.get("minKernel") and kernel < _version(inc["minKernel"]))


def seccomp_for(profile: Mapping[str, Any], caps: Iterable[str]) -> dict[str, Any]:
    """The OCI `linux.seccomp` object for this host from a Docker-format profile."""
    machine = os.uname().machine
    scmp_arch, go_arch = _ARCHES.get(machine, ("", machine))
    if profile.get("archMap"):
        arches: list[str] = []
        for arch_entry in profile["archMap"]:
            if arch_entry.get("architecture") == scmp_arch:
                arches = [scmp_arch, *(arch_entry.get("subArchitectures") or [])]
    else:
        arches = list(profile.get("architectures") or [])
    cap_set, kernel = set(caps), _kernel()
    syscalls = []
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, go_arch, cap_set, kernel):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        if not names:
            continue
        entry: dict[str, Any] = {"names": names, "action": rule["action"]}
        if rule.get("args"):
            entry["args"] = rule["args"]
        if rule.get("errnoRet") is not None:
            entry["errnoRet"] = rule["errnoRet"]
        syscalls.append(entry)
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "SCMP_ACT_ERRNO"),
                           "architectures": arches, "syscalls": syscalls}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if profile.get("flags"):
        out["flags"] = list(profile["flags"])
    return out


_SKIP_DEV = ("pts", "shm", "mqueue", "console", "ptmx", "fd", "stdin", "stdout", "stderr", "core")


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every character and block device of the host, as OCI device entries (--privileged)."""
    out: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == ".":
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DEV]
        for name in filenames:
            if rel == "." and name in _SKIP_DEV:
                continue
            path = os.path.join(dirpath, name)
            entry = device_entry(path, "/dev/" + str(Path(path).relative_to(root)))
            if entry is not None:
                out.append(entry)
    return out


def device_entry(path: str, target: str, *, owner: tuple[int, int] | None = None) -> dict[str, Any] | None:
    """The OCI device entry that recreates host device `path` at `target`
    (None when it is missing or not a device); `owner` overrides its uid/gid."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        return None
    uid, gid = owner if owner is not None else (st.st_uid, st.st_gid)
    return {"path": target, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
            "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "fileMode": stat.S_IMODE(st.st_mode), "uid": uid, "gid": gid}


# -- user namespaces (--userns=auto) ---------------------------------------------

USERNS_SIZE = 65536
USERNS_OWNERS = ("dockyard", "root")  # whose /etc/subuid lines are used, first found wins
SUBUID, SUBGID = Path("/etc/subuid"), Path("/etc/subgid")


def subordinate_ranges(path: Path, owners: Iterable[str] = USERNS_OWNERS) -> list[tuple[int, int]]:
    """(start, count) ranges of the first of `owners` listed in a subuid/subgid file."""
    wanted = list(owners)
    found: dict[str, list[tuple[int, int]]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            continue
        name = "root" if parts[0] == "0" else parts[0]
        if name in wanted and int(parts[1]) > 0:
            found.setdefault(name, []).append((int(parts[1]), int(parts[2])))
    for name in wanted:
        if name in found:
            return found[name]
    return []


def _blocks(ranges: list[tuple[int, int]], size: int) -> list[int]:
    return [start + i * size for start, count in ranges for i in range(count // size)]


def allocate_userns(in_use: Iterable[int], size: int = USERNS_SIZE) -> UserNamespace:
    """The first free block of `size` subordinate uids (and the matching gids).

    `in_use` are the host uids where other containers' blocks start.
    """
    uids = _blocks(subordinate_ranges(SUBUID), size)
    gids = _blocks(subordinate_ranges(SUBGID), size)
    if not uids or not gids:
        raise InvalidOption(f"--userns=auto needs {size} subordinate ids: add a line such as "
                            f"'dockyard:100000:{size * 10}' to {SUBUID} and {SUBGID}")
    taken = set(in_use)
    for uid, gid in zip(uids, gids):
        if uid not in taken:
            return UserNamespace(uid, gid, size)
    raise InvalidOption(f"--userns=auto: every block of {size} subordinate ids is in use; "
                        f"add more to {SUBUID} and {SUBGID}")


_CLONE_NEWUSER = 0x10000000
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = os.O_CLOEXEC
_MOUNT_ATTR_IDMAP = 0x00100000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
# the same numbers on every architecture but alpha
_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_MOUNT_SETATTR = 428, 429, 442


libc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _userns_fd(ns: UserNamespace) -> int:
    """An fd of a new user namespace with `ns`'s mappings (held by a short-lived child)."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only makes system calls and exits
        os.close(ready_r)
        os.close(done_w)
        code = 0 if libc.unshare(_CLONE_NEWUSER) == 0 else 1
        os.write(ready_w, bytes([code]))
        os.read(done_r, 1)
        os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"\0":
            raise InvalidOption("--userns=auto: the kernel refused a new user namespace")
        for kind, start in (("uid", ns.uid), ("gid", ns.gid)):
            with open(f"/proc/{pid}/{kind}_map", "w", encoding="ascii") as fh:
                fh.write(f"0 {start} {ns.size}\n")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(done_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


def _idmapped(path: Path, userns_fd: int, *, recursive: bool = False, what: str = "") -> int:
    """A detached clone of the mount at `path`, shifted by the namespace's mapping."""
    long = ctypes.c_long
    what = what or str(path)
    deep = _AT_RECURSIVE if recursive else 0
    fd = libc.syscall(long(_SYS_OPEN_TREE), long(_AT_FDCWD), os.fsencode(path),
                      long(_OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | deep))
    if fd < 0:
        raise InvalidOption(f"--userns=auto: cloning {what}: {os.strerror(ctypes.get_errno())}")
    attr = _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    if libc.syscall(long(_SYS_MOUNT_SETATTR), long(fd), b"", long(_AT_EMPTY_PATH | deep), ctypes.byref(attr),
                    long(ctypes.sizeof(attr))):
        err = ctypes.get_errno()
        os.close(fd)
        raise InvalidOption(f"--userns=auto: idmapped mount of {what}: {os.strerror(err)} "
                            "(needs Linux 5.12+ and a filesystem that supports idmapped mounts)")
    return int(fd)


class IdMapper:
    """Idmapped clones of volumes and bind sources, attached under `attach_dir`.

    Close it once the clones are attached (they stay); container clean-up
    takes them down again (mounts.detach_idmapped).
    """

    def __init__(self, ns: UserNamespace, attach_dir: Path):
        self.ns = ns
        self.dir = Path(attach_dir)
        self._userns: int | None = None
        self._count = 0

    def attach(self, source: Path, *, recursive: bool = True, what: str = "") -> Path:
        """Attach an idmapped clone of `source`; returns where it is now."""
        if self._userns is None:
            self.dir.mkdir(mode=0o711, exist_ok=True)
            self._userns = _userns_fd(self.ns)
        target = self.dir / str(self._count)
        self._count += 1
        if Path(source).is_dir():
            target.mkdir(mode=0o755)
        else:
            target.touch(mode=0o644)
        fd = _idmapped(Path(source), self._userns, recursive=recursive, what=what)
        try:
            long = ctypes.c_long
            if libc.syscall(long(_SYS_MOVE_MOUNT), long(fd), b"", long(_AT_FDCWD), os.fsencode(target),
                            long(_MOVE_MOUNT_F_EMPTY_PATH)):
                err = ctypes.get_errno()
                raise InvalidOption(f"--userns=auto: attaching {what or source}: {os.strerror(err)}")
        finally:
            os.close(fd)
        return target

    def enter(self) -> None:
        """Become the container's root (a `preexec_fn`): files written through
        the clones then get in-container ids, as the image shows them."""
        if self._userns is None or libc.setns(self._userns, _CLONE_NEWUSER) != 0:
            raise OSError(ctypes.get_errno(), "joining the container's user namespace")
        os.setgroups([])
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)

    def close(self) -> None:
        if self._userns is not None:
            os.close(self._userns)
            self._userns = None


@contextmanager
def idmapped_layers(lowers: Iterable[Path], ns: UserNamespace) -> Iterator[list[Path]]:
    """`/proc/self/fd/N` paths of idmapped clones of `lowers`, open while in the block.

    Mount the overlay inside the block: it keeps the clones alive afterwards.
    """
    with ExitStack() as stack:
        userns = _userns_fd(ns)
        stack.callback(os.close, userns)
        paths = []
        for lower in lowers:
            fd = _idmapped(Path(lower), userns)
            stack.callback(os.close, fd)
            paths.append(Path(f"/proc/self/fd/{fd}"))
        yield paths

"""One process in a container: the RUN step's (and later `dockyard run`'s) entry point.

`run_process` resolves the user against the image, writes /etc/hosts,
/etc/resolv.conf and /etc/hostname into a bundle directory outside the rootfs
and bind-mounts them, prepares the working directory, writes config.json,
runs the OCI runtime and removes the bundle.

Mount stubs: the runtime creates any missing mount point (/proc, /dev, /sys,
/etc/hosts...) inside the rootfs, so after a RUN on an overlay they sit in the
upper dir although the step never made them; BuildKit's layers leave them
out. `run_process` records which ones were missing before the run
(`RunResult.stubs`); the caller then calls `RunResult.remove_stubs(upper)`
(or `remove_mount_stubs`) before diffing the upper dir.

Limits: every RUN step gets `default_run_limits()`, a pids cgroup limit of
4096 processes (a quarter of the kernel's pid_max on a host where that is
less), so a fork bomb in a Dockerfile fills its own cgroup and not the host's
process table. Podman's containers get 2048 by default; BuildKit sets none.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.errors import ContainerRuntimeError
from dockyard.runtime import spec as oci
from dockyard.runtime._paths import scoped_resolve, split_clean

if TYPE_CHECKING:  # the runtime itself loads when a process runs: a cached build never needs it
    from dockyard.runtime.runc import Runtime, Stdio

__all__ = ["DEFAULT_PATH", "RUN_PIDS_LIMIT", "RunResult", "default_run_limits",
           "missing_mount_points", "prepare_cwd", "remove_mount_stubs", "run_process"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RUN_PIDS_LIMIT = 4096


def default_run_limits() -> oci.Limits | None:
    """The limits a RUN step gets unless the build says otherwise (see the module doc).
    None rootless: the user may not make cgroups, so runc could not apply them."""
    from dockyard import rootless

    if rootless.active():
        return None
    try:
        with open("/proc/sys/kernel/pid_max", encoding="ascii") as fh:
            pid_max = int(fh.read())
    except (OSError, ValueError):
        pid_max = 32768
    return oci.Limits(pids=max(64, min(RUN_PIDS_LIMIT, pid_max // 4)))

# Mount points every container gets (the kernel filesystems below these live
# inside them, not in the rootfs).
_STANDARD_TARGETS = ("/proc", "/dev", "/sys", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname")
_KERNEL_ROOTS = frozenset(p.strip("/") for p in oci.KERNEL_MOUNT_ROOTS)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class RunResult:
    """What a run left: the exit code and the mount stubs the runtime created.

    `stubs` are paths relative to the rootfs, parents before children.
    """

    # A plain class, not a dataclass: building one costs ~3M instructions at every start.
    __slots__ = ("exit_code", "stubs")

    def __init__(self, exit_code: int, stubs: tuple[str, ...] = ()):
        self.exit_code = exit_code
        self.stubs = stubs

    def __repr__(self) -> str:
        return f"RunResult(exit_code={self.exit_code!r}, stubs={self.stubs!r})"

    def remove_stubs(self, upper: Path) -> list[str]:
        """Delete this run's mount stubs from an overlay upper dir."""
        return remove_mount_stubs(upper, self.stubs)


def missing_mount_points(rootfs: Path, extra_targets: Iterable[str] = ()) -> list[str]:
    """Relative paths of mount points (and their missing parents) absent from `rootfs`.

    Targets are resolved inside the rootfs the way the runtime resolves them,
    so a symlinked /etc/resolv.conf names the file the runtime would create.
    The list has parents before children.
    """
    out: list[str] = []
    for target in [*_STANDARD_TARGETS, *extra_targets]:
        cleaned = split_clean(target)
        if not cleaned or (cleaned[0] in _KERNEL_ROOTS and len(cleaned) > 1):
            continue  # inside /proc, /dev or /sys: a kernel filesystem, not the rootfs
        parts = scoped_resolve(rootfs, target)
        for depth in range(1, len(parts) + 1):
            rel = "/".join(parts[:depth])
            if rel in out:
                continue
            if not os.path.lexists(os.path.join(rootfs, rel)):
                out.append(rel)
    return out


def _open_parent(upper_fd: int, parts: list[str]) -> int | None:
    """A directory fd for parts[:-1] under upper_fd, never through a symlink."""
    fd = os.dup(upper_fd)
    for part in parts[:-1]:
        try:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None  # gone, not a dir, or a symlink: leave it alone
        os.close(fd)
        fd = nxt
    return fd


def _remove_one(parent_fd: int, name: str) -> bool:
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError:
        return False
    if stat.S_ISDIR(st.st_mode):
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError:
            return False
        try:
            if os.listdir(child):
                return False
        finally:
            os.close(child)
    elif not (stat.S_ISREG(st.st_mode) and st.st_size == 0):
        return False  # symlinks, whiteouts and files with content are real changes
    # Keep the parent's times: removing the stub must not look like a change.
    pst = os.fstat(parent_fd)
    try:
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(name, dir_fd=parent_fd)
        else:
            os.unlink(name, dir_fd=parent_fd)
    except OSError:
        return False
    os.utime(parent_fd, ns=(pst.st_atime_ns, pst.st_mtime_ns))
    return True


def remove_mount_stubs(upper: Path, stubs: Iterable[str]) -> list[str]:
    """Delete the stubs that are still empty dirs or empty files from `upper`.

    Never follows a symlink (BuildKit CVE-2024-23652): each parent is opened
    with O_NOFOLLOW from the upper dir down. Returns the removed paths.
    """
    removed: list[str] = []
    candidates = {"/".join(split_clean(s)) for s in stubs} - {""}
    try:
        upper_fd = os.open(upper, _DIR_FLAGS)
    except OSError as exc:
        raise ContainerRuntimeError(f"opening upper dir {upper}: {exc.strerror}") from exc
    try:
        # Children first, so a stub dir is empty once its stub children are gone.
        for rel in sorted(candidates, key=lambda p: (-p.count("/"), p)):
            parts = rel.split("/")
            parent_fd = _open_parent(upper_fd, parts)
            if parent_fd is None:
                continue
            try:
                if _remove_one(parent_fd, parts[-1]):
                    removed.append(rel)
            finally:
                os.close(parent_fd)
    finally:
        os.close(upper_fd)
    return removed


def prepare_cwd(rootfs: Path, cwd: str, *, create: bool = True) -> str:
    """Check (and create) the working directory; return it cleaned.

    CVE-2024-21626: a working directory reached through /proc, /dev or /sys
    (`WORKDIR /proc/self/fd/7`, or a symlink leading there) can open a
    runtime's leaked descriptor to the host, so it is refused. A missing
    directory is created root-owned, 0755, the way runc would, through
    directory descriptors that never follow a symlink.
    """
    if not cwd.startswith("/"):
        raise ContainerRuntimeError(f"working directory must be an absolute path: {cwd}")
    cleaned = "/" + "/".join(split_clean(cwd))
    trail: list[str] = []
    parts = scoped_resolve(rootfs, cleaned, trail=trail)
    for step in trail:
        top = step.split("/", 1)[0]
        if top in _KERNEL_ROOTS:
            raise ContainerRuntimeError(
                f"working directory {cwd} leads into /{top}, a kernel filesystem in the container: refused")
    if create and parts:
        _mkdirs(rootfs, parts, cwd)
    return cleaned


def _mkdirs(rootfs: Path, parts: list[str], cwd: str) -> None:
    fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.fchmod(nxt, 0o755)  # not subject to our umask
            except OSError as exc:
                reason = "not a directory" if exc.errno in (errno.ENOTDIR, errno.ELOOP) else exc.strerror
                raise ContainerRuntimeError(f"working directory {cwd}: {reason}") from exc
            os.close(fd)
            fd = nxt
    except FileNotFoundError as exc:
        raise ContainerRuntimeError(f"working directory {cwd}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _env_with_defaults(env: Sequence[str], rootfs: Path, uid: int) -> list[str]:
    from dockyard.runtime.users import lookup_home

    out = list(env)
    names = {item.split("=", 1)[0] for item in out}
    if "PATH" not in names:
        out.append("PATH=" + DEFAULT_PATH)  # as BuildKit does for RUN
    if "HOME" not in names:
        out.append("HOME=" + lookup_home(rootfs, uid))
    return out


def run_process(
    rootfs: Path,
    args: Sequence[str],
    *,
    env: Sequence[str],
    cwd: str = "/",
    user: str = "",
    hostname: str = "dockyard",
    network: str = "host",
    extra_mounts: Sequence[Mapping[str, Any]] = (),
    extra_hosts: Sequence[tuple[str, str]] = (),
    stdin: Stdio = None,
    stdout: Stdio = None,
    stderr: Stdio = None,
    state_dir: Path,
    readonly_rootfs: bool = False,
    runtime: Runtime | None = None,
    capabilities: Iterable[str] | None = None,
    no_new_privileges: bool = False,
    rlimits: Mapping[str, tuple[int, int]] | None = None,
    seccomp: Mapping[str, Any] | None = None,
    cgroups_path: str | None = None,
    resolv_conf: Path = Path("/etc/resolv.conf"),
    limits: oci.Limits | None = None,
    privileged: bool = False,
    devices: Sequence[Mapping[str, Any]] = (),
) -> RunResult:
    """Run `args` in a container on `rootfs` and wait for it.

    `rootfs` is the container's root (typically an overlay mounted with
    `overlay.mounted`); `state_dir` is a dockyard-owned directory holding the
    runtime's state and the per-run bundle (removed afterwards). `network` is
    "host", "none" or a network namespace path. `extra_mounts` are OCI mount
    dicts (see `spec.bind_mount`). stdin defaults to /dev/null. `limits`
    are the container's cgroup limits (memory, cpus, pids). `privileged`
    drops the masked and read-only paths and opens the device cgroup;
    `devices` are host device nodes to create in the container.

    Returns a RunResult; a container that could not start at all raises
    `runc.ContainerStartError` (with Docker's 125/126/127 in `exit_code`).
    """
    from dockyard.runtime._etc import write_etc_files
    from dockyard.runtime.runc import find_runtime
    from dockyard.runtime.users import resolve_user

    rootfs = Path(os.path.abspath(rootfs))
    state_dir = Path(os.path.abspath(state_dir))
    uid, gid, groups = resolve_user(rootfs, user)
    full_env = _env_with_defaults(env, rootfs, uid)
    container_id = "dockyard-" + os.urandom(8).hex()
    bundle = state_dir / "bundles" / container_id
    bundle.mkdir(parents=True, mode=0o700)
    try:
        etc_mounts = write_etc_files(bundle, hostname=hostname, network=network,
                                     extra_hosts=extra_hosts, resolv_source=resolv_conf,
                                     readonly=readonly_rootfs)
        mounts = [*etc_mounts, *extra_mounts]
        stubs = missing_mount_points(rootfs, [str(m["destination"]) for m in extra_mounts])
        workdir = prepare_cwd(rootfs, cwd)
        config = oci.make_spec(
            rootfs=rootfs, args=args, env=full_env, cwd=workdir, uid=uid, gid=gid,
            additional_gids=groups, readonly_rootfs=readonly_rootfs, hostname=hostname,
            network=network, mounts=mounts, capabilities=capabilities,
            no_new_privileges=no_new_privileges, rlimits=rlimits, seccomp=seccomp,
            cgroups_path=cgroups_path, limits=limits, privileged=privileged, devices=devices,
            **({"masked_paths": (), "readonly_paths": ()} if privileged else {}))
        oci.write_config(bundle, config)
        rt = runtime or find_runtime(state_dir / "runtime")
        code = rt.run(bundle, container_id, stdin=stdin, stdout=stdout, stderr=stderr)
        return RunResult(code, tuple(stubs))
    finally:
        shutil.rmtree(bundle, ignore_errors=True)

"""Creating a container from an image: directory, rootfs, mounts, network, bundle.

`create` does all the set-up a start needs and undoes it on any failure;
`Launch` carries the result to whoever supervises the run (the foreground
`run` in run.py, or the detached monitor in monitor.py). `release` and
`remove` undo a container's resources, for every path that ends one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.container import network as net
from dockyard.container.errors import InvalidOption
from dockyard.container.mounts import (
    IDMAPPED_DIR,
    INIT_PATH,
    check_workdir,
    detach_idmapped,
    find_init,
    prepare_mounts,
)
from dockyard.container.options import PortSpec, RunOptions, resource_limits
from dockyard.container.process import (
    container_env,
    entrypoint_and_cmd,
    healthcheck,
    merged_env,
    stop_signal,
    working_dir,
)
from dockyard.container.records import (
    Container,
    container_root,
    initial_state,
    new_container,
    now,
    release_name,
    try_lock,
    write_json,
)
from dockyard.container.security import (
    IdMapper,
    allocate_userns,
    capabilities,
    host_devices,
    idmapped_layers,
    load_seccomp,
    seccomp_for,
)
from dockyard.container.volumes import VolumeStore
from dockyard.errors import ContainerRuntimeError
from dockyard.runtime import spec as oci
from dockyard.runtime._etc import write_etc_files
from dockyard.runtime.overlay import mount_overlay, unmount
from dockyard.runtime.runc import Runtime, find_runtime
from dockyard.runtime.users import lookup_home, resolve_user

__all__ = ["Launch", "container_runtime", "create", "release", "remove", "removed_exit_code",
           "sweep_trash"]

_NETWORK_ALIASES = {"private": "private", "bridge": "private", "default": "private",
                    "slirp4netns": "private", "host": "host", "none": "none"}


def container_runtime(store_root: Path) -> Runtime:
    """runc with its state next to the containers (trusted when found, as a run would fail loudly)."""
    state = container_root(store_root) / "runc"
    binary = shutil.which("runc") or shutil.which("runc", path="/usr/local/sbin:/usr/sbin:/sbin")
    return Runtime(binary, state) if binary else find_runtime(state)


class Launch:
    """A created container, ready for its supervisor."""

    # A plain class, not a dataclass: building one costs ~3M instructions at every start.
    def __init__(self, ctr: Container, runtime: Runtime, opts: RunOptions, store_root: Path,
                 slirp: net.Slirp | None = None, ports: list[PortSpec] | None = None):
        self.ctr = ctr
        self.runtime = runtime
        self.opts = opts
        self.store_root = store_root
        self.slirp = slirp
        self.ports = [] if ports is None else ports

    def network_ready(self) -> None:
        """Wait for slirp4netns and publish the ports (before the process starts)."""
        if self.slirp is not None:
            self.slirp.wait_ready()
            self.slirp.publish(self.ports)


def _network_mode(opts: RunOptions) -> str:
    mode = _NETWORK_ALIASES.get(opts.network)
    if mode is None:
        raise InvalidOption(f"network {opts.network} not found: use private, host or none")
    return mode  # with "none", -p/-P are recorded and publish nothing, as in Docker


def _exposed(cfg: dict[str, Any], opts: RunOptions) -> list[PortSpec]:
    ports = list(opts.publish)
    if opts.publish_all:
        have = {p.key for p in ports}
        for key in cfg.get("ExposedPorts") or {}:
            number, _, proto = key.partition("/")
            if number.isdigit() and f"{number}/{proto or 'tcp'}" not in have:
                ports.append(PortSpec(int(number), proto or "tcp"))
    return ports


def _security(opts: RunOptions) -> tuple[list[str], dict[str, Any] | None]:
    caps = capabilities(opts.cap_add, opts.cap_drop, opts.privileged)
    if opts.seccomp == "unconfined" or (opts.privileged and opts.seccomp is None):
        return caps, None
    return caps, seccomp_for(load_seccomp(opts.seccomp), caps)


def _userns(opts: RunOptions) -> bool:
    if opts.userns not in ("host", "auto", ""):
        raise InvalidOption(f"--userns={opts.userns}: dockyard supports host and auto")
    if opts.userns == "auto" and opts.privileged:
        raise InvalidOption("--privileged and --userns=auto cannot be combined")
    if opts.userns == "auto":
        from dockyard import rootless

        if rootless.active():
            raise InvalidOption("--userns=auto needs root: rootless, every container already "
                                "runs in the user's namespace of subordinate ids")
    return opts.userns == "auto"


def _claim_userns(root: Path, cdir: Path) -> oci.UserNamespace:
    """A block of subordinate ids no other container holds, recorded in cdir/userns."""
    fd = try_lock(root / "userns.lock", blocking=True)
    try:
        in_use = []
        for entry in os.scandir(root):
            if len(entry.name) == 64 and entry.path != str(cdir):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    in_use.append(int((Path(entry.path) / "userns").read_text().split()[0]))
        ns = allocate_userns(in_use)
        (cdir / "userns").write_text(f"{ns.uid} {ns.gid} {ns.size}\n")
        return ns
    finally:
        os.close(fd)  # type: ignore[arg-type]


def _check_reachable(path: Path, ns: oci.UserNamespace) -> None:
    # runc sets the rootfs up as the container's root: every directory above
    # it must let that (unprivileged) host id through.
    for parent in [*reversed(path.parents)]:
        st = os.stat(parent)
        mine = ns.uid <= st.st_uid < ns.uid + ns.size
        ours = ns.gid <= st.st_gid < ns.gid + ns.size
        if not (st.st_mode & 0o001 or (mine and st.st_mode & 0o100) or (ours and st.st_mode & 0o010)):
            raise InvalidOption(f"--userns=auto: {parent} is not searchable by the container's root "
                                f"(host uid {ns.uid}): allow it with chmod o+x or move the store")


def _mount_rootfs(lowers: list[Path], cdir: Path, rootfs: Path, ns: oci.UserNamespace | None) -> None:
    if ns is None:
        mount_overlay(lowers, cdir / "fs", cdir / "work", rootfs, volatile=True)
        return
    os.chmod(cdir, 0o711)
    _check_reachable(rootfs, ns)
    top = os.stat(lowers[0])
    os.chown(cdir / "fs", ns.host_uid(top.st_uid), ns.host_gid(top.st_gid))
    with idmapped_layers(lowers, ns) as shifted:
        mount_overlay(shifted, cdir / "fs", cdir / "work", rootfs, volatile=True)


def create(store: Any, image: Any, opts: RunOptions, image_name: str | None = None) -> Launch:
    """Set up a container of `image` (a store Image) for `opts`; hold `store.lock()` around it.

    `image_name` is the reference as the user wrote it (shown by ps and inspect).
    """
    cfg: dict[str, Any] = image.config.get("config") or {}
    entrypoint, cmd = entrypoint_and_cmd(image.config, opts.command, opts.entrypoint)
    argv = entrypoint + cmd
    if not argv:
        raise InvalidOption("no command specified")
    mode = _network_mode(opts)
    ports = _exposed(cfg, opts) if mode == "private" else []
    user = opts.user if opts.user is not None else (cfg.get("User") or "")
    cwd = working_dir(image.config, opts.workdir)
    caps, seccomp = _security(opts)
    limits = resource_limits(opts)
    want_userns = _userns(opts)
    health = healthcheck(image.config, opts)
    signo = stop_signal(image.config, opts)

    root = container_root(store.root)
    cid, name, cdir = new_container(root, opts.name)
    hostname = opts.hostname or (os.uname().nodename if mode == "host" else cid[:12])
    undo: list[Callable[[], None]] = [lambda: _remove_dir(root, cdir, name, cid)]
    try:
        from dockyard.snapshots import Snapshotter

        lowers = Snapshotter(store).lowers(image.diff_ids)
        rootfs = cdir / "merged"
        for sub in ("fs", "work", "merged", "bundle"):
            (cdir / sub).mkdir(mode=0o700 if sub == "bundle" else 0o755)
        # The network first: slirp4netns comes up while we mount and copy.
        slirp = None
        ns_path = "host" if mode == "host" else "none"
        if mode == "private":
            netns = cdir / "netns"
            net.create_netns(netns)
            undo.append(lambda: net.remove_netns(netns))
            slirp = net.start_slirp(netns, cdir)
            undo.append(slirp.stop)
            ns_path = str(netns)
            ports = net.resolve_ports(ports)
        userns = _claim_userns(root, cdir) if want_userns else None
        _mount_rootfs(lowers, cdir, rootfs, userns)
        undo.append(lambda: unmount(rootfs))
        uid, gid, groups = resolve_user(rootfs, user)
        groups = list(dict.fromkeys([gid, *groups]))  # Docker lists the primary group too (CVE-2023-25173)

        volumes = VolumeStore(store.root)
        idmap = IdMapper(userns, cdir / IDMAPPED_DIR) if userns is not None else None
        undo.append(lambda: detach_idmapped(cdir))
        try:
            mounts = prepare_mounts(opts.mounts, sorted(cfg.get("Volumes") or {}), rootfs, volumes,
                                    init=find_init() if opts.init else None, idmap=idmap)
        finally:
            if idmap is not None:
                idmap.close()
        undo.append(lambda: volumes.remove_quietly(mounts.anonymous))
        workdir = check_workdir(rootfs, cwd, mounts.sources)

        etc = write_etc_files(cdir / "bundle", hostname=hostname, network=ns_path,
                              contents=net.etc_contents(mode, hostname, opts.add_hosts))
        if userns is not None:  # the container's root owns its /etc/hosts etc., as in Docker
            for mount in etc:
                os.chown(mount["source"], userns.uid, userns.gid)
        env = container_env(merged_env(image.config, opts.env), hostname, opts.tty)
        if not any(e.startswith("HOME=") for e in env):
            env.append("HOME=" + lookup_home(rootfs, uid))
        spec = oci.make_spec(
            rootfs=rootfs, args=[INIT_PATH, "--", *argv] if opts.init else argv, env=env, cwd=workdir,
            uid=uid, gid=gid, additional_gids=groups, terminal=opts.tty, readonly_rootfs=opts.read_only,
            hostname=hostname, network=ns_path, mounts=[*etc, *mounts.oci], capabilities=caps,
            no_new_privileges=opts.no_new_privileges, seccomp=seccomp,
            masked_paths=() if opts.privileged else oci.DEFAULT_MASKED_PATHS,
            readonly_paths=() if opts.privileged else oci.DEFAULT_READONLY_PATHS,
            privileged=opts.privileged, devices=host_devices() if opts.privileged else (),
            limits=limits, userns=userns)
        oci.write_config(cdir / "bundle", spec)

        doc = _document(cid, name, image, opts, argv, entrypoint, cmd, env, user, hostname, mode, ports,
                        mounts.inspect, cdir, lowers)
        doc["Config"]["Image"] = image_name or doc["Config"]["Image"]
        if mode == "none" and opts.publish:
            _record_unpublished(doc, opts.publish)
        doc["Dockyard"] = {"network": mode, "stop_signal": signo, "healthcheck": health,
                           "anonymous_volumes": mounts.anonymous, "rm": opts.rm,
                           "tty": opts.tty, "mount_sources": mounts.sources,
                           "userns": [userns.uid, userns.gid, userns.size] if userns else None}
        write_json(cdir / "config.json", doc)
        write_json(cdir / "state.json", initial_state())
        ctr = Container(cdir, doc, initial_state())
        return Launch(ctr, container_runtime(store.root), opts, Path(store.root), slirp, ports)
    except BaseException:
        for step in reversed(undo):
            with contextlib.suppress(Exception):  # undo as much as possible, report the first error
                step()
        raise


_EXIT_CODE_KEEP = 600.0


def _leave_exit_code(root: Path, ctr: Container) -> None:
    # `wait` on a container that removes itself (--rm) still learns its exit code.
    exits = root / "exits"
    exits.mkdir(exist_ok=True)
    cutoff = time.time() - _EXIT_CODE_KEEP
    for old in os.scandir(exits):
        if old.stat(follow_symlinks=False).st_mtime < cutoff:
            os.unlink(old.path)
    (exits / ctr.id).write_text(str(ctr.state.get("ExitCode", 0)))


def removed_exit_code(store_root: Path, container_id: str) -> int | None:
    try:
        return int((container_root(store_root) / "exits" / container_id).read_text())
    except (OSError, ValueError):
        return None


def sweep_trash(store_root: Path) -> None:
    """Delete what removed containers left in the trash (any process may do it)."""
    trash = container_root(store_root) / "trash"
    try:
        entries = list(os.scandir(trash))
    except FileNotFoundError:
        return
    for entry in entries:
        try:
            detach_idmapped(Path(entry.path))
        except ContainerRuntimeError:
            continue  # never delete through a mounted volume
        shutil.rmtree(entry.path, ignore_errors=True)


def _remove_dir(root: Path, cdir: Path, name: str, cid: str) -> None:
    detach_idmapped(cdir)
    shutil.rmtree(cdir, ignore_errors=True)
    release_name(root, name, cid)


def _document(cid: str, name: str, image: Any, opts: RunOptions, argv: list[str], entrypoint: list[str],
              cmd: list[str], env: list[str], user: str, hostname: str, mode: str,
              ports: list[PortSpec], mounts: list[dict[str, Any]], cdir: Path,
              lowers: list[Path]) -> dict[str, Any]:
    """Docker's inspect document, without State."""
    cfg = image.config.get("config") or {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in ports:
        bindings.setdefault(port.key, []).append({"HostIp": port.host_ip or "0.0.0.0",
                                                  "HostPort": str(port.host_port)})
    return {
        "Id": cid, "Created": now(), "Path": argv[0], "Args": argv[1:], "Image": image.id,
        "Name": "/" + name, "RestartCount": 0, "Driver": "overlay2", "Platform": "linux",
        "Config": {
            "Hostname": hostname, "Domainname": "", "User": user, "AttachStdin": opts.interactive,
            "AttachStdout": not opts.detach, "AttachStderr": not opts.detach,
            "ExposedPorts": {p.key: {} for p in ports} or cfg.get("ExposedPorts"), "Tty": opts.tty,
            "OpenStdin": opts.interactive, "StdinOnce": opts.interactive and not opts.detach,
            "Env": [e for e in env if not e.startswith("HOSTNAME=")], "Cmd": cmd or None,
            "Image": (image.tags or [image.id])[0], "Volumes": cfg.get("Volumes"),
            "WorkingDir": opts.workdir or cfg.get("WorkingDir") or "",
            "Entrypoint": entrypoint or None, "Labels": {**(cfg.get("Labels") or {}), **opts.labels},
            "StopSignal": opts.stop_signal or cfg.get("StopSignal"),
            "StopTimeout": opts.stop_timeout, "Healthcheck": cfg.get("Healthcheck"),
        },
        "HostConfig": {
            "NetworkMode": {"private": "default"}.get(mode, mode), "PortBindings": bindings,
            "AutoRemove": opts.rm, "Privileged": opts.privileged, "ReadonlyRootfs": opts.read_only,
            "CapAdd": opts.cap_add or None, "CapDrop": opts.cap_drop or None, "Init": opts.init,
            "SecurityOpt": (["no-new-privileges"] if opts.no_new_privileges else [])
            + ([f"seccomp={opts.seccomp}"] if opts.seccomp else []) or None,
            "Tmpfs": {m["Destination"]: "" for m in mounts if m["Type"] == "tmpfs"} or None,
            "ExtraHosts": [f"{n}:{ip}" for n, ip in opts.add_hosts] or None,
            "Memory": opts.memory or 0, "MemorySwap": opts.memory_swap or 0,
            "NanoCpus": int((opts.cpus or 0) * 1e9), "PidsLimit": opts.pids_limit or None,
            "UsernsMode": "auto" if opts.userns == "auto" else "",
        },
        "Mounts": mounts,
        "NetworkSettings": {
            "Ports": bindings, "IPAddress": net.GUEST_IP if mode == "private" else "",
            "Gateway": net.GATEWAY_IP if mode == "private" else "",
            "SandboxKey": str(cdir / "netns") if mode == "private" else "",
        },
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": ":".join(str(p) for p in lowers), "UpperDir": str(cdir / "fs"),
            "WorkDir": str(cdir / "work"), "MergedDir": str(cdir / "merged")}},
        "HostnamePath": str(cdir / "bundle" / "hostname"), "HostsPath": str(cdir / "bundle" / "hosts"),
        "ResolvConfPath": str(cdir / "bundle" / "resolv.conf"), "LogPath": str(cdir / "container.log"),
    }


def _record_unpublished(doc: dict[str, Any], ports: list[PortSpec]) -> None:
    # Docker keeps -p as given in HostConfig, exposes the ports, and binds none of them.
    bindings: dict[str, list[dict[str, str]]] = {}  # a dict of its own: NetworkSettings.Ports stays empty
    for port in ports:
        bindings.setdefault(port.key, []).append({"HostIp": port.host_ip,
                                                  "HostPort": str(port.host_port or "")})
    doc["HostConfig"]["PortBindings"] = bindings
    doc["Config"]["ExposedPorts"] = {**(doc["Config"]["ExposedPorts"] or {}), **{p.key: {} for p in ports}}


def release(ctr: Container, runtime: Runtime, slirp: net.Slirp | None = None) -> None:
    """Free what a stopped container holds: runc state, the rootfs mount, network."""
    runtime.cleanup(ctr.id)
    # The rootfs first: once the network namespace goes, the kernel's (slow)
    # namespace clean-up would make this unmount wait for it.
    merged = ctr.path("merged")
    if os.path.ismount(merged):
        unmount(merged)
    detach_idmapped(ctr.dir)
    if slirp is not None:
        slirp.stop()
    netns = ctr.path("netns")
    if os.path.lexists(netns):
        net.remove_netns(netns)


def remove(store_root: Path, ctr: Container, *, volumes: bool = False, defer: bool = False,
           keep_exit_code: bool = False) -> None:
    """Delete a stopped, released container; with `volumes`, its anonymous volumes too.

    `defer` only moves the directory into the trash (see `sweep_trash`): a
    foreground `run --rm` then exits without waiting for the deletion.
    `keep_exit_code` lets a later `wait` learn the code (detached --rm).
    """
    root = container_root(store_root)
    if keep_exit_code:
        _leave_exit_code(root, ctr)
    detach_idmapped(ctr.dir)
    trash = root / "trash"
    trash.mkdir(exist_ok=True)
    doomed = trash / ctr.id
    try:
        os.rename(ctr.dir, doomed)
    except FileNotFoundError:
        return
    release_name(root, ctr.name, ctr.id)
    if not defer:
        shutil.rmtree(doomed, ignore_errors=True)
    if volumes:
        VolumeStore(store_root).remove_quietly(list(ctr.private.get("anonymous_volumes") or []))

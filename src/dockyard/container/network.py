"""Container networks: host, none, and private (a netns wired by slirp4netns).

"private" is the stand-in for Docker's bridge: a network namespace of the
container's own, bind-mounted on `<container>/netns` so it outlives the
process that made it, with slirp4netns giving it outbound access (10.0.2.100,
gateway 10.0.2.2, DNS 10.0.2.3) and publishing ports: slirp listens on the
host port and forwards into the namespace. No root-only bridge, no iptables.

UDP ports are published by a small proxy of ours instead (as docker-proxy
does): slirp's own UDP forwarding cannot answer a client on the host's
loopback. Such a client shows up in the namespace as 10.0.2.2, and with
--disable-host-loopback (which keeps the host's 127.0.0.1 services out of
reach of the container) slirp drops every datagram sent to 10.0.2.2, replies
included. The proxy binds the host port, and for each client talks to the
container from a socket made inside the container's namespace.

slirp4netns (and the UDP proxy) watch an "exit fd": they quit when the write
end closes, so they never outlive whoever supervises the container, even one
killed with SIGKILL.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dockyard.container.errors import NetworkError
from dockyard.container.options import PortSpec
from dockyard.runtime._libc import libc

__all__ = ["GUEST_IP", "Slirp", "create_netns", "etc_contents", "remove_netns", "resolve_ports",
           "start_slirp"]

GUEST_IP = "10.0.2.100"
GATEWAY_IP = "10.0.2.2"
DNS_IP = "10.0.2.3"

_CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_MNT_DETACH = 2
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1



def _loopback_up() -> None:
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifr = fcntl.ioctl(sock, _SIOCGIFFLAGS, struct.pack("16sH", b"lo", 0))
        flags = struct.unpack("16sH", ifr[:18])[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | _IFF_UP))


def create_netns(path: Path) -> None:
    """A new network namespace with loopback up, bind-mounted on `path`.

    The network namespace belongs to a thread, not the process: a short-lived
    thread unshares it, brings `lo` up and bind-mounts /proc/thread-self/ns/net
    (the mount keeps the namespace alive), then ends. Much cheaper than a fork.
    """
    import threading

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.close(fd)
    errors: list[str] = []

    def make() -> None:
        if libc.unshare(_CLONE_NEWNET) != 0:
            errors.append(os.strerror(ctypes.get_errno()))
            return
        try:
            _loopback_up()
        except OSError as exc:
            errors.append(f"loopback: {exc.strerror}")
            return
        if libc.mount(b"/proc/thread-self/ns/net", os.fsencode(path), None, _MS_BIND, None) != 0:
            errors.append(os.strerror(ctypes.get_errno()))

    thread = threading.Thread(target=make, name="netns")
    thread.start()
    thread.join()
    if errors:
        path.unlink(missing_ok=True)
        raise NetworkError(f"creating a network namespace: {errors[0]} (needs root)")


def remove_netns(path: Path) -> None:
    if libc.umount2(os.fsencode(path), _MNT_DETACH) != 0 and not path.exists():
        return
    path.unlink(missing_ok=True)


class Slirp:
    """A starting slirp4netns: `wait_ready`, then `publish`; `exit_fd` keeps it alive."""

    # A plain class, not a dataclass: building one costs ~3M instructions at every start.
    def __init__(self, proc: subprocess.Popen[bytes], ready_fd: int, exit_fd: int, api_socket: Path,
                 log: Path, netns: Path | None = None, exit_watch: int = -1):
        self.proc = proc
        self.ready_fd = ready_fd
        self.exit_fd = exit_fd
        self.api_socket = api_socket
        self.log = log
        self.netns = netns
        self.exit_watch = exit_watch  # a read end of the exit pipe, for the UDP proxy; closed once published
        self.proxy: subprocess.Popen[bytes] | None = None

    def wait_ready(self, timeout: float = 10.0) -> None:
        import select

        try:
            ready, _, _ = select.select([self.ready_fd], [], [], timeout)
            data = os.read(self.ready_fd, 1) if ready else b""
        finally:
            os.close(self.ready_fd)
            self.ready_fd = -1
        if data != b"1":
            self.stop()
            try:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-1:]
            except OSError:
                tail = []
            raise NetworkError("slirp4netns did not come up" + ("" if ready else f" within {timeout:g}s")
                               + (f": {tail[0]}" if tail else ""))

    def publish(self, ports: list[PortSpec]) -> None:
        """Add the port forwards; the API socket is not needed afterwards."""
        try:
            self._publish([p for p in ports if p.protocol != "udp"])
            udp = [p for p in ports if p.protocol == "udp"]
            if udp:
                self._publish_udp(udp)
        finally:
            self.api_socket.unlink(missing_ok=True)
            self._close_exit_watch()

    def _close_exit_watch(self) -> None:
        if self.exit_watch >= 0:
            os.close(self.exit_watch)
            self.exit_watch = -1

    def _publish_udp(self, ports: list[PortSpec]) -> None:
        """Bind the host ports here (errors show at once), then hand them to the proxy."""
        if self.netns is None or self.exit_watch < 0:
            raise NetworkError("publishing UDP ports: no network namespace to forward into")
        socks: list[socket.socket] = []
        netns_fd = -1
        log = -1
        try:
            for port in ports:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                try:
                    sock.bind((port.host_ip or "0.0.0.0", port.host_port))
                except OSError as exc:
                    raise NetworkError(f"publishing port {port.host_ip or '0.0.0.0'}:{port.host_port}->"
                                       f"{port.key}: {exc.strerror} (is the port already allocated?)") from None
            netns_fd = os.open(self.netns, os.O_RDONLY | os.O_CLOEXEC)
            log = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            specs = [f"{s.fileno()}:{p.container_port}" for s, p in zip(socks, ports, strict=True)]
            try:
                self.proxy = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _UDP_PROXY, "dockyard-udp-proxy", str(netns_fd),
                     str(self.exit_watch), GUEST_IP, *specs],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                    pass_fds=(netns_fd, self.exit_watch, *(s.fileno() for s in socks)))
            except OSError as exc:
                raise NetworkError(f"starting the UDP port proxy: {exc.strerror}") from exc
        finally:
            for sock in socks:
                sock.close()
            for fd in (netns_fd, log):
                if fd >= 0:
                    os.close(fd)

    def _publish(self, ports: list[PortSpec]) -> None:
        for port in ports:
            request = {"execute": "add_hostfwd", "arguments": {
                "proto": port.protocol, "host_addr": port.host_ip or "0.0.0.0",
                "host_port": port.host_port, "guest_port": port.container_port}}
            reply = _api_call(self.api_socket, request)
            if "error" in reply:
                desc = reply["error"].get("desc", reply["error"]) if isinstance(reply["error"], dict) else reply["error"]
                raise NetworkError(f"publishing port {port.host_ip or '0.0.0.0'}:{port.host_port}->"
                                   f"{port.key}: {desc} (is the port already allocated?)")

    def stop(self) -> None:
        """Closing the exit fd ends slirp4netns; nobody needs to wait for that."""
        if self.ready_fd >= 0:
            os.close(self.ready_fd)
            self.ready_fd = -1
        self._close_exit_watch()
        if self.exit_fd >= 0:
            os.close(self.exit_fd)
            self.exit_fd = -1
        self.api_socket.unlink(missing_ok=True)
        self.proc.poll()  # reap it if it is already gone
        if self.proxy is not None:
            self.proxy.poll()


def _api_call(path: Path, request: Mapping[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode())
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    try:
        reply: dict[str, Any] = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        raise NetworkError("slirp4netns API: unreadable reply") from None
    return reply


def start_slirp(netns: Path, workdir: Path) -> Slirp:
    """Start slirp4netns on `netns` without waiting for it (overlaps our other set-up)."""
    binary = shutil.which("slirp4netns")
    if binary is None:
        raise NetworkError("--network private needs slirp4netns (apt-get install slirp4netns); "
                           "or use --network host|none")
    api = _socket_path(workdir)
    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe()
    log = os.open(workdir / "slirp.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        proc = subprocess.Popen(
            [binary, "--configure", "--mtu=65520", "--disable-host-loopback", "--netns-type=path",
             "--api-socket", str(api), "--ready-fd", str(ready_w), "--exit-fd", str(exit_r),
             str(netns), "tap0"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(ready_w, exit_r),
            start_new_session=True)
    except OSError as exc:
        for fd in (ready_r, exit_w, exit_r):
            os.close(fd)
        raise NetworkError(f"starting slirp4netns: {exc.strerror}") from exc
    finally:
        for fd in (ready_w, log):
            os.close(fd)
    # exit_r stays open (it is close-on-exec) for a UDP proxy to watch too.
    return Slirp(proc, ready_r, exit_w, api, workdir / "slirp.log", netns=netns, exit_watch=exit_r)


# The UDP proxy, run as `python -I -S -c _UDP_PROXY NAME NETNS_FD EXIT_FD GUEST_IP HOSTFD:PORT...`:
# stdlib only, so it starts in a few milliseconds. It enters the container's
# network namespace (the host sockets it was given stay in the host's), and
# gives each client (host address and port) a socket connected to the
# container's port, forgotten after 90 s without traffic (as docker-proxy).
# It quits when the exit fd reports EOF: the container's supervisor is gone.
_UDP_PROXY = r"""
import ctypes, os, select, socket, sys, time
netns, exit_fd, guest = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
libc = ctypes.CDLL(None, use_errno=True)
if libc.setns(netns, 0x40000000) != 0:
    sys.exit("dockyard-udp-proxy: setns: " + os.strerror(ctypes.get_errno()))
os.close(netns)
poller = select.poll()
poller.register(exit_fd, select.POLLIN)
listeners, flows, inner = {}, {}, {}
for spec in sys.argv[5:]:
    fd, port = (int(x) for x in spec.split(":"))
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    listeners[fd] = (sock, port)
    poller.register(fd, select.POLLIN)
while True:
    now = time.monotonic()
    for key, flow in list(flows.items()):
        if now - flow[1] > 90:
            del flows[key], inner[flow[0].fileno()]
            poller.unregister(flow[0])
            flow[0].close()
    for fd, _ in poller.poll(30000):
        if fd == exit_fd:
            sys.exit(0)
        if fd in listeners:
            sock, port = listeners[fd]
            try:
                data, client = sock.recvfrom(65535)
            except OSError:
                continue
            flow = flows.get((fd, client))
            if flow is None:
                out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                out.setblocking(False)
                out.connect((guest, port))
                flow = flows[(fd, client)] = [out, now]
                inner[out.fileno()] = (sock, client)
                poller.register(out, select.POLLIN)
            flow[1] = now
            try:
                flow[0].send(data)
            except OSError:
                pass  # e.g. ECONNREFUSED: nobody listened for the previous one
        elif fd in inner:
            sock, client = inner[fd]
            flow = flows[(sock.fileno(), client)]
            try:
                data = flow[0].recv(65535)
            except OSError:
                continue
            flow[1] = now
            try:
                sock.sendto(data, client)
            except OSError:
                pass
"""


# A unix socket path must fit in 108 bytes; store roots can be long.
_SOCKET_DIR = Path("/run/dockyard/slirp")


def _socket_path(workdir: Path) -> Path:
    path = workdir / "slirp.sock"
    if len(os.fsencode(path)) < 100:
        return path
    from dockyard import rootless

    sockets = rootless.runtime_dir() / "slirp" if rootless.active() else _SOCKET_DIR
    sockets.mkdir(parents=True, exist_ok=True, mode=0o700)
    return sockets / f"{workdir.name[:32]}.sock"


def _free_port(host_ip: str, protocol: str) -> int:
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host_ip or "0.0.0.0", 0))
        return int(sock.getsockname()[1])


def resolve_ports(ports: list[PortSpec]) -> list[PortSpec]:
    """Give every `-p CONTAINER_PORT` (host port 0) a free host port; refuse IPv6 hosts."""
    out = []
    for port in ports:
        host_ip = port.host_ip
        if host_ip in ("::", "[::]"):
            host_ip = ""
        elif ":" in host_ip:
            raise NetworkError(f"publishing on IPv6 address {host_ip} is not supported")
        host_port = port.host_port or _free_port(host_ip, port.protocol)
        out.append(PortSpec(port.container_port, port.protocol, host_port, host_ip))
    return out


def _host_resolv_options() -> list[str]:
    try:
        text = Path("/etc/resolv.conf").read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.split()[:1] in (["search"], ["options"], ["domain"])]


def etc_contents(mode: str, hostname: str, extra_hosts: list[tuple[str, str]]) -> dict[str, str]:
    """/etc/hosts and /etc/resolv.conf texts for the network mode (host: the host's own)."""
    from dockyard.runtime._etc import hosts_content

    if mode == "host":
        out = {}
        for name in ("hosts", "resolv.conf"):
            try:
                out[name] = Path("/etc", name).read_text(errors="replace")
            except OSError:
                out[name] = ""
        if extra_hosts:
            out["hosts"] += "".join(f"{ip}\t{name}\n" for name, ip in extra_hosts)
        return out
    hosts = hosts_content(hostname, extra_hosts)
    if mode == "private":
        hosts += f"{GUEST_IP}\t{hostname}\n"
        resolv = "\n".join([f"nameserver {DNS_IP}", *_host_resolv_options()]) + "\n"
        return {"hosts": hosts, "resolv.conf": resolv}
    return {"hosts": hosts, "resolv.conf": ""}


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False

"""The per-container /etc/hosts, /etc/resolv.conf and /etc/hostname.

They are written into the bundle directory (outside the rootfs) and bind
mounted, so nothing the container writes there reaches a layer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dockyard.runtime.spec import bind_mount

__all__ = ["hosts_content", "resolv_content", "write_etc_files"]

# Docker's fallback when the host only lists loopback resolvers, which a
# container in its own network namespace cannot reach.
_FALLBACK_DNS = "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"


def hosts_content(hostname: str, extra_hosts: Sequence[tuple[str, str]] = ()) -> str:
    lines = [
        f"127.0.0.1\tlocalhost {hostname}" if hostname != "localhost" else "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    lines += [f"{ip}\t{name}" for name, ip in extra_hosts]
    return "\n".join(lines) + "\n"


def _is_loopback(addr: str) -> bool:
    import ipaddress  # only builds on a private network need it; keeps `run` start-up short

    try:
        return ipaddress.ip_address(addr.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def resolv_content(network: str, source: Path) -> str:
    """host: the host's file as is; none: nothing to resolve with; a namespace:
    the host's file without loopback resolvers (falling back to public ones)."""
    if network == "none":
        return "# dockyard: network none, no resolvers\n"
    try:
        text = Path(source).read_text(errors="replace")
    except OSError:
        text = ""
    if network == "host":
        return text
    kept, servers = [], 0
    for line in text.splitlines():
        fields = line.split()
        if fields[:1] == ["nameserver"] and len(fields) > 1:
            if _is_loopback(fields[1]):
                continue
            servers += 1
        kept.append(line)
    out = "\n".join(kept) + ("\n" if kept else "")
    return out if servers else out + _FALLBACK_DNS


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o644)  # readable by any container user, whatever our umask


def write_etc_files(bundle: Path, *, hostname: str, network: str,
                    extra_hosts: Sequence[tuple[str, str]] = (),
                    resolv_source: Path = Path("/etc/resolv.conf"),
                    readonly: bool = False,
                    contents: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Write the three files into `bundle`; return their OCI bind mounts.

    `contents` replaces the text of any of them ("hosts", "resolv.conf",
    "hostname"), for networks this module does not know.
    """
    given = contents or {}
    files = {
        "hosts": given["hosts"] if "hosts" in given else hosts_content(hostname, extra_hosts),
        "resolv.conf": given["resolv.conf"] if "resolv.conf" in given else resolv_content(network, resolv_source),
        "hostname": given.get("hostname", hostname + "\n"),
    }
    mounts = []
    for name, text in files.items():
        _write(bundle / name, text)
        mounts.append(bind_mount(bundle / name, "/etc/" + name, readonly=readonly))
    return mounts

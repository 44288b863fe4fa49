"""Settings of the registry client, and the transport decisions they drive.

- TLS: HTTPS is verified with the system trust store plus a registry's own
  CA, as Docker finds it: ``/etc/docker/certs.d/HOST[:PORT]/*.crt`` (and
  client certificates as ``*.cert`` + ``*.key`` pairs there).
- Proxies: ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``, as Docker reads
  them; loopback addresses never go through a proxy.
- Insecure registries: loopback ones (127.0.0.0/8, ::1, localhost) as
  Docker allows them, those named with ``--insecure-registry``, and those in
  the dockyard config file. For them HTTPS is tried without verification,
  then plain HTTP.

The config file is TOML: ``$DOCKYARD_CONFIG``, or else
``/etc/dockyard/config.toml`` and ``~/.config/dockyard/config.toml``::

    [registry]
    insecure = ["registry.lan:5000", "10.0.0.0/8"]
    certs_dir = "/etc/docker/certs.d"
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from typing import TYPE_CHECKING

from dockyard.registry.errors import RegistryError
from dockyard.registry.transport import RetryPolicy

if TYPE_CHECKING:
    import ipaddress
    import ssl

__all__ = ["RegistryOptions", "load_options"]

DEFAULT_CERTS_DIR = Path("/etc/docker/certs.d")
_SYSTEM_CONFIG = Path("/etc/dockyard/config.toml")


def _user_config() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "dockyard" / "config.toml"


@dataclass(frozen=True)
class RegistryOptions:
    insecure: tuple[str, ...] = ()
    certs_dir: Path = DEFAULT_CERTS_DIR
    # Docker's own default: loopback registries may speak plain HTTP
    loopback_insecure: bool = True
    docker_config: Path | None = None      # None: $DOCKER_CONFIG or ~/.docker
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    download_concurrency: int = 3
    upload_concurrency: int = 5
    # blobs up to this size go in one PUT; bigger ones in PATCH chunks
    monolithic_max: int = 64 << 20
    chunk_size: int = 16 << 20
    gzip_level: int = 1
    connect_timeout: float = 15.0
    read_timeout: float = 120.0

    def with_insecure(self, hosts: tuple[str, ...] | list[str]) -> RegistryOptions:
        return replace(self, insecure=tuple(self.insecure) + tuple(hosts))

    # -- decisions ------------------------------------------------------------

    def is_insecure(self, host: str) -> bool:
        """May ``host[:port]`` be reached without verified TLS?"""
        name = _strip_port(host)
        for entry in self.insecure:
            entry = entry.strip()
            if entry in (host, name):
                return True
            if "/" in entry and _in_network(name, entry):
                return True
        return self.loopback_insecure and _is_loopback(name)

    def schemes(self, host: str) -> tuple[str, ...]:
        return ("https", "http") if self.is_insecure(host) else ("https",)

    def tls_for(self, host: str) -> ssl.SSLContext | bool:
        if self.is_insecure(host):
            return False
        return _context(str(self.certs_dir), host)

    def proxy_for(self, scheme: str, host: str) -> str | None:
        """The proxy from HTTPS_PROXY / HTTP_PROXY unless NO_PROXY (or loopback) excludes host."""
        name = _strip_port(host)
        if name == "localhost" or _literal_loopback(name):
            return None
        for entry in _env("NO_PROXY").split(","):
            entry = entry.strip().lstrip(".").lower()
            if entry == "*" or (entry and (host.lower() == entry or name.lower() == entry
                                           or name.lower().endswith("." + entry))):
                return None
        return _env("HTTPS_PROXY" if scheme == "https" else "HTTP_PROXY") or None


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _addresses(name: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    import ipaddress
    import socket

    try:
        return [ipaddress.ip_address(name)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    out = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    return out


def _env(name: str) -> str:
    return os.environ.get(name) or os.environ.get(name.lower()) or ""


def _literal_loopback(name: str) -> bool:
    if _dotted_127(name):
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _dotted_127(name: str) -> bool:
    """127.x.y.z spelled out: the common case, told without importing ipaddress."""
    parts = name.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and int(p) < 256 for p in parts)


@lru_cache(maxsize=256)
def _is_loopback(name: str) -> bool:
    if name == "localhost" or _dotted_127(name):
        return True
    # Docker resolves the name: any loopback address counts
    return any(a.is_loopback for a in _addresses(name))


def _in_network(name: str, cidr: str) -> bool:
    import ipaddress

    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return any(a in net for a in _addresses(name))


@lru_cache(maxsize=64)
def _context(certs_dir: str, host: str) -> ssl.SSLContext:
    import ssl  # here: a plain-HTTP registry never needs it

    ctx = ssl.create_default_context()  # the system trust store
    own = Path(certs_dir) / host
    if own.is_dir():
        try:
            for ca in sorted(own.glob("*.crt")):
                ctx.load_verify_locations(cafile=str(ca))
            for cert in sorted(own.glob("*.cert")):
                key = cert.with_suffix(".key")
                if not key.exists():
                    raise RegistryError(f"client certificate {cert} has no key {key.name}")
                ctx.load_cert_chain(str(cert), str(key))
        except (ssl.SSLError, OSError) as e:
            raise RegistryError(f"cannot load certificates for {host} from {own}: {e}") from None
    return ctx


def load_options(insecure: tuple[str, ...] | list[str] = (), *,
                 config_file: str | os.PathLike | None = None) -> RegistryOptions:
    """Options from the dockyard config file(s), plus ``--insecure-registry`` hosts."""
    files: list[Path]
    if config_file is not None:
        files = [Path(config_file)]
    elif os.environ.get("DOCKYARD_CONFIG"):
        files = [Path(os.environ["DOCKYARD_CONFIG"])]
    else:
        files = [_SYSTEM_CONFIG, _user_config()]
    hosts: list[str] = []
    certs_dir = DEFAULT_CERTS_DIR
    for path in files:
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise RegistryError(f"cannot read dockyard config {path}: {e}") from None
        import tomllib  # here: most machines have no config file

        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise RegistryError(f"cannot read dockyard config {path}: {e}") from None
        section = doc.get("registry") or {}
        entries = section.get("insecure") or section.get("insecure-registries") or []
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise RegistryError(f"{path}: registry.insecure must be a list of host[:port] strings")
        hosts += entries
        if isinstance(section.get("certs_dir"), str):
            certs_dir = Path(section["certs_dir"])
    return RegistryOptions(insecure=tuple(hosts) + tuple(insecure), certs_dir=certs_dir)

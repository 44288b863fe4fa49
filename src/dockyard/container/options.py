"""What `docker run` accepts, parsed once into values: mounts, ports, env files.

Pure functions, no I/O except reading an --env-file. Each parser raises
`InvalidOption` with Docker's wording where a user would recognise it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.container.errors import InvalidOption
from dockyard.runtime.spec import Limits

__all__ = [
    "MountSpec",
    "PortSpec",
    "RunOptions",
    "parse_cpus",
    "parse_env_file",
    "parse_memory",
    "parse_mount",
    "parse_publish",
    "parse_security_opts",
    "parse_tmpfs",
    "parse_volume",
    "resolve_env_items",
    "resource_limits",
]

# Docker's rule for local volume names.
VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_PROPAGATIONS = frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave"})
_IGNORED_MODES = frozenset({"z", "Z", "consistent", "cached", "delegated"})


@dataclass(frozen=True)
class MountSpec:
    """One mount of a container: bind (host path), volume (name, "" = anonymous) or tmpfs."""

    type: str
    target: str
    source: str = ""
    readonly: bool = False
    propagation: str = "rprivate"
    nocopy: bool = False
    recursive: bool = True
    create_source: bool = False  # -v creates a missing host dir; --mount refuses
    options: tuple[str, ...] = ()  # tmpfs options (size=, mode=, exec...)


@dataclass(frozen=True)
class PortSpec:
    container_port: int
    protocol: str = "tcp"
    host_port: int = 0  # 0: pick a free port
    host_ip: str = ""

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.protocol}"


@dataclass
class RunOptions:
    """Everything `run` takes besides the image. Lists keep the user's order."""

    command: list[str] = field(default_factory=list)
    entrypoint: str | None = None  # "" clears the image's ENTRYPOINT
    env: list[str] = field(default_factory=list)  # K=V, already resolved
    workdir: str | None = None
    user: str | None = None
    name: str | None = None
    hostname: str | None = None
    network: str = "private"  # private | host | none
    publish: list[PortSpec] = field(default_factory=list)
    publish_all: bool = False
    mounts: list[MountSpec] = field(default_factory=list)
    add_hosts: list[tuple[str, str]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    rm: bool = False
    detach: bool = False
    interactive: bool = False
    tty: bool = False
    init: bool = False
    read_only: bool = False
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    no_new_privileges: bool = False
    seccomp: str | None = None  # None: default profile; "unconfined"; or a JSON file path
    stop_signal: str | None = None
    stop_timeout: int | None = None
    health_cmd: str | None = None
    health_interval: float | None = None
    health_timeout: float | None = None
    health_start_period: float | None = None
    health_retries: int | None = None
    no_healthcheck: bool = False
    memory: int | None = None       # bytes (--memory)
    memory_swap: int | None = None  # memory+swap bytes, -1 unlimited (--memory-swap)
    cpus: float | None = None       # --cpus
    pids_limit: int | None = None   # --pids-limit; 0 or less: unlimited
    userns: str = "host"            # --userns: host | auto


def _check_target(target: str, raw: str) -> str:
    if not target.startswith("/"):
        raise InvalidOption(f"invalid mount config: mount path must be absolute: {raw}")
    if os.path.normpath(target) == "/":
        raise InvalidOption(f"invalid mount config: destination can't be '/': {raw}")
    return os.path.normpath(target)


def _source_kind(source: str, raw: str) -> tuple[str, str]:
    if source.startswith(("/", "./", "../")) or source in (".", ".."):
        return "bind", os.path.abspath(source)
    if not VOLUME_NAME.fullmatch(source):
        raise InvalidOption(f'"{source}" includes invalid characters for a local volume name, '
                            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed; for a host path use an absolute path')
    return "volume", source


def parse_volume(raw: str) -> MountSpec:
    """-v [SOURCE:]TARGET[:MODE]; SOURCE is an absolute host path or a volume name."""
    parts = raw.split(":")
    mode = ""
    if len(parts) == 1:
        return MountSpec("volume", _check_target(parts[0], raw))
    if len(parts) == 2:
        source, target = parts
        if target in ("ro", "rw") or not target.startswith("/"):
            raise InvalidOption(f"invalid volume specification: '{raw}'")
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise InvalidOption(f"invalid volume specification: '{raw}'")
    if not source:
        raise InvalidOption(f"invalid volume specification: '{raw}'")
    kind, source = _source_kind(source, raw)
    readonly, propagation, nocopy = False, "rprivate", False
    for opt in filter(None, mode.split(",")):
        if opt in ("ro", "rw"):
            readonly = opt == "ro"
        elif opt in _PROPAGATIONS:
            propagation = opt
        elif opt == "nocopy":
            nocopy = True
        elif opt not in _IGNORED_MODES:
            raise InvalidOption(f"invalid mode: {opt}")
    return MountSpec(kind, _check_target(target, raw), source, readonly, propagation, nocopy,
                     create_source=kind == "bind")


def _truthy(value: str | None, key: str) -> bool:
    if value is None or value.lower() in ("1", "true"):
        return True
    if value.lower() in ("0", "false"):
        return False
    raise InvalidOption(f"invalid value for {key}: {value}")


def parse_mount(raw: str) -> MountSpec:
    """--mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,...]."""
    import csv  # quoted fields ("target=/a,b") as Docker's CSV parsing allows

    try:
        fields = next(csv.reader([raw]))
    except (csv.Error, StopIteration) as exc:
        raise InvalidOption(f"invalid --mount value: {raw}") from exc
    values: dict[str, str | None] = {}
    for item in fields:
        key, sep, value = item.partition("=")
        values[key.strip().lower()] = value if sep else None
    kind = values.pop("type", None) or "volume"
    source = values.pop("source", None) or values.pop("src", None) or ""
    target = values.pop("target", None) or values.pop("destination", None) or values.pop("dst", None)
    if not target:
        raise InvalidOption("invalid argument for --mount: target is required")
    readonly = False
    for key in ("readonly", "ro"):
        if key in values:
            readonly = _truthy(values.pop(key), key)
    propagation, nocopy, recursive, options = "rprivate", False, True, []
    for opt, arg in values.items():
        if opt == "bind-propagation" and kind == "bind" and arg is not None and arg in _PROPAGATIONS:
            propagation = arg
        elif opt == "bind-nonrecursive" and kind == "bind":
            recursive = not _truthy(arg, opt)
        elif opt == "volume-nocopy" and kind == "volume":
            nocopy = _truthy(arg, opt)
        elif opt == "volume-driver" and kind == "volume" and arg == "local":
            pass
        elif opt == "tmpfs-size" and kind == "tmpfs" and arg:
            options.append("size=" + arg)
        elif opt == "tmpfs-mode" and kind == "tmpfs" and arg and re.fullmatch(r"[0-7]{1,4}", arg):
            options.append("mode=" + arg)
        elif opt == "consistency":
            pass
        else:
            raise InvalidOption(f"unexpected key '{opt}' in '{raw}'")
    if kind == "bind":
        if not source:
            raise InvalidOption("invalid argument for --mount: source is required for a bind mount")
        source = os.path.abspath(source)
    elif kind == "volume":
        if source and not VOLUME_NAME.fullmatch(source):
            raise InvalidOption(f'"{source}" includes invalid characters for a local volume name')
    elif kind == "tmpfs":
        if source:
            raise InvalidOption("invalid mount config for type \"tmpfs\": source must not be specified")
    else:
        raise InvalidOption(f"invalid mount type: {kind!r}; dockyard supports bind, volume and tmpfs")
    return MountSpec(kind, _check_target(target, raw), source, readonly, propagation, nocopy,
                     recursive, options=tuple(options))


def parse_tmpfs(raw: str) -> MountSpec:
    """--tmpfs /path[:opt,opt...] (mount(8) tmpfs options such as size=64m,mode=1777,exec)."""
    target, _, opts = raw.partition(":")
    options = [o for o in opts.split(",") if o]
    readonly = "ro" in options
    return MountSpec("tmpfs", _check_target(target, raw), readonly=readonly,
                     options=tuple(o for o in options if o not in ("ro", "rw")))


def _port_range(text: str, raw: str) -> list[int]:
    lo, sep, hi = text.partition("-")
    try:
        start = int(lo)
        end = int(hi) if sep else start
    except ValueError:
        raise InvalidOption(f"invalid port specification: \"{raw}\"") from None
    if not (0 < start <= end <= 65535):
        raise InvalidOption(f"invalid port specification: \"{raw}\"")
    return list(range(start, end + 1))


def parse_publish(raw: str) -> list[PortSpec]:
    """-p [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]; ranges like 8000-8001:80-81."""
    spec, _, proto = raw.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp"):
        raise InvalidOption(f"invalid proto: {proto}")
    host_ip = ""
    if spec.startswith("["):  # [v6]:host:container
        end = spec.find("]")
        if end < 0:
            raise InvalidOption(f"invalid port specification: \"{raw}\"")
        host_ip, spec = spec[1:end], spec[end + 2:]
    parts = spec.split(":")
    if len(parts) == 3:
        host_ip = host_ip or parts[0]
        host_part, ctr_part = parts[1], parts[2]
    elif len(parts) == 2:
        host_part, ctr_part = parts
    elif len(parts) == 1:
        host_part, ctr_part = "", parts[0]
    else:
        raise InvalidOption(f"invalid port specification: \"{raw}\"")
    ctr_ports = _port_range(ctr_part, raw)
    host_ports = _port_range(host_part, raw) if host_part else [0] * len(ctr_ports)
    if len(host_ports) != len(ctr_ports):
        raise InvalidOption(f"invalid port specification: \"{raw}\": ranges must have the same length")
    return [PortSpec(c, proto, h, host_ip) for h, c in zip(host_ports, ctr_ports)]


def parse_security_opts(values: list[str]) -> tuple[bool, str | None]:
    """(no_new_privileges, seccomp) from --security-opt values."""
    nnp, seccomp = False, None
    for value in values:
        key, sep, arg = value.partition("=")
        if not sep:
            key, sep, arg = value.partition(":")  # the old key:value spelling
        if key == "no-new-privileges":
            nnp = _truthy(arg if sep else None, key)
        elif key == "seccomp" and arg:
            seccomp = arg
        elif key in ("apparmor", "label"):
            continue  # no AppArmor or SELinux here: accepted and ignored
        else:
            raise InvalidOption(f"invalid --security-opt: {value!r}")
    return nnp, seccomp


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)b?", re.IGNORECASE)
_MIN_MEMORY = 6 << 20  # Docker refuses less


def parse_memory(text: str, flag: str = "--memory") -> int:
    """Docker's sizes: 512, 64k, 64m, 1.5g (binary units, an optional trailing b)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise InvalidOption(f"invalid argument {text!r} for {flag}: invalid size: {text!r}")
    shift = " kmgtp".index(match.group(2).lower() or " ") * 10
    return int(float(match.group(1)) * (1 << shift))


def parse_cpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidOption(f"invalid argument {text!r} for --cpus: not a number") from None
    return value


def resource_limits(opts: RunOptions, cpu_count: int | None = None) -> Limits | None:
    """The cgroup limits for `opts`, checked with Docker's rules; None: no limit."""
    if opts.memory_swap is not None and opts.memory_swap != -1 and opts.memory is None:
        raise InvalidOption("you should always set the memory limit when using the memoryswap limit")
    if opts.memory is not None and opts.memory < _MIN_MEMORY:
        raise InvalidOption("minimum memory limit allowed is 6MB")
    swap = opts.memory_swap if opts.memory is not None else None
    if swap is not None and swap != -1 and swap < opts.memory:  # type: ignore[operator]
        raise InvalidOption("minimum memoryswap limit should be larger than memory limit")
    cpus = opts.cpus or None  # 0 means no limit, as in Docker
    if cpus is not None:
        available = cpu_count or os.cpu_count() or 1
        if not 0.01 <= cpus <= available:
            raise InvalidOption(f"range of CPUs is from 0.01 to {available}.00, "
                                f"as there are only {available} CPUs available")
    pids = opts.pids_limit if opts.pids_limit and opts.pids_limit > 0 else None
    if opts.memory is None and cpus is None and pids is None:
        return None
    return Limits(memory=opts.memory, memory_swap=swap, cpus=cpus, pids=pids)


def resolve_env_items(items: list[str], environ: dict[str, str] | None = None) -> list[str]:
    """`-e K=V` stays; `-e K` takes K from our environment, or is dropped when unset."""
    env = os.environ if environ is None else environ
    out = []
    for item in items:
        key, sep, _ = item.partition("=")
        if not key:
            raise InvalidOption(f"invalid environment variable: {item}")
        if sep:
            out.append(item)
        elif key in env:
            out.append(f"{key}={env[key]}")
    return out


def parse_env_file(path: str | Path, environ: dict[str, str] | None = None) -> list[str]:
    """Docker's --env-file: K=V lines, '#' comments, a bare K from our environment.

    Values are taken literally: no quotes are stripped and nothing is expanded.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidOption(f"open {path}: {exc.strerror}") from exc
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        key = stripped.split("=", 1)[0]
        if not key or any(c.isspace() for c in key):
            raise InvalidOption(f"{path}:{number}: variable '{key}' contains whitespaces")
        items.append(stripped if "=" in stripped else key)
    return resolve_env_items(items, environ)

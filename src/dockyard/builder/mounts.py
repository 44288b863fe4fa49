"""RUN --mount: parse the flag values, plan the mounts of one RUN, set them up around it.

Five kinds, as in BuildKit's Dockerfile frontend: bind (a read-only view of
the context, a stage or an image; rw gives a throwaway overlay upper), cache
(a directory under <store>/cache-mounts that outlives builds), tmpfs, secret
(a file on a private tmpfs, or an environment variable) and ssh (the host's
agent socket bound in, SSH_AUTH_SOCK pointing at it). None of them reach the
layer: the mount points the runtime had to create are removed afterwards.

A secret's value is read only while its RUN runs; it never enters a cache
key, a progress event or an error message.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import fcntl
import hashlib
import os
import posixpath
import re
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BuildError, DockerfileError
from ..runtime._libc import libc as _libc
from ..runtime.spec import bind_mount
from ..store.store import remove_tree
from .context import Match, SourceTree, clean_source

TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_ALIASES = {"src": "source", "dst": "target", "destination": "target",
            "ro": "readonly", "rw": "readwrite"}
_KEYS = {
    "bind": {"target", "source", "from", "readonly", "readwrite"},
    "cache": {"target", "source", "from", "readonly", "readwrite", "id", "sharing", "mode", "uid", "gid"},
    "tmpfs": {"target", "size"},
    "secret": {"target", "id", "env", "required", "mode", "uid", "gid"},
    "ssh": {"target", "id", "required", "mode", "uid", "gid"},
}
_ALL_KEYS = {"type"} | set(_ALIASES) | set().union(*_KEYS.values())
_FLAGS = {"readonly", "readwrite", "required"}
_SHARING = ("shared", "private", "locked")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$", re.IGNORECASE)


@dataclass
class Mount:
    type: str
    target: str = ""
    source: str = ""
    from_: str = ""
    readonly: bool = False
    id: str = ""
    sharing: str = "shared"
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    size: int | None = None
    env: str = ""
    required: bool = False
    # filled in by plan(): where a bind/cache source comes from
    src_diff: list[str] | None = field(default=None, repr=False)   # a stage's or image's layers
    src_key: str = ""                                               # chain id or context digest


def _bad(key: str, value: str) -> DockerfileError:
    return DockerfileError(f"invalid value {value!r} for '{key}' in --mount")


def _bool(key: str, value: str) -> bool:
    if value.lower() not in ("1", "t", "true", "0", "f", "false"):
        raise _bad(key, value)
    return value.lower() in ("1", "t", "true")


def _int(key: str, value: str, base: int = 10, top: int = 1 << 32) -> int:
    try:
        n = int(value, base)
    except ValueError:
        n = -1
    if not 0 <= n < top:
        raise _bad(key, value)
    return n


def parse_size(value: str) -> int:
    m = _SIZE.match(value.strip())
    if not m:
        raise _bad("size", value)
    unit = "kmgtp".find(m.group(2).lower()) + 1 if m.group(2) else 0
    return int(float(m.group(1)) * (1024 ** unit))


def _target(value: str, workdir: str) -> str:
    path = posixpath.normpath(posixpath.join(workdir or "/", value))
    path = "/" + path.lstrip("/")
    if path == "/":
        raise DockerfileError("--mount target cannot be /")
    return path


def parse_mount(value: str, expand=None, workdir: str = "/", ssh_index: int = 0) -> Mount:
    """One --mount value (CSV of key=value) as a Mount with BuildKit's defaults."""
    try:
        fields = next(csv.reader([value]), [])
    except csv.Error as e:
        raise DockerfileError(f"invalid --mount value {value!r}: {e}") from None
    raw: dict[str, str] = {}
    for item in fields:
        key, eq, val = item.partition("=")
        key = key.strip().lower()
        if key not in _ALL_KEYS:
            raise DockerfileError(f"unknown key '{key}' in --mount={value}")
        key = _ALIASES.get(key, key)
        if not eq:
            if key not in _FLAGS:
                raise DockerfileError(f"key '{key}' in --mount={value} needs a value")
            val = "true"
        elif expand is not None and key != "type":
            val = expand(val)
        raw[key] = val
    kind = raw.pop("type", "bind").lower()
    if kind not in TYPES:
        raise DockerfileError(f"unsupported mount type '{kind}' in --mount={value}")
    for key in raw:
        if key not in _KEYS[kind]:
            raise DockerfileError(f"key '{key}' is not valid for type={kind} in --mount={value}")
    m = Mount(kind, source=raw.get("source", ""), from_=raw.get("from", ""), id=raw.get("id", ""),
              env=raw.get("env", ""), readonly=(kind == "bind"))
    if "readwrite" in raw:
        m.readonly = not _bool("readwrite", raw["readwrite"])
    if "readonly" in raw:
        m.readonly = _bool("readonly", raw["readonly"])
    if "required" in raw:
        m.required = _bool("required", raw["required"])
    for key in ("uid", "gid"):
        if key in raw:
            setattr(m, key, _int(key, raw[key]))
    if "mode" in raw:
        m.mode = _int("mode", raw["mode"], 8, 0o10000)
    if "size" in raw:
        m.size = parse_size(raw["size"])
    if raw.get("target"):
        m.target = _target(raw["target"], workdir)
    if kind == "secret":
        if not m.id:
            if not m.target:
                raise DockerfileError(f"--mount={value} needs an id or a target")
            m.id = posixpath.basename(m.target)
        if not m.target and not m.env:
            m.target = "/run/secrets/" + m.id
        m.mode = 0o400 if m.mode is None else m.mode
    elif kind == "ssh":
        m.id = m.id or "default"
        m.target = m.target or f"/run/buildkit/ssh_agent.{ssh_index}"
        m.mode = 0o600 if m.mode is None else m.mode
    elif not m.target:
        raise DockerfileError(f"--mount={value} needs a target")
    if kind == "cache":
        m.sharing = raw.get("sharing", "shared").lower()
        if m.sharing not in _SHARING:
            raise _bad("sharing", m.sharing)
        m.id = m.id or m.target
        m.mode = 0o755 if m.mode is None else m.mode
    return m


# -- planning: what the cache key sees -------------------------------------------

def plan(b, stage, state, cmd, workdir: str) -> list[Mount]:
    """Parse the RUN's --mount flags and resolve their sources (building a
    stage that only a mount uses, on demand)."""
    expand = b._expander(state)
    out: list[Mount] = []
    for value in cmd.mounts:
        m = parse_mount(value, expand, workdir, sum(1 for x in out if x.type == "ssh"))
        if m.from_:
            _resolve_from(b, stage, m)
        elif m.type == "bind":
            rel = clean_source(m.source)
            path = None if b.context.ignored(rel) else b.context.resolve(rel)
            if path is None or not os.path.lexists(path):
                raise BuildError(f"--mount source {m.source or '/'!r} not found in the build context")
            m.src_key = b.context.digest(Match(rel, path))
        if any(o.target == m.target for o in out if m.target):
            raise DockerfileError(f"duplicate --mount target {m.target}")
        out.append(m)
    return out


def _resolve_from(b, stage, m: Mount) -> None:
    from ..snapshots import chain_ids

    index = b.stages.index(stage) if stage in b.stages else len(b.stages)
    ref = b._stage_ref(m.from_, index)
    if ref is not None:
        if ref not in b.results:
            b.results[ref] = b._build_stage(b.stages[ref], ref)
        diff = list(b.results[ref].diff_ids)
    else:
        diff = list(b._resolve(m.from_).diff_ids)
    m.src_diff = diff
    m.src_key = chain_ids(diff)[-1] if diff else "scratch"


def key_of(m: Mount) -> dict:
    """The mount's part of the RUN's cache key: never a secret's value."""
    key: dict = {"type": m.type, "target": m.target}
    if m.type in ("bind", "cache"):
        key.update(readonly=m.readonly, source=m.source, **{"from": m.src_key})
    if m.type == "cache":
        key.update(id=m.id, sharing=m.sharing, mode=m.mode, uid=m.uid, gid=m.gid)
    elif m.type == "tmpfs":
        key["size"] = m.size
    elif m.type in ("secret", "ssh"):
        key.update(id=m.id, env=m.env, required=m.required, mode=m.mode, uid=m.uid, gid=m.gid)
    return key


def network_mode(b, cmd) -> str:
    mode = getattr(cmd, "network", None) or "default"
    return b.opts.network if mode == "default" else mode


def capabilities(b, cmd) -> list[str] | None:
    """None for the sandbox (Docker's default set); every host capability for insecure."""
    if (getattr(cmd, "security", None) or "sandbox") != "insecure":
        return None
    if "security.insecure" not in b.opts.allow:
        raise BuildError("RUN --security=insecure needs the security.insecure entitlement "
                         "(build with --allow security.insecure)")
    from ..runtime.spec import host_capabilities

    return sorted(host_capabilities())


# Devices BuildKit's insecure mode adds, where the host has them (plus /dev/loopN).
_INSECURE_DEVICES = ("/dev/kmsg", "/dev/cuse", "/dev/fuse", "/dev/kvm", "/dev/net/tun", "/dev/loop-control")


def security_options(caps: list[str] | None) -> dict:
    """run_process options for a RUN's security mode, as BuildKit sets them.

    sandbox (caps None): Docker's default capabilities under the default seccomp
    profile, when the host has one (containers-common ships it). insecure: every
    host capability, no seccomp, no masked or read-only paths, writable /sys, an
    open device cgroup and the devices BuildKit adds (fuse, kvm, tun, loop...).
    """
    if caps is None:
        from ..container.errors import InvalidOption
        from ..container.security import load_seccomp, seccomp_for
        from ..runtime.spec import DEFAULT_CAPABILITIES

        try:
            profile = load_seccomp(None)
        except InvalidOption:
            return {}  # no profile on this host: as BuildKit without seccomp support
        return {"seccomp": seccomp_for(profile, DEFAULT_CAPABILITIES)}
    import glob

    from ..container.security import device_entry

    paths = (*_INSECURE_DEVICES, *sorted(glob.glob("/dev/loop[0-9]*")))
    devices = [e for e in (device_entry(p, p, owner=(0, 0)) for p in paths) if e is not None]
    return {"privileged": True, "devices": devices}


# -- preparing the mounts of one RUN ------------------------------------------------

@contextlib.contextmanager
def prepared(b, mounts: list[Mount], emit=None) -> Iterator[tuple[list[dict], list[str]]]:
    """Set the mounts up; yields (OCI mount dicts, extra env) and undoes it all after."""
    with contextlib.ExitStack() as stack:
        oci: list[dict] = []
        env: list[str] = []
        secret_dir: Path | None = None
        held: set[str] = set()
        for m in mounts:
            if m.type == "tmpfs":
                opts = ["nosuid", "nodev", "mode=1777"] + ([f"size={m.size}"] if m.size else [])
                oci.append({"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": opts})
            elif m.type == "bind":
                oci.append(bind_mount(_bind_source(b, m, stack), m.target, readonly=m.readonly))
            elif m.type == "cache":
                path = _cache_dir(b, m, stack, held, emit)
                oci.append(bind_mount(path, m.target, readonly=m.readonly))
            elif m.type == "secret":
                value = _secret_value(b, m)
                if value is None:
                    continue
                if m.env:
                    env.append(f"{m.env}={value.decode('utf-8', 'replace')}")
                if m.target:
                    if secret_dir is None:
                        secret_dir = stack.enter_context(_private_tmpfs(b.store.tmp_dir))
                    path = secret_dir / hashlib.sha256(m.target.encode()).hexdigest()[:16]
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                    with os.fdopen(fd, "wb") as f:
                        f.write(value)
                    os.chown(path, m.uid, m.gid)
                    os.chmod(path, m.mode)
                    oci.append(bind_mount(path, m.target, readonly=True))
            elif m.type == "ssh":
                sock = b.opts.ssh.get(m.id)
                if not sock:
                    if m.required:
                        raise BuildError(f"no ssh agent forwarded for id {m.id!r} (--ssh {m.id}=SOCKET)")
                    continue
                if not stat.S_ISSOCK(os.stat(sock).st_mode if os.path.exists(sock) else 0):
                    raise BuildError(f"ssh agent socket for id {m.id!r} is not a socket: {sock}")
                oci.append(bind_mount(sock, m.target))
                if not any(e.startswith("SSH_AUTH_SOCK=") for e in env):
                    env.append("SSH_AUTH_SOCK=" + m.target)
        # parents before children, so a mount inside another lands on top of it
        oci.sort(key=lambda d: d["destination"].count("/"))
        yield oci, env


def _secret_value(b, m: Mount) -> bytes | None:
    spec = b.opts.secrets.get(m.id)
    value = None
    if spec and spec.get("src"):
        try:
            with open(spec["src"], "rb") as f:
                value = f.read()
        except OSError as e:
            raise BuildError(f"secret {m.id}: cannot read {spec['src']}: {e.strerror}") from None
    elif spec and spec.get("env"):
        env = os.environ.get(spec["env"])
        value = None if env is None else env.encode()
    if value is None and m.required:
        raise BuildError(f"secret {m.id} not found (pass it with --secret id={m.id},src=FILE)")
    return value


_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8


@contextlib.contextmanager
def _private_tmpfs(parent: Path) -> Iterator[Path]:
    """A fresh tmpfs only root can enter: secrets live in memory, never on disk."""
    from ..runtime.overlay import unmount

    path = Path(tempfile.mkdtemp(prefix="secrets-", dir=parent))
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    if _libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", flags, b"mode=0700,size=16m") != 0:
        err = ctypes.get_errno()
        os.rmdir(path)
        raise BuildError(f"cannot mount a tmpfs for secrets: {os.strerror(err)}")
    try:
        yield path
    finally:
        unmount(path)
        os.rmdir(path)


def _resolve_in(root: Path, source: str, what: str) -> Path:
    path = SourceTree(root, is_context=False).resolve(clean_source(source))
    if path is None or not os.path.lexists(path):
        raise BuildError(f"--mount source {source or '/'!r} not found in {what}")
    return path


def _view(b, lowers: list[Path], stack: contextlib.ExitStack) -> Path:
    """An overlay of `lowers` with a throwaway upper: writes are discarded."""
    snap = b.snapshots.new_upper()
    stack.callback(remove_tree, snap)
    return stack.enter_context(b.snapshots.mounted(lowers, snap))


def _bind_source(b, m: Mount, stack: contextlib.ExitStack) -> Path:
    if m.src_diff is not None:
        root = _view(b, b.snapshots.lowers(m.src_diff), stack)
        return _resolve_in(root, m.source, m.from_)
    base = _context_root(b, stack)
    root = base if m.readonly else _view(b, [base], stack)
    return _resolve_in(root, m.source, "the build context")


def _context_root(b, stack: contextlib.ExitStack) -> Path:
    """The context as a RUN may see it: without what .dockerignore excludes."""
    ctx = b.context
    if not getattr(ctx.ignore, "patterns", None):
        return ctx.root
    staged = Path(tempfile.mkdtemp(prefix="context-", dir=b.store.tmp_dir))
    stack.callback(remove_tree, staged)
    for rel, path, st in ctx.walk(Match("", ctx.root)):
        if not rel:
            continue
        dest = staged / rel
        if stat.S_ISDIR(st.st_mode):
            dest.mkdir(mode=stat.S_IMODE(st.st_mode) | 0o700, exist_ok=True)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(path), dest)
        elif stat.S_ISREG(st.st_mode):
            try:
                os.link(path, dest)
            except OSError:
                import shutil

                shutil.copy2(path, dest)
    return staged


# -- cache mounts ---------------------------------------------------------------------

def cache_root(store) -> Path:
    return Path(store.root) / "cache-mounts"


def cache_home(store, cache_id: str) -> Path:
    """Where one cache id lives: data/ (what is mounted), and lock files beside it."""
    return cache_root(store) / hashlib.sha256(cache_id.encode()).hexdigest()[:32]


def _flock(path: Path, stack: contextlib.ExitStack, how: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    stack.callback(os.close, fd)
    fcntl.flock(fd, how)
    return fd


def _cache_dir(b, m: Mount, stack: contextlib.ExitStack, held: set[str], emit) -> Path:
    home = cache_home(b.store, m.id)
    home.mkdir(parents=True, exist_ok=True)
    _flock(home / "use.lock", stack, fcntl.LOCK_SH)      # prune waits for no user
    data = home / "data"
    if not data.exists():
        with contextlib.ExitStack() as init:
            _flock(home / "init.lock", init, fcntl.LOCK_EX)
            if not data.exists():
                _init_cache(b, m, home, data)
    if m.sharing == "shared" or m.id in held:
        return data
    try:
        _flock(home / "lock", stack, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if m.sharing == "private":       # busy: this RUN works on its own copy
            copy = Path(tempfile.mkdtemp(prefix="private-", dir=home))
            stack.callback(remove_tree, copy)
            subprocess.run(["cp", "-a", f"{data}/.", str(copy)], check=False, capture_output=True)
            return copy
        if emit is not None:
            emit(f"waiting for the lock on cache mount {m.id}")
        _flock(home / "lock", stack, fcntl.LOCK_EX)
    held.add(m.id)
    return data


def _init_cache(b, m: Mount, home: Path, data: Path) -> None:
    fresh = Path(tempfile.mkdtemp(prefix="new-", dir=home))
    try:
        if m.src_diff is not None:
            with contextlib.ExitStack() as stack:
                src = _resolve_in(_view(b, b.snapshots.lowers(m.src_diff), stack), m.source, m.from_)
                if src.is_dir():
                    proc = subprocess.run(["cp", "-a", f"{src}/.", str(fresh)], check=False,
                                          capture_output=True)
                    if proc.returncode != 0:
                        why = proc.stderr.decode(errors="replace").strip().replace("\n", "; ")
                        raise BuildError(f"cannot seed cache mount {m.id} from {m.from_}: {why}")
        os.chown(fresh, m.uid, m.gid)
        os.chmod(fresh, m.mode if m.mode is not None else 0o755)
        os.rename(fresh, data)
    except BaseException:
        remove_tree(fresh)
        raise


def prune_cache_mounts(store) -> int:
    """Delete the contents of every cache mount no build is using; returns how
    many were cleared. The lock files stay, so a build that is just starting
    never locks a file that is being unlinked."""
    root = cache_root(store)
    if not root.is_dir():
        return 0
    removed = 0
    for home in sorted(root.iterdir()):
        if home.is_symlink() or not home.is_dir():
            continue
        fd = os.open(home / "use.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            gone = False
            for entry in home.iterdir():
                if not entry.name.endswith(".lock") and entry.name != "lock":
                    remove_tree(entry)
                    gone = True
            removed += gone
        finally:
            os.close(fd)
    return removed

"""Helpers for the hardening tests: hand-made docker-archives, tree states
that show any change, store layout checks and the CLI as a subprocess."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

from support import BUSYBOX, Events

TESTS = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "corpus"
MTIME = 1_600_000_000
TOOL_DIR = ".hardening"          # where the busybox of hostile test images lives
TOOL = f"/{TOOL_DIR}/busybox"

# The names a store root may hold (see dockyard.store.store).
STORE_ENTRIES = {"blobs", "ingest", "snapshots", "tmp", "db.sqlite", "db.sqlite-wal",
                 "db.sqlite-shm", "db.sqlite-journal", "lock", "containers", "cache-mounts",
                 "volumes"}


def write(ctx: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))
    return ctx


def build(store, ctx, **kw):
    from dockyard import api

    events = kw.pop("events", None) or Events()
    return api.build(ctx, store=store, progress=events, **kw), events


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def busybox_layer() -> bytes:
    """A layer holding only a static busybox at /.hardening/busybox."""
    d = tarfile.TarInfo(TOOL_DIR)
    d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, MTIME
    data = Path(BUSYBOX).read_bytes()
    f = tarfile.TarInfo(TOOL.lstrip("/"))
    f.size, f.mode, f.mtime = len(data), 0o755, MTIME
    return tar_bytes([(d, None), (f, data)])


def image_config(diff_ids: list[str], **config) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2020-09-13T12:26:40Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2020-09-13T12:26:40Z", "created_by": "hardening test"}
                    for _ in diff_ids],
    }, sort_keys=True).encode()


def docker_archive(layers: list[bytes], tag: str, **config) -> bytes:
    """A docker-archive (docker save layout) of one image made of `layers`."""
    diff_ids = [sha256(layer) for layer in layers]
    cfg = image_config(diff_ids, **config)
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []

    def add(name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, MTIME
        members.append((info, data))

    add(sha256(cfg)[7:] + ".json", cfg)
    paths = []
    for layer, diff_id in zip(layers, diff_ids):
        path = f"{diff_id[7:]}/layer.tar"
        if path not in paths:
            add(path, layer)
        paths.append(path)
    manifest = [{"Config": sha256(cfg)[7:] + ".json", "RepoTags": [tag], "Layers": paths}]
    add("manifest.json", json.dumps(manifest).encode())
    return tar_bytes(members)


def load_archive(store, data: bytes):
    from dockyard.archive import load

    return load(store, io.BytesIO(data))


def tree_state(base: Path, exclude: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """Everything under `base`: any write, chmod, chown, utime, new name or
    new hard link shows up as a difference."""
    out: dict[str, tuple] = {}
    skip = {str(p) for p in exclude}
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for name in dirnames + filenames + ["."]:
            path = os.path.join(dirpath, name)
            if path in skip:
                continue
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            else:
                extra = ""
            out[os.path.relpath(path, base)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size,
                                                st.st_nlink, st.st_mtime_ns, st.st_ctime_ns, extra)
    return out


HOST_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/hosts", "/etc/hostname")


def host_state() -> dict[str, tuple]:
    """A few host files a hostile image would aim at."""
    out = {}
    for name in HOST_FILES:
        try:
            st = os.lstat(name)
        except FileNotFoundError:
            out[name] = None
            continue
        out[name] = (st.st_mode, st.st_uid, st.st_nlink, st.st_mtime_ns, st.st_ctime_ns,
                     hashlib.sha256(Path(name).read_bytes()).hexdigest())
    return out


SECRET = "sentinel-secret-7f3a9c\n"


def make_sentinel(base: Path) -> Path:
    """A directory of files outside every root a test uses."""
    victim = base / "victim"
    victim.mkdir(parents=True)
    (victim / "hello").write_text("hello")
    (victim / "secret").write_text(SECRET)
    os.chmod(victim / "secret", 0o600)
    (victim / "perm400").write_text("perm400")
    os.chmod(victim / "perm400", 0o400)
    os.symlink("hello", victim / "link")
    return victim


def check_store_layout(store) -> None:
    """Nothing outside the store's own names; every snapshot dir holds only fs."""
    names = set(os.listdir(store.root))
    assert names <= STORE_ENTRIES, f"unexpected entries in the store: {names - STORE_ENTRIES}"
    recorded = {r[0] for r in store.db.execute("SELECT dir FROM snapshots")}
    for entry in os.listdir(store.snapshot_dir):
        path = store.snapshot_dir / entry
        if entry == "empty":
            assert os.listdir(path) == [], "snapshots/empty is not empty"
            continue
        assert entry in recorded, f"orphaned snapshot directory {entry}"
        assert os.listdir(path) == ["fs"], f"snapshot {entry} holds {os.listdir(path)}"


def mounts_below(path: Path) -> list[str]:
    real = os.path.realpath(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(real)]


# -- fuzzing: no crash, no hang, only clear errors ------------------------------------

def fuzz_settings():
    """~200 examples a test; DOCKYARD_FUZZ_EXAMPLES=5000 for a deeper run."""
    from hypothesis import HealthCheck, settings

    return settings(max_examples=int(os.environ.get("DOCKYARD_FUZZ_EXAMPLES", "200")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang("no answer within the time limit")


def clear_errors(fn, *args, seconds: float = 5.0, **kw):
    """Call fn; return its result, or the DockyardError it raised (one line,
    not empty). Anything else, or taking longer than `seconds`, fails."""
    from dockyard.errors import DockyardError

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*args, **kw)
    except DockyardError as exc:
        text = str(exc)
        assert text.strip(), f"{type(exc).__name__} with an empty message"
        assert "\n" not in text, \
            f"{type(exc).__name__} message is not one line: {text!r}"
        return exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def corpus_files(kind: str) -> list[Path]:
    return sorted((CORPUS / kind).glob("*"))


# -- the CLI as a subprocess -----------------------------------------------------

_CLI = ("import sys\n"
        "from dockyard.cli.main import cli\n"
        "from dockyard.cli.fsck_cmd import COMMANDS\n"
        "for c in COMMANDS:\n"
        "    if c.name not in cli.commands:\n"
        "        cli.add_command(c)\n"
        "cli(prog_name='dockyard')\n")


def cli_argv(*args: str) -> list[str]:
    """`python -m dockyard.cli.main ARGS`, with `fsck` added until main registers it."""
    from dockyard.cli.main import cli

    if args and args[0] == "fsck" and "fsck" not in cli.commands:
        return [sys.executable, "-c", _CLI, *args]
    return [sys.executable, "-m", "dockyard.cli.main", *args]


def cli_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["DOCKYARD_ROOT"] = str(root)
    env.pop("PYTHONWARNINGS", None)
    return env


def run_cli(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(cli_argv(*args), env=cli_env(root), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)

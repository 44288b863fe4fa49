"""Fixtures for `dockyard run`: one store per session with busybox and images
derived from it, a CLI runner, and clean-up of containers after each test.

Containers run on the real runc and kernel, so these tests need root. The
CLI runs in subprocesses where the behaviour under test is the process's
own (signals, terminals, detaching); elsewhere the API runs in-process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from dockyard.container import (
    RunOptions,
    VolumeStore,
    list_containers,
    remove_container,
)
from dockyard.container import run as run_container

# The container commands are registered by the lead in cli/main.py; until then
# (and harmlessly after) the launcher adds them itself.
LAUNCHER = (
    "import sys\n"
    "from dockyard.cli.main import cli\n"
    "from dockyard.cli.container_cmds import COMMANDS\n"
    "for c in COMMANDS:\n"
    "    cli.add_command(c)\n"
    "cli(prog_name='dockyard')\n"
)


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (runc, overlayfs, namespaces)")
    if shutil.which("runc") is None and not os.path.exists("/usr/sbin/runc"):
        pytest.skip("needs runc")


@pytest.fixture(scope="session")
def run_store(tmp_path_factory, busybox_tar):
    """A store shared by the run tests, with busybox:latest imported."""
    _require_root()
    from dockyard import api
    from dockyard.store import Store

    store = Store(tmp_path_factory.mktemp("run-store") / "store")
    api.import_image(busybox_tar, "busybox:latest", store=store)
    return store


@pytest.fixture(scope="session")
def busybox(run_store):
    from dockyard import api

    return api.get_image(run_store, "busybox:latest")


def derive(store, base, name: str, *, config: dict | None = None,
           files: dict[str, tuple[bytes | str, int]] | None = None):
    """An image on top of `base` with config changes and a layer of extra files.

    files: path -> (content, mode); content "->target" makes a symlink.
    """
    image_config = json.loads(base.config_bytes)
    layers = [(d, store.blobs.size(d)) for d in base.diff_ids]
    if files:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path, (content, mode) in sorted(files.items()):
                info = tarfile.TarInfo(path.lstrip("/"))
                info.mode = mode
                if isinstance(content, str) and content.startswith("->"):
                    info.type, info.linkname = tarfile.SYMTYPE, content[2:]
                    tar.addfile(info)
                    continue
                data = content.encode() if isinstance(content, str) else content
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        digest = store.blobs.put_bytes(buf.getvalue())
        layers.append((digest, len(buf.getvalue())))
        image_config["rootfs"]["diff_ids"].append(digest)
    image_config["config"] = {**(image_config.get("config") or {}), **(config or {})}
    image_config.setdefault("history", []).append({"created_by": "dockyard tests"})
    data = json.dumps(image_config).encode()
    from dockyard import api

    return store.put_image(data, layers=layers, tags=[api.normalize(name)])


@pytest.fixture(autouse=True)
def _clean_containers(request):
    """Remove every container (and unused volume) a test leaves behind."""
    yield
    if "run_store" not in request.fixturenames:
        return
    store = request.getfixturevalue("run_store")
    for ctr in list_containers(store.root, all_=True):
        with contextlib.suppress(Exception):  # best effort between tests
            remove_container(store.root, ctr.id, force=True, volumes=True)
    VolumeStore(store.root).prune(all_volumes=True)


class Result:
    def __init__(self, code: int | None, out: str, err: str, container_id: str = ""):
        self.code, self.out, self.err, self.id = code, out, err, container_id

    def __repr__(self) -> str:
        return f"Result(code={self.code!r}, out={self.out!r}, err={self.err!r})"


def run_in(store, image, *command: str, stdin: bytes | None = None, **options) -> Result:
    """Run a container in-process (foreground); capture its output."""
    opts = RunOptions(command=list(command), **options)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryFile() as inp:
        if stdin is not None:
            inp.write(stdin)
            inp.seek(0)
            opts.interactive = True
        cid, code = run_container(store, image, opts, stdin=inp.fileno(), stdout=out.fileno(),
                                  stderr=err.fileno())
        out.seek(0)
        err.seek(0)
        return Result(code, out.read().decode(errors="replace"), err.read().decode(errors="replace"), cid)


def cli_env(store) -> dict[str, str]:
    env = dict(os.environ, DOCKYARD_ROOT=str(store.root))
    # Bytecode caches make each CLI start ~100 ms faster; keep them out of the tree.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "dockyard-test-pycache")
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-c", LAUNCHER, *args]


@pytest.fixture
def dy(run_store):
    """dy("run", "--rm", "busybox", "true") -> CompletedProcess (text)."""
    env = cli_env(run_store)

    def call(*args: str, input: str | None = None, timeout: float = 60, check: bool = False):
        proc = subprocess.run(cli_command(*args), env=env, input=input, capture_output=True, text=True,
                              timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL,
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(args)} -> {proc.returncode}: {proc.stderr}")
        return proc

    call.env = env
    call.root = run_store.root
    call.command = cli_command
    return call


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a condition")
        time.sleep(interval)


# Helpers as fixtures: tests/conftest.py and this file are both "conftest",
# so test modules cannot import from here by name.

@pytest.fixture
def ctr_run(run_store, busybox):
    """ctr_run("echo", "hi", image=None, **RunOptions fields) -> Result."""
    def call(*command: str, image=None, **options) -> Result:
        return run_in(run_store, image or busybox, *command, **options)
    return call


@pytest.fixture
def derive_image(run_store, busybox):
    def call(name: str, **kw):
        return derive(run_store, kw.pop("base", busybox), name, **kw)
    return call


@pytest.fixture
def until():
    return wait_for

"""`run --userns=auto`: the container's root is an unprivileged host id.

Each container gets its own block of 65536 subordinate ids from /etc/subuid
and /etc/subgid (the `dockyard` lines, else root's). The image's layers are
shown through idmapped mounts, so inside they are owned by root as usual.
The tests add a `dockyard` range to those files when none is there and take
exactly their lines out again afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

import pytest

from dockyard.container import InvalidOption, RunOptions, remove_container, security
from dockyard.container import run as run_container

pytestmark = pytest.mark.root

_OUR_START = 1_500_000_000
_OUR_COUNT = 65536 * 8


def _add_lines(path: Path, line: str) -> bool:
    text = path.read_text() if path.exists() else ""
    if line in text.splitlines():
        return False
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(("" if not text or text.endswith("\n") else "\n") + line + "\n")
    return True


def _drop_line(path: Path, line: str) -> None:
    kept = [x for x in path.read_text().splitlines() if x != line]
    path.write_text("".join(x + "\n" for x in kept))


@pytest.fixture(scope="module")
def subids():
    """Subordinate ids for dockyard: the host's, or a range of ours for the module."""
    if os.geteuid() != 0 or shutil.which("runc") is None:
        pytest.skip("needs root and runc")
    if stat.S_IMODE(os.stat("/dev/null").st_mode) != 0o666:
        pytest.skip("the host's /dev/null is not mode 0666: runc cannot reopen it for a mapped root")
    added = []
    if len(security._blocks(security.subordinate_ranges(security.SUBUID), 65536)) < 2 or \
            len(security._blocks(security.subordinate_ranges(security.SUBGID), 65536)) < 2:
        line = f"dockyard:{_OUR_START}:{_OUR_COUNT}"
        for path in (security.SUBUID, security.SUBGID):
            if _add_lines(path, line):
                added.append((path, line))
    yield
    for path, line in added:
        _drop_line(path, line)


@pytest.fixture(scope="module")
def ns_store(subids, busybox_tar):
    """A store on a path the mapped root can traverse (pytest's tmp dirs are 0700)."""
    from dockyard import api
    from dockyard.store import Store

    base = Path(tempfile.mkdtemp(prefix="dockyard-userns-", dir="/var/tmp"))
    os.chmod(base, 0o711)
    store = Store(base / "store")
    api.import_image(busybox_tar, "busybox:latest", store=store)
    yield store
    from dockyard.container import list_containers

    for ctr in list_containers(store.root, all_=True):
        remove_container(store.root, ctr.id, force=True, volumes=True)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def image(ns_store):
    from dockyard import api

    return api.get_image(ns_store, "busybox:latest")


def _run(store, image, *command, **options) -> tuple[int | None, str, str]:
    opts = RunOptions(command=list(command), **options)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        _, code = run_container(store, image, opts, stdout=out.fileno(), stderr=err.fileno())
        out.seek(0)
        err.seek(0)
        return code, out.read().decode(), err.read().decode()


def _block(store, cid) -> tuple[int, int, int]:
    doc = json.loads((store.root / "containers" / cid / "config.json").read_text())
    assert doc["HostConfig"]["UsernsMode"] == "auto"
    uid, gid, size = doc["Dockyard"]["userns"]
    return uid, gid, size


def _host_ids(pid: int) -> tuple[int, int]:
    uid = gid = -1
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
        elif line.startswith("Gid:"):
            gid = int(line.split()[1])
    return uid, gid


def test_root_inside_is_an_unprivileged_id_outside(ns_store, image, tmp_path):
    shared = Path(tempfile.mkdtemp(prefix="dockyard-userns-data-", dir="/var/tmp"))
    try:
        os.chmod(shared, 0o777)  # host-owned: the mapped root is "others" there
        script = "id -u > /data/inside; id -g >> /data/inside; touch /data/made-inside; exec sleep 60"
        opts = RunOptions(command=["sh", "-c", script],
                          detach=True, userns="auto", network="none",
                          mounts=[_bind(shared, "/data")])
        cid, _ = run_container(ns_store, image, opts)
        uid, gid, size = _block(ns_store, cid)
        assert uid >= 65536 and gid >= 65536 and size == 65536

        def ready():
            return (shared / "made-inside").exists()
        _until(ready)
        assert (shared / "inside").read_text().split() == ["0", "0"]
        st = os.stat(shared / "made-inside")
        assert (st.st_uid, st.st_gid) == (uid, gid)  # what root made is the mapped id on the host
        state = json.loads((ns_store.root / "containers" / cid / "state.json").read_text())
        pid = state["Pid"]
        assert pid > 0 and _host_ids(pid) == (uid, gid)
        remove_container(ns_store.root, cid, force=True)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_image_files_are_root_owned_inside_and_writable(ns_store, image):
    code, out, err = _run(ns_store, image, "sh", "-c",
                          "stat -c '%u:%g %n' / /bin/busybox /etc/passwd /tmp; "
                          "echo changed >> /etc/passwd && tail -1 /etc/passwd; "
                          "chown 1000:1000 /tmp && stat -c '%u:%g' /tmp; "
                          "stat -c '%u:%g' /etc/hosts; mkdir /made && stat -c '%u:%g' /made",
                          userns="auto", network="none", rm=True)
    assert code == 0, err
    lines = out.split("\n")
    assert lines[:4] == ["0:0 /", "0:0 /bin/busybox", "0:0 /etc/passwd", "0:0 /tmp"]
    assert lines[4:8] == ["changed", "1000:1000", "0:0", "0:0"]


def test_the_image_layers_on_disk_stay_unshifted(ns_store, image):
    code, _, err = _run(ns_store, image, "sh", "-c", "chown 1000 /bin/busybox; touch /etc/passwd",
                        userns="auto", network="none", rm=True)
    assert code == 0, err
    from dockyard.snapshots import Snapshotter

    for lower in Snapshotter(ns_store).lowers(image.diff_ids):
        st = os.stat(lower / "bin" / "busybox")
        assert (st.st_uid, st.st_gid) == (0, 0)
    # and a container without --userns still sees root-owned files
    code, out, _ = _run(ns_store, image, "stat", "-c", "%u:%g", "/bin/busybox", rm=True)
    assert (code, out) == (0, "0:0\n")


def test_two_containers_get_different_blocks(ns_store, image):
    ids = []
    try:
        for _ in range(2):
            cid, _ = run_container(ns_store, image, RunOptions(command=["sleep", "30"], detach=True,
                                                               userns="auto", network="none"))
            ids.append(cid)
        first, second = (_block(ns_store, cid) for cid in ids)
        assert first[0] != second[0] and abs(first[0] - second[0]) >= 65536
    finally:
        for cid in ids:
            remove_container(ns_store.root, cid, force=True)


def test_private_network_and_host_network_work(ns_store, image):
    for network in ("private", "host"):
        code, out, err = _run(ns_store, image, "sh", "-c", "id -u; test -d /sys/class && echo sys",
                              userns="auto", network=network, rm=True)
        assert (code, out) == (0, "0\nsys\n"), (network, err)


def test_host_userns_is_the_default(ns_store, image):
    code, out, _ = _run(ns_store, image, "cat", "/proc/self/uid_map", rm=True)
    assert code == 0 and out.split() == ["0", "0", "4294967295"]


def test_refusals(ns_store, image, run_store, busybox):
    with pytest.raises(InvalidOption, match="cannot be combined"):
        _run(ns_store, image, "true", userns="auto", privileged=True)
    with pytest.raises(InvalidOption, match="supports host and auto"):
        _run(ns_store, image, "true", userns="keep-id")
    # pytest's own tmp dirs are 0700: the mapped root could not reach the rootfs
    with pytest.raises(InvalidOption, match="not searchable by the container's root"):
        _run(run_store, busybox, "true", userns="auto", network="none")


def test_without_subordinate_ids_the_error_says_what_to_add(ns_store, image, monkeypatch, tmp_path):
    monkeypatch.setattr(security, "SUBUID", tmp_path / "subuid")
    monkeypatch.setattr(security, "SUBGID", tmp_path / "subgid")
    with pytest.raises(InvalidOption, match="subordinate ids: add a line such as 'dockyard:"):
        _run(ns_store, image, "true", userns="auto")


def test_subordinate_ranges_parsing(tmp_path):
    path = tmp_path / "subuid"
    path.write_text("# comment\nalice:100000:65536\nroot:200000:131072\n0:400000:65536\n"
                    "dockyard:300000:65536\nbroken line\n")
    assert security.subordinate_ranges(path) == [(300000, 65536)]
    assert security.subordinate_ranges(path, ("root",)) == [(200000, 131072), (400000, 65536)]
    assert security.subordinate_ranges(tmp_path / "missing") == []


def test_cli_userns_flag(ns_store):
    import subprocess
    import sys

    env = dict(os.environ, DOCKYARD_ROOT=str(ns_store.root))
    launcher = ("from dockyard.cli.main import cli\nfrom dockyard.cli.container_cmds import COMMANDS\n"
                "[cli.add_command(c) for c in COMMANDS]\ncli(prog_name='dockyard')\n")
    proc = subprocess.run([sys.executable, "-c", launcher, "run", "--rm", "--userns", "auto",
                           "--network", "none", "busybox", "cat", "/proc/self/uid_map"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    inner, host, size = proc.stdout.split()
    assert inner == "0" and int(host) >= 65536 and size == "65536"


def _bind(source: Path, target: str):
    from dockyard.container import MountSpec

    return MountSpec("bind", target, str(source))


def _until(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)

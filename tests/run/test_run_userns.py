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
        os.chmod(shared, 0o755)
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
        assert (st.st_uid, st.st_gid) == (0, 0)  # the bind is idmapped: ids as without --userns
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


# -- volumes and bind mounts under --userns=auto ------------------------------------


def _volume(name: str, target: str = "/v"):
    from dockyard.container import MountSpec

    return MountSpec("volume", target, name)


def test_a_volume_keeps_in_container_ids_across_blocks_and_without_userns(ns_store, image):
    from dockyard.container import VolumeStore

    vol = [_volume("shared-ids")]
    as_root = "touch /v/by-root && mkdir /v/home && chown 1000:1000 /v/home && ls -ln /v"
    code, out, err = _run(ns_store, image, "sh", "-c", as_root, userns="auto", network="none", mounts=vol)
    assert code == 0, err
    code, _, err = _run(ns_store, image, "sh", "-c", "id -u; touch /v/home/by-1000", userns="auto",
                        network="none", mounts=vol, user="1000:1000")
    assert code == 0, err
    # another block again: earlier containers still hold theirs
    code, out, err = _run(ns_store, image, "sh", "-c", "stat -c '%u:%g %n' /v/by-root /v/home /v/home/by-1000;"
                          " echo more >> /v/by-root", userns="auto", network="none", mounts=vol)
    assert code == 0, err
    assert out.splitlines() == ["0:0 /v/by-root", "1000:1000 /v/home", "1000:1000 /v/home/by-1000"]
    blocks = {_block(ns_store, ctr.id)[0] for ctr in _containers(ns_store)}
    assert len(blocks) == 3
    code, out, err = _run(ns_store, image, "sh", "-c", "ls -ln /v/home | tail -1; cat /v/by-root",
                          network="none", mounts=vol, rm=True)
    assert code == 0, err
    assert out.split()[2:4] == ["1000", "1000"] and out.endswith("more\n")
    data = VolumeStore(ns_store.root).get("shared-ids").data
    for path, ids in (("by-root", (0, 0)), ("home", (1000, 1000)), ("home/by-1000", (1000, 1000))):
        st = os.lstat(data / path)
        assert (st.st_uid, st.st_gid) == ids, path
    detached, _ = run_container(ns_store, image, RunOptions(command=["sleep", "30"], detach=True, mounts=vol,
                                                            userns="auto", network="none"))
    assert [p for p in _mount_points() if detached in p]
    _remove_all(ns_store)
    # the clones attached for the containers are gone with them
    assert not [p for p in _mount_points() if str(ns_store.root) in p]


def test_an_image_volume_is_seeded_with_the_images_owners(ns_store, image):
    from dockyard.container import VolumeStore

    owned = _image_with_owned_files(ns_store, image)
    code, out, err = _run(ns_store, owned, "sh", "-c", "stat -c '%u:%g %a %n' /srv /srv/app/conf /srv/tool",
                          userns="auto", network="none")
    assert code == 0, err
    assert out.splitlines() == ["0:0 755 /srv", "1000:1001 640 /srv/app/conf", "0:0 4755 /srv/tool"]
    (anon,) = [v for v in VolumeStore(ns_store.root).list() if v.anonymous]
    st = os.lstat(anon.data / "app" / "conf")
    assert (st.st_uid, st.st_gid) == (1000, 1001)
    assert stat.S_IMODE(os.lstat(anon.data / "tool").st_mode) == 0o4755
    _remove_all(ns_store)


def test_a_bind_mount_shows_the_host_owners(ns_store, image):
    host = Path(tempfile.mkdtemp(prefix="dockyard-userns-bind-", dir="/var/tmp"))
    try:
        os.chmod(host, 0o755)
        os.chown(host, 1000, 1000)
        (host / "mine").write_text("x")
        os.chown(host / "mine", 1000, 1000)
        code, out, err = _run(ns_store, image, "sh", "-c", "ls -ln /h | tail -1; stat -c '%u' /h; "
                              "touch /h/new; stat -c '%u:%g' /one-file", userns="auto", network="none",
                              user="1000", mounts=[_bind(host, "/h"), _bind(host / "mine", "/one-file")],
                              rm=True)
        assert code == 0, err
        assert out.split()[2:4] == ["1000", "1000"] and out.splitlines()[-2:] == ["1000", "1000:1000"]
        assert os.stat(host / "new").st_uid == 1000
    finally:
        shutil.rmtree(host, ignore_errors=True)


def test_a_bind_mount_on_a_filesystem_without_idmapping_is_refused(ns_store, image):
    with pytest.raises(InvalidOption, match=r"^--userns=auto: idmapped mount of bind mount /proc/sys: "):
        _run(ns_store, image, "true", userns="auto", network="none", mounts=[_bind(Path("/proc/sys"), "/h")])
    assert not [p for p in _mount_points() if str(ns_store.root) in p]


def _containers(store):
    from dockyard.container import list_containers

    return list_containers(store.root, all_=True)


def _remove_all(store) -> None:
    for ctr in _containers(store):
        remove_container(store.root, ctr.id, force=True, volumes=True)


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        return [line.split()[4] for line in fh]


def _image_with_owned_files(store, base):
    """base + a layer with /srv owned by 1000:1001 and a setuid file, and VOLUME /srv."""
    import io
    import tarfile

    from dockyard import api

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, mode, ids, data in (("srv", 0o755, (0, 0), None), ("srv/app", 0o750, (1000, 1001), None),
                                      ("srv/app/conf", 0o640, (1000, 1001), b"conf\n"),
                                      ("srv/tool", 0o4755, (0, 0), b"#!/bin/sh\n")):
            info = tarfile.TarInfo(name)
            info.mode, (info.uid, info.gid) = mode, ids
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    layer = buf.getvalue()
    digest = store.blobs.put_bytes(layer)
    config = json.loads(base.config_bytes)
    config["rootfs"]["diff_ids"].append(digest)
    config["config"] = {**(config.get("config") or {}), "Volumes": {"/srv": {}}}
    layers = [(d, store.blobs.size(d)) for d in base.diff_ids] + [(digest, len(layer))]
    return store.put_image(json.dumps(config).encode(), layers=layers, tags=[api.normalize("owned:1")])

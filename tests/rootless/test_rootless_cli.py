"""dockyard as an unprivileged user: load, build with RUN, save, run, rmi.

The user has 65536 subordinate ids: image uid 0 is the user, uids 1..65536
are its range. Everything the store holds must be owned by those ids, never
by the real root, and the image a rootless build makes must be the one a
root build of the same Dockerfile makes, digest for digest.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dockyard import api
from dockyard.store import Store

pytestmark = pytest.mark.root

DOCKERFILE = """\
FROM busybox:latest
RUN mkdir -p /data /home/bob && echo one > /data/a && chown 1000:1000 /data/a \\
 && echo 'bob:x:2000:2000::/home/bob:/bin/sh' >> /etc/passwd \\
 && echo 'bob:x:2000:' >> /etc/group && chown bob:bob /home/bob \\
 && touch /top && chown 65535:65535 /top && rm /bin/true
RUN rm -rf /data && mkdir /data && echo two > /data/b
USER bob
"""


@pytest.fixture(scope="module")
def project(user, busybox_tar, tmp_path_factory):
    """A context in the user's home and busybox:latest saved once (the same
    base image, byte for byte, for the root store and the user's)."""
    root_store = Store(tmp_path_factory.mktemp("rootstore") / "store")
    api.import_image(busybox_tar, "busybox:latest", store=root_store)
    base = user.home / "base.tar"
    api.save(["busybox:latest"], str(base), store=root_store)
    os.chmod(base, 0o644)
    ctx = user.home / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    for p in (ctx, ctx / "Dockerfile"):
        os.chown(p, user.uid, user.gid)
    user.run("load", "-i", str(base))
    return root_store, ctx


def _layer_owners(archive: Path) -> dict[str, tuple[int, int]]:
    owners = {}
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        for name in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(name)) as layer:
                for m in layer:
                    owners[m.name] = (m.uid, m.gid)
    return owners


def test_build_keeps_in_image_owners_and_whiteouts(user, project):
    _, ctx = project
    user.run("build", "-q", "-t", "owned:1", str(ctx))
    out = user.home / "owned.tar"
    user.run("save", "-o", str(out), "owned:1")
    owners = _layer_owners(out)
    assert owners["data/a"] == (1000, 1000)
    assert owners["home/bob"] == (2000, 2000)
    assert owners["top"] == (65535, 65535)
    assert "bin/.wh.true" in owners                # a deletion in the first RUN
    assert "data/.wh..wh..opq" in owners           # a directory replaced in the second
    assert owners["data/b"] == (0, 0)
    inside = user.run("run", "--rm", "owned:1", "sh", "-c", "id -u; stat -c %u:%g /data/b /home/bob")
    assert inside.stdout.split() == ["2000", "0:0", "2000:2000"]


def test_relative_paths_stay_relative_to_where_the_command_runs(user, project):
    user.run("images")
    user.run("rmi", "-f", "nothing:here", check=False)   # the namespace exists: later commands join it
    assert user.run("build", "-q", "ctx").stdout.startswith("sha256:")
    user.run("save", "-o", "rel.tar", "busybox:latest")
    assert (user.home / "rel.tar").stat().st_uid == user.uid


def test_store_is_owned_by_the_user_and_its_subordinate_ids(user, project):
    user.run("build", "-q", "-t", "owned:1", str(project[1]))
    start, count = user.subids
    seen = set()
    for dirpath, dirnames, filenames in os.walk(user.store):
        for name in dirnames + filenames:
            seen.add(os.lstat(os.path.join(dirpath, name)).st_uid)
    allowed = {user.uid, *range(start, start + count)}
    assert seen and seen <= allowed, seen - allowed
    assert user.uid in seen and start + 1000 - 1 in seen   # image uid 1000 -> start + 999
    assert 0 not in seen


def test_rootless_build_gives_the_root_build_digest(user, project):
    root_store, ctx = project
    args = ["--build-arg", "SOURCE_DATE_EPOCH=1700000000", "--rewrite-timestamp"]
    image = api.build(str(ctx), tags=["same:1"], store=root_store, network="host",
                      build_args={"SOURCE_DATE_EPOCH": "1700000000"}, rewrite_timestamp=True,
                      no_cache=True)
    rootless_id = user.run("build", "-q", "--no-cache", *args, "-t", "same:1", str(ctx)).stdout.strip()
    assert rootless_id == image.id
    mine = json.loads(user.run("inspect", "same:1").stdout)[0]
    assert mine["RootFS"]["Layers"] == image.diff_ids


def test_run_is_root_inside_and_the_user_outside(user, project):
    assert user.run("run", "--rm", "busybox", "id", "-u").stdout.strip() == "0"
    cid = user.run("run", "-d", "busybox", "sleep", "31337").stdout.strip()
    try:
        deadline = time.monotonic() + 10
        pids: list[int] = []
        while not pids and time.monotonic() < deadline:
            ps = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
            pids = [int(line.split()[0]) for line in ps.splitlines() if line.split()[1:] == ["sleep", "31337"]]
            time.sleep(0.1)
        assert pids, "the container's process never showed up"
        for pid in pids:
            assert os.stat(f"/proc/{pid}").st_uid == user.uid
        assert user.run("exec", cid, "id", "-u").stdout.strip() == "0"
    finally:
        user.run("rm", "-f", cid, check=False)


def test_images_and_rmi(user, project):
    user.run("tag", "busybox:latest", "gone:1")
    assert "gone" in user.run("images").stdout
    user.run("rmi", "gone:1")
    assert "gone" not in user.run("images").stdout


def test_limits_and_userns_auto_are_clear_errors(user, project):
    proc = user.run("run", "--rm", "--memory", "64m", "busybox", "true", check=False)
    assert proc.returncode == 125
    assert proc.stderr.count("\n") == 1 and "resource limits" in proc.stderr and "need root" in proc.stderr
    proc = user.run("run", "--rm", "--userns=auto", "busybox", "true", check=False)
    assert proc.returncode != 0 and "--userns=auto needs root" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_without_subordinate_ids_only_root_owned_files_work(make_user, busybox_tar):
    lone = make_user("dockyard-rl1", subids=False)
    tar = lone.home / "busybox.tar"
    tar.write_bytes(busybox_tar.read_bytes())
    os.chown(tar, lone.uid, lone.gid)
    first = lone.run("import", str(tar), "lone:1")
    assert "no subordinate ids" in first.stderr     # said once, when the namespace is made
    assert lone.run("run", "--rm", "lone:1", "id", "-u").stdout.strip() == "0"
    ctx = lone.home / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM lone:1\nRUN touch /f && chown 1000 /f\n")
    os.chown(ctx, lone.uid, lone.gid)
    proc = lone.run("build", "-q", str(ctx), check=False)
    assert proc.returncode == 1
    assert "chown 1000 /f" in proc.stderr and "exit code: 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    # An image with a file of another owner cannot be unpacked (import unpacks it):
    # one line says which and why, and no image is recorded.
    owned = lone.home / "owned.tar"
    with tarfile.open(owned, "w") as tar:
        info = tarfile.TarInfo("app")
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, 1000, 1000
        tar.addfile(info)
    os.chown(owned, lone.uid, lone.gid)
    proc = lone.run("import", str(owned), "owned:1", check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().endswith("cannot create app: owner 1000:1000 does not exist in this "
                                        "user namespace (rootless: give the user subordinate ids "
                                        "in /etc/subuid and /etc/subgid)")
    assert proc.stderr.count("\n") == 1
    assert "owned" not in lone.run("images").stdout


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed")
    root = tmp_path_factory.mktemp("rl-registry")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (root / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([binary, "serve", str(root / "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("docker-registry did not start")
            time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_push_and_pull(user, project, registry):
    user.run("build", "-q", "-t", "owned:1", str(project[1]))
    ref = f"{registry}/rootless/owned:1"
    user.run("tag", "owned:1", ref)
    user.run("push", ref)
    user.run("rmi", ref, "owned:1")
    user.run("prune", "-a", "-f")
    user.run("pull", ref)
    out = user.run("run", "--rm", ref, "stat", "-c", "%u:%g", "/data/b", "/home/bob", "/top")
    assert out.stdout.split() == ["0:0", "2000:2000", "65535:65535"]


def test_read_only_commands_make_no_namespace(make_user):
    fresh = make_user("dockyard-rl2")
    assert "REPOSITORY" in fresh.run("images").stdout
    fresh.run("build", "--help")
    assert not (fresh.runtime_dir() / "pause.pid").exists()
    fresh.run("rmi", "-f", "nothing:here", check=False)
    assert (fresh.runtime_dir() / "pause.pid").exists()


def test_python_api_enters_with_ensure(user, project):
    script = ("from dockyard import api, rootless\n"
              "rootless.ensure()\n"
              "import os\n"
              "print(os.geteuid(), rootless.active(), api.images()[0].tags)\n")
    cmd = ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "env", "-i",
           *(f"{k}={v}" for k, v in user.env().items()), "/usr/bin/python3", "-c", script]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=user.home)
    assert out.returncode == 0, out.stderr
    euid, active, _ = out.stdout.split(" ", 2)
    assert (euid, active) == ("0", "True")
    late = ("import threading, time\n"
            "threading.Thread(target=time.sleep, args=(2,), daemon=True).start()\n"
            "from dockyard import rootless\n"
            "try:\n    rootless.ensure()\nexcept rootless.RootlessError as e:\n    print(e)\n")
    out = subprocess.run(cmd[:-1] + [late], capture_output=True, text=True, timeout=60, cwd=user.home)
    assert "must run before any thread starts" in out.stdout, out.stderr


def test_parallel_first_commands_share_one_namespace(make_user):
    fresh = make_user("dockyard-rl3")
    with ThreadPoolExecutor(3) as pool:
        for proc in pool.map(lambda _: fresh.run("rmi", "-f", "nothing:here", check=False), range(3)):
            assert "Traceback" not in proc.stderr
    keepers = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and p.stat().st_uid == fresh.uid and \
                    b"dockyard-rootless-pause" in (p / "cmdline").read_bytes():
                keepers.append(p)
        except OSError:
            pass    # a process that ended meanwhile
    assert len(keepers) == 1
    assert int((fresh.runtime_dir() / "pause.pid").read_text()) == int(keepers[0].name)


def test_published_port_reaches_a_rootless_container(user, project):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cid = user.run("run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox",
                   "httpd", "-f", "-p", "80", "-h", "/etc").stdout.strip()
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/passwd", timeout=2) as resp:
                    assert b"root:x:0:0" in resp.read()
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        user.run("rm", "-f", cid, check=False)

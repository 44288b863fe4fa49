"""Volumes and mounts: binds, named and anonymous volumes, tmpfs, read-only roots."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess

import pytest

from dockyard.container import (
    InvalidOption,
    MountSpec,
    VolumeError,
    VolumeStore,
    parse_mount,
    parse_tmpfs,
)

pytestmark = pytest.mark.root


@pytest.fixture
def data_image(derive_image):
    return derive_image("data:1", files={
        "/data/seed.txt": ("from the image\n", 0o640),
        "/data/sub/deep.txt": ("deep\n", 0o644),
    }, config={"Volumes": {"/data": {}}})


def test_named_volume_keeps_data_across_runs(ctr_run, run_store):
    first = ctr_run("sh", "-c", "echo kept > /vol/file", mounts=[MountSpec("volume", "/vol", "keeper")], rm=True)
    assert first.code == 0
    second = ctr_run("cat", "/vol/file", mounts=[MountSpec("volume", "/vol", "keeper")], rm=True)
    assert second.out == "kept\n"
    volume = VolumeStore(run_store.root).get("keeper")
    assert (volume.data / "file").read_text() == "kept\n"


def test_new_named_volume_is_seeded_from_the_image(ctr_run, data_image, run_store):
    mounts = [MountSpec("volume", "/data", "seeded")]
    out = ctr_run("sh", "-c", "cat /data/seed.txt /data/sub/deep.txt; stat -c '%a' /data/seed.txt; "
                  "echo mine > /data/new", image=data_image, mounts=mounts, rm=True).out
    assert out == "from the image\ndeep\n640\n"
    # A volume that has content is not seeded again: the container's change stays.
    again = ctr_run("ls", "/data", image=data_image, mounts=mounts, rm=True).out.split()
    assert again == ["new", "seed.txt", "sub"]
    nocopy = [MountSpec("volume", "/data", "empty-one", nocopy=True)]
    assert ctr_run("ls", "-A", "/data", image=data_image, mounts=nocopy, rm=True).out == ""


def test_an_empty_image_directory_seeds_a_volume_as_cp_a_does(run_store, tmp_path):
    # An image VOLUME is mostly an empty directory: its owner, mode, times and
    # xattrs must reach the new volume just as `cp -a` copies them.
    src = tmp_path / "src"
    src.mkdir()
    with contextlib.suppress(OSError):  # user xattrs where the filesystem takes them
        os.setxattr(src, "user.note", b"kept")
    os.chown(src, 1000, 1001)
    os.chmod(src, 0o2751)
    os.utime(src, ns=(1_000_000_000, 2_000_000_000))
    ref = tmp_path / "ref"
    ref.mkdir()
    subprocess.run(["cp", "-a", "--", f"{src}/.", f"{ref}/"], check=True)

    def attrs(path):
        st = os.lstat(path)
        return (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime_ns,
                {name: os.getxattr(path, name) for name in os.listxattr(path)})

    volumes = VolumeStore(run_store.root)
    volume = volumes.create("fresh")
    volumes.seed(volume, src)
    assert attrs(volume.data) == attrs(ref)
    assert attrs(ref)[:4] == (1000, 1001, 0o2751, 2_000_000_000)
    assert list(volume.data.iterdir()) == []


def test_image_volumes_get_anonymous_volumes(ctr_run, data_image, run_store):
    volumes = VolumeStore(run_store.root)
    result = ctr_run("sh", "-c", "cat /data/seed.txt; echo x > /data/x", image=data_image)
    assert result.out == "from the image\n"
    anonymous = [v for v in volumes.list() if v.anonymous]
    assert len(anonymous) == 1 and (anonymous[0].data / "x").exists()
    # --rm removes the anonymous volumes of its container.
    ctr_run("true", image=data_image, rm=True)
    assert len([v for v in volumes.list() if v.anonymous]) == 1
    # A user mount on the same path replaces the anonymous volume.
    ctr_run("true", image=data_image, rm=True, mounts=[parse_tmpfs("/data")])
    assert len([v for v in volumes.list() if v.anonymous]) == 1


def test_bind_mounts(ctr_run, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    rw = ctr_run("sh", "-c", "cat /h/in.txt; echo back > /h/out.txt",
                 mounts=[MountSpec("bind", "/h", str(host))])
    assert rw.out == "from host\n" and (host / "out.txt").read_text() == "back\n"
    ro = ctr_run("touch", "/h/nope", mounts=[MountSpec("bind", "/h", str(host), readonly=True)])
    assert ro.code != 0 and "Read-only file system" in ro.err
    created = tmp_path / "made" / "by-v"
    ctr_run("true", mounts=[MountSpec("bind", "/m", str(created), create_source=True)])
    assert created.is_dir()
    with pytest.raises(InvalidOption, match="bind source path does not exist"):
        ctr_run("true", mounts=[parse_mount(f"type=bind,source={tmp_path}/missing,target=/m")])


def test_cli_volume_and_mount_flags(dy, tmp_path):
    host = tmp_path / "h"
    host.mkdir()
    proc = dy("run", "--rm", "-v", f"{host}:/h", "-v", "clivol:/v:ro",
              "--mount", "type=volume,source=clivol2,target=/w",
              "--mount", "type=tmpfs,target=/t,tmpfs-size=1048576",
              "--tmpfs", "/run:size=64k,exec", "busybox", "sh", "-c",
              "touch /h/ok /w/ok; touch /v/ro 2>/dev/null || echo v-ro; "
              "grep -E ' /(t|run) ' /proc/self/mounts")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "v-ro" and (host / "ok").exists()
    t_line = next(line for line in lines if " /t " in line)
    run_line = next(line for line in lines if " /run " in line)
    assert "size=1024k" in t_line and "noexec" in t_line
    assert "size=64k" in run_line and "noexec" not in run_line and "nosuid" in run_line


def test_read_only_root_refuses_writes(ctr_run):
    result = ctr_run("touch", "/newfile", read_only=True)
    assert result.code != 0 and "Read-only file system" in result.err
    ok = ctr_run("sh", "-c", "touch /tmp/ok && echo ok", read_only=True, mounts=[parse_tmpfs("/tmp")])
    assert ok.out == "ok\n"


def test_volume_commands(dy, ctr_run, run_store):
    assert dy("volume", "create", "made-by-cli", "--label", "k=v").stdout == "made-by-cli\n"
    info = json.loads(dy("volume", "inspect", "made-by-cli").stdout)[0]
    assert info["Name"] == "made-by-cli" and info["Driver"] == "local" and info["Labels"] == {"k": "v"}
    assert os.path.isdir(info["Mountpoint"])
    assert "made-by-cli" in dy("volume", "ls", "-q").stdout.split()
    # In use by a (stopped) container: rm refuses.
    ctr_run("true", name="user-of-vol", mounts=[MountSpec("volume", "/v", "made-by-cli")])
    refused = dy("volume", "rm", "made-by-cli")
    assert refused.returncode == 1 and "volume is in use" in refused.stderr
    assert dy("rm", "user-of-vol").returncode == 0
    assert dy("volume", "rm", "made-by-cli").returncode == 0
    assert "made-by-cli" not in dy("volume", "ls", "-q").stdout.split()
    assert dy("volume", "rm", "made-by-cli").returncode == 1
    assert dy("volume", "rm", "-f", "made-by-cli").returncode == 0


def test_volume_prune(dy, run_store):
    volumes = VolumeStore(run_store.root)
    volumes.create("named-keep")
    anon = volumes.create(anonymous=True)
    out = dy("volume", "prune", "-f").stdout
    assert anon.name in out and "named-keep" not in out
    assert "named-keep" in dy("volume", "prune", "-a", "-f").stdout
    assert volumes.list() == []
    with pytest.raises(VolumeError, match="invalid characters"):
        volumes.create("bad/name")

"""Mount stubs: what the runtime creates in the rootfs, and removing only that."""

from __future__ import annotations

import os
import pytest

from dockyard.runtime import missing_mount_points, remove_mount_stubs, run_process
from dockyard.runtime.spec import bind_mount

pytestmark = pytest.mark.root

STANDARD = ["proc", "dev", "sys", "etc/hosts", "etc/resolv.conf", "etc/hostname"]


def test_missing_mount_points_on_busybox_image(busybox_image):
    assert missing_mount_points(busybox_image) == STANDARD


def test_missing_parents_are_listed_before_children(tmp_path):
    (tmp_path / "proc").mkdir()
    assert missing_mount_points(tmp_path, ["/mnt/a/b", "/proc/ignored"]) == [
        "dev", "sys", "etc", "etc/hosts", "etc/resolv.conf", "etc/hostname", "mnt", "mnt/a", "mnt/a/b"]


def test_symlinked_mount_target_resolves_inside_the_rootfs(tmp_path):
    (tmp_path / "etc").mkdir()
    os.symlink("/../../run/systemd/stub.conf", tmp_path / "etc" / "resolv.conf")
    os.symlink("/etc", tmp_path / "etc" / "hostname")  # exists (a directory) once resolved
    found = missing_mount_points(tmp_path)
    assert "run/systemd/stub.conf" in found and "run" in found and "run/systemd" in found
    assert "etc/resolv.conf" not in found and "etc/hostname" not in found


def test_stubs_from_a_real_run_are_removed_and_real_changes_stay(
        container_root, runtime, state_dir, tmp_path):
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "data").write_text("v")
    upper = container_root.upper
    result = run_process(
        container_root.merged,
        ["sh", "-c", "mkdir /made && touch /etc/real && echo x > /etc/hosts && cat /mnt/vol/data"],
        env=["PATH=/bin"], state_dir=state_dir, runtime=runtime,
        extra_mounts=[bind_mount(volume, "/mnt/vol")], stdout=open(os.devnull, "w"))
    assert result.exit_code == 0
    assert list(result.stubs) == [*STANDARD, "mnt", "mnt/vol"]
    # The runtime really left them in the upper dir.
    for stub in STANDARD + ["mnt/vol"]:
        assert os.path.lexists(upper / stub), stub
    etc_times = os.stat(upper / "etc").st_mtime_ns
    removed = result.remove_stubs(upper)
    assert sorted(removed) == sorted(result.stubs)
    assert sorted(os.listdir(upper)) == ["etc", "made"]
    assert os.listdir(upper / "etc") == ["real"]
    assert os.stat(upper / "etc").st_mtime_ns == etc_times
    assert (volume / "data").read_text() == "v"


def test_stubs_with_content_are_kept(tmp_path):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "hosts").write_text("written by the step\n")
    (upper / "dev").mkdir()
    (upper / "dev" / "kept").write_text("")
    (upper / "proc").mkdir()
    os.mknod(upper / "etc" / "hostname", 0o600 | 0o020000, os.makedev(0, 0))  # a whiteout
    removed = remove_mount_stubs(upper, STANDARD)
    assert removed == ["proc"]
    assert sorted(os.listdir(upper)) == ["dev", "etc"]
    assert sorted(os.listdir(upper / "etc")) == ["hostname", "hosts"]


def test_removal_never_follows_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "hosts").write_text("")
    (outside / "emptydir").mkdir()
    (tmp_path / "victim").write_text("")
    upper = tmp_path / "upper"
    upper.mkdir()
    os.symlink(outside, upper / "etc")
    os.symlink(outside / "emptydir", upper / "proc")
    removed = remove_mount_stubs(upper, ["etc", "etc/hosts", "proc", "../victim", "/../victim"])
    assert removed == []
    assert (outside / "hosts").exists() and (outside / "emptydir").is_dir()
    assert (tmp_path / "victim").exists()
    assert os.path.islink(upper / "etc") and os.path.islink(upper / "proc")


def test_missing_stubs_are_ignored(tmp_path):
    assert remove_mount_stubs(tmp_path, ["nothing/here", "dev"]) == []

"""The parts of rootless mode that need no second user: id maps, the store's
default place, overlay options and the spec's mounts in a user namespace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard import rootless
from dockyard.runtime import overlay
from dockyard.runtime.spec import make_spec
from dockyard.store.store import default_root


def test_subordinate_ids_by_name_or_uid(tmp_path):
    f = tmp_path / "subuid"
    f.write_text("alice:100000:65536\n1001:300000:10\nbob:200000:65536\n"
                 "alice:bad:1\nalice:5:0\n# comment\nalice:400000:5\n")
    assert rootless.subordinate_ids(str(f), "alice", 1001) == ((100000, 65536), (300000, 10), (400000, 5))
    assert rootless.subordinate_ids(str(f), "carol", 1002) == ()
    assert rootless.subordinate_ids(str(tmp_path / "missing"), "alice", 1001) == ()


def test_mapping_puts_the_user_at_zero_and_ranges_after():
    m = rootless.Mapping(1001, 1001, ((100000, 65536), (300000, 10)), ((200000, 65536),))
    assert m.full
    assert m.lines(m.uid, m.subuids) == [0, 1001, 1, 1, 100000, 65536, 65537, 300000, 10]
    assert not rootless.Mapping(1001, 1001, (), ((1, 2),)).full


def test_store_defaults_to_the_users_data_dir_inside_the_namespace(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKYARD_ROOT", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("_DOCKYARD_ROOTLESS", "1001")
    monkeypatch.setattr(rootless, "in_user_namespace", lambda: True)
    assert default_root() == tmp_path / "data" / "dockyard"
    monkeypatch.setenv("DOCKYARD_ROOT", str(tmp_path / "mine"))
    assert default_root() == tmp_path / "mine"


@pytest.mark.skipif(os.geteuid() != 0, reason="as root, the default is /var/lib/dockyard")
def test_root_outside_a_namespace_keeps_var_lib(monkeypatch):
    monkeypatch.delenv("DOCKYARD_ROOT", raising=False)
    monkeypatch.delenv("_DOCKYARD_ROOTLESS", raising=False)
    assert default_root() == Path("/var/lib/dockyard")


def test_overlay_in_a_user_namespace_uses_user_xattrs():
    opts = overlay.overlay_options(["/l"], "/u", "/w", "userxattr")
    assert "userxattr" in opts.split(",")
    assert "redirect_dir=nofollow" in opts.split(",")    # "off" may mean follow, refused with userxattr
    plain = overlay.overlay_options(["/l"], "/u", "/w")
    assert "redirect_dir=off" in plain.split(",") and "userxattr" not in plain


def _mount(spec, dest):
    return next(m for m in spec["mounts"] if m["destination"] == dest)


def test_spec_binds_host_sys_rootless_on_the_host_network(monkeypatch, tmp_path):
    monkeypatch.setattr(rootless, "in_user_namespace", lambda: True)
    host = make_spec(rootfs=tmp_path, args=["true"], network="host")
    assert _mount(host, "/sys")["type"] == "bind" and "ro" in _mount(host, "/sys")["options"]
    own = make_spec(rootfs=tmp_path, args=["true"], network="none")
    assert _mount(own, "/sys")["type"] == "sysfs"
    monkeypatch.setattr(rootless, "in_user_namespace", lambda: False)
    assert _mount(make_spec(rootfs=tmp_path, args=["true"]), "/sys")["type"] == "sysfs"


def test_devpts_drops_an_unmapped_tty_group(monkeypatch, tmp_path):
    monkeypatch.setattr(rootless, "id_mapped", lambda kind, n: False)
    assert "gid=5" not in _mount(make_spec(rootfs=tmp_path, args=["true"]), "/dev/pts")["options"]
    monkeypatch.setattr(rootless, "id_mapped", lambda kind, n: True)
    assert "gid=5" in _mount(make_spec(rootfs=tmp_path, args=["true"]), "/dev/pts")["options"]


def test_id_mapped_reads_this_process_map():
    assert rootless.id_mapped("uid", os.getuid())


def test_runtime_dir_refuses_a_shared_directory(monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    uid = 2_000_000_000 + os.getpid()
    path = Path(f"/tmp/dockyard-{uid}")
    path.mkdir(mode=0o777)
    os.chmod(path, 0o777)
    try:
        with pytest.raises(rootless.RootlessError, match="not a private directory"):
            rootless.runtime_dir(uid)
        os.chmod(path, 0o700)
        assert rootless.runtime_dir(uid) == path
    finally:
        path.rmdir()

"""USER and --chown resolution against the image's own passwd/group files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.errors import ContainerRuntimeError
from dockyard.runtime.users import lookup_home, parse_passwd, resolve_chown, resolve_user

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "app:x:1000:1000:App User:/home/app:/bin/sh\n"
    "nohome:x:1001:1001:::/bin/sh\n"
)
GROUP = (
    "root:x:0:\n"
    "daemon:x:1:\n"
    "app:x:1000:\n"
    "staff:x:50:app,daemon\n"
    "video:x:44:app\n"
    "other:x:2000:daemon\n"
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text(PASSWD)
    (r / "etc" / "group").write_text(GROUP)
    return r


@pytest.mark.parametrize("user, expected", [
    ("", (0, 0, [])),
    ("root", (0, 0, [])),
    ("0", (0, 0, [])),
    ("app", (1000, 1000, [50, 44])),
    ("1000", (1000, 1000, [50, 44])),          # a uid in passwd behaves like its name
    ("daemon", (1, 1, [50, 2000])),
    ("app:staff", (1000, 50, [])),             # explicit group: no supplementary groups
    ("app:44", (1000, 44, [])),
    ("1000:2000", (1000, 2000, [])),
    ("4242", (4242, 0, [])),                   # unknown uid: fine, gid 0
    ("4242:4343", (4242, 4343, [])),
    ("4242:video", (4242, 44, [])),
    ("app:9999", (1000, 9999, [])),
])
def test_resolve_user(root, user, expected):
    assert resolve_user(root, user) == expected


def test_unknown_name_is_dockers_error(root):
    with pytest.raises(ContainerRuntimeError) as info:
        resolve_user(root, "nobody")
    assert str(info.value) == "unable to find user nobody: no matching entries in passwd file"


def test_unknown_group_name_is_an_error(root):
    msg = "unable to find group nogroup: no matching entries in group file"
    with pytest.raises(ContainerRuntimeError, match=msg):
        resolve_user(root, "app:nogroup")


def test_out_of_range_uid(root):
    with pytest.raises(ContainerRuntimeError, match="range"):
        resolve_user(root, str(2**31))


def test_missing_passwd_file_allows_numeric_users(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert resolve_user(empty, "") == (0, 0, [])
    assert resolve_user(empty, "1000") == (1000, 0, [])
    assert resolve_user(empty, "1000:1000") == (1000, 1000, [])
    with pytest.raises(ContainerRuntimeError, match="unable to find user app"):
        resolve_user(empty, "app")


def test_first_match_wins_and_odd_lines_are_tolerated(root):
    (root / "etc" / "passwd").write_text(
        "\n  \nroot:x:0:0:root:/root:/bin/sh\nbad\ndup:x:7:7::/a:\ndup:x:8:8::/b:\nnum:x:abc:5::/c:\n")
    assert resolve_user(root, "dup") == (7, 7, [])
    assert resolve_user(root, "num")[:2] == (0, 5)  # unparsable ids read as 0, as in runc


def test_hostile_passwd_symlink_stays_inside_the_rootfs(tmp_path):
    # The "host" file sits next to the rootfs; a naive open would read it.
    host = tmp_path / "host"
    host.mkdir()
    (host / "passwd").write_text("evil:x:0:0::/:/bin/sh\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink("/etc/../../host/passwd", root / "etc" / "passwd")
    with pytest.raises(ContainerRuntimeError, match="unable to find user evil"):
        resolve_user(root, "evil")
    # Inside the rootfs the same target names /host/passwd: that one is used.
    (root / "host").mkdir()
    (root / "host" / "passwd").write_text("inside:x:77:78::/in:/bin/sh\n")
    assert resolve_user(root, "inside") == (77, 78, [])
    assert lookup_home(root, 77) == "/in"


def test_relative_symlink_loop_and_dir_escape(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (tmp_path / "passwd").write_text("evil:x:0:0::/:/bin/sh\n")
    os.symlink("../../../../../passwd", root / "etc" / "passwd")
    with pytest.raises(ContainerRuntimeError, match="unable to find user evil"):
        resolve_user(root, "evil")
    os.unlink(root / "etc" / "passwd")
    os.symlink("passwd", root / "etc" / "passwd")
    with pytest.raises(ContainerRuntimeError, match="symbolic links"):
        resolve_user(root, "app")


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_device_node_as_passwd_is_refused(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.mknod(root / "etc" / "passwd", 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero
    with pytest.raises(ContainerRuntimeError, match="not a regular file"):
        resolve_user(root, "app")


def test_lookup_home(root):
    assert lookup_home(root, 1000) == "/home/app"
    assert lookup_home(root, 1001) == "/"   # empty home field
    assert lookup_home(root, 5555) == "/"
    assert lookup_home(root.parent / "nowhere", 0) == "/"


@pytest.mark.parametrize("spec, expected", [
    ("1000", (1000, 1000)),          # BuildKit: a bare uid doubles as the gid
    ("app", (1000, 1000)),           # a name brings its primary group
    ("daemon", (1, 1)),
    ("app:staff", (1000, 50)),
    ("app:77", (1000, 77)),
    ("42:staff", (42, 50)),
    ("42:43", (42, 43)),
    ("nobody", (0, 0)),              # BuildKit quietly falls back to root
    ("app:nogroup", (1000, 1000)),   # ...and keeps the user's gid
])
def test_resolve_chown_buildkit_rules(root, spec, expected):
    assert resolve_chown(root, spec) == expected


def test_resolve_chown_strict(root):
    with pytest.raises(ContainerRuntimeError, match="unable to find user nobody"):
        resolve_chown(root, "nobody", strict=True)
    with pytest.raises(ContainerRuntimeError, match="unable to find group nogroup"):
        resolve_chown(root, "app:nogroup", strict=True)


def test_parse_passwd_fields():
    (entry,) = parse_passwd(b"app:x:1000:1001:App User:/home/app:/bin/sh\n")
    assert (entry.name, entry.uid, entry.gid, entry.home) == ("app", 1000, 1001, "/home/app")

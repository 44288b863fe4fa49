"""write_tree: deterministic layer tars, their format, and the round trip
through apply_layer."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile

import pytest
from layer_testlib import MTIME, build_tree, listing, raw_headers, tar_members

from dockyard.errors import LayerError
from dockyard.layer import HashingWriter, apply_layer, write_tree

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod)")


def _tar(root, **kw) -> bytes:
    out = io.BytesIO()
    write_tree(root, out, **kw)
    return out.getvalue()


@pytest.fixture
def tree(tmp_path):
    return build_tree(tmp_path / "tree", devices=os.geteuid() == 0)


def test_same_tree_twice_gives_identical_bytes(tree, tmp_path):
    first = _tar(tree)
    assert _tar(tree) == first
    # The same content created in the opposite order: the on-disk directory
    # order differs, the tar must not.
    twin = build_tree(tmp_path / "twin", reverse=True, devices=os.geteuid() == 0)
    assert _tar(twin) == first


def test_entry_order_is_a_sorted_depth_first_walk(tree):
    names = [h["name"] for h in raw_headers(_tar(tree))]
    assert names.index(b"a/") < names.index(b"a/sub/") < names.index(b"a/sub/f")
    # Each directory's entries sorted bytewise, a directory's subtree before its next sibling.
    assert names.index(b"a/sub/f") < names.index(b"a-b")
    assert names == sorted(names, key=lambda n: n.rstrip(b"/").split(b"/"))


def test_names_and_headers_look_like_buildkits(tree):
    data = _tar(tree)
    headers = raw_headers(data)
    for h in headers:
        assert not h["name"].startswith((b"/", b"./")), h["name"]
        assert h["uname"] == b"" and h["gname"] == b"", "owners must be numeric only"
        assert h["magic"] == b"ustar\x0000"
        assert (h["type"] == b"5") == h["name"].endswith(b"/")
    by_name = {h["name"]: h for h in headers}
    # PAX only where needed.
    assert by_name[b"a-b"]["pax"] == {}
    assert by_name[b"a/"]["pax"] == {b"SCHILY.xattr.user.dir": b"on a directory"}
    assert by_name[b"x" * 120]["pax"] == {b"path": b"x" * 120}
    assert by_name["caf\u00e9".encode()]["pax"] == {b"path": "caf\u00e9".encode()}
    assert by_name[b"longlink"]["pax"] == {b"linkpath": b"y" * 150}
    if os.geteuid() == 0:
        assert by_name[b"bigid"]["pax"] == {b"gid": b"4000000", b"uid": b"3000000"}
    # Go's writer ends with two zero blocks and no record padding.
    assert len(data) % 512 == 0
    assert data.endswith(bytes(1024)) and not data.endswith(bytes(1536))


def test_members_as_the_stdlib_reads_them(tree):
    members = {m.name: m for m in tar_members(_tar(tree))}
    assert members["a/sub"].isdir() and members["a/sub"].mode == 0o2775
    assert members["tmp"].mode == 0o1777
    assert members["a/sub/f"].mode == 0o640
    # The first path in walk order carries the data, later ones link to it.
    assert members["a/hard1"].isreg() and members["a/hard1"].size == 6
    assert members["a/sub/f"].islnk() and members["a/sub/f"].linkname == "a/hard1"
    assert members["hard2"].islnk() and members["hard2"].linkname == "a/hard1"
    assert members["a/link"].issym() and members["a/link"].linkname == "sub/f"
    assert members["abs"].linkname == "/etc/passwd"
    assert members["pipe"].isfifo()
    assert members["big.bin"].size == 256 * (3 * 4096 + 7)
    assert members["a/hard1"].pax_headers["SCHILY.xattr.user.comment"].encode(
        "utf-8", "surrogateescape") == b"\x00\xffbinary\n="
    assert all(m.mtime == MTIME for m in members.values())  # truncated to seconds
    if os.geteuid() == 0:
        assert members["setuid"].mode == 0o4755 and members["setuid"].uid == 1000
        assert (members["owned"].uid, members["owned"].gid) == (1234, 5678)
        assert (members["a/link"].uid, members["a/link"].gid) == (42, 43)
        assert members["null"].ischr() and (members["null"].devmajor, members["null"].devminor) == (1, 3)
        assert members["loop"].isblk() and members["loop"].devmajor == 7


def test_source_date_epoch_clamps_only_newer_mtimes(tree):
    os.utime(tree / "a-b", (100, 100))
    members = {m.name: m for m in tar_members(_tar(tree, source_date_epoch=MTIME - 10))}
    assert members["a/sub/f"].mtime == MTIME - 10
    assert members["a-b"].mtime == 100


def test_prefix_puts_the_tree_under_a_directory(tree):
    names = [h["name"] for h in raw_headers(_tar(tree, prefix="/usr/src/app/"))]
    assert names[0] == b"usr/src/app/"
    assert all(n.startswith(b"usr/src/app/") for n in names)
    assert b"usr/src/app/a/sub/f" in names
    members = {m.name: m for m in tar_members(_tar(tree, prefix="app"))}
    assert members["app/hard2"].linkname == "app/a/hard1"


def test_sockets_are_left_out(tmp_path):
    import socket

    (tmp_path / "t").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "t" / "sock"))
    try:
        assert [h["name"] for h in raw_headers(_tar(tmp_path / "t"))] == []
    finally:
        sock.close()


def test_missing_root_is_a_layer_error(tmp_path):
    with pytest.raises(LayerError):
        _tar(tmp_path / "missing")


def test_hashing_writer_digests_what_it_writes(tree, tmp_path):
    with open(tmp_path / "layer.tar", "wb") as f:
        hw = HashingWriter(f)
        write_tree(tree, hw)
    data = (tmp_path / "layer.tar").read_bytes()
    assert hw.size == len(data)
    assert hw.digest == "sha256:" + hashlib.sha256(data).hexdigest()


def test_round_trip_through_apply_layer(tree, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    apply_layer(io.BytesIO(_tar(tree)), dest)
    assert listing(dest) == listing(tree)
    for rel in ("a/sub/f", "a", "a/sub", "tmp", "abs"):
        assert os.lstat(dest / rel).st_mtime == MTIME  # whole seconds, as in the tar
    assert os.lstat(dest / "a/sub/f").st_nlink == 3


@root_only
def test_gnu_tar_reads_the_same_tree(tree, tmp_path):
    path = tmp_path / "layer.tar"
    path.write_bytes(_tar(tree))
    dest = tmp_path / "gnu"
    dest.mkdir()
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf",
                    str(path), "-C", str(dest)], check=True)
    assert listing(dest) == listing(tree)


def test_stdlib_tarfile_reads_the_same_file_contents(tree):
    with tarfile.open(fileobj=io.BytesIO(_tar(tree))) as tar:
        for m in tar:
            if m.isreg() and not m.islnk():
                with tar.extractfile(m) as src:
                    data = src.read()
                path = os.path.join(os.fsencode(tree), os.fsencode(m.name))
                with open(path, "rb") as f:
                    assert f.read() == data, m.name


def test_regular_file_round_trip_keeps_special_bits(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for mode in (0o4711, 0o2750, 0o1700, 0o000, 0o777):
        path = src / f"m{mode:o}"
        path.write_text(str(mode))
        os.chmod(path, mode)
    dest = tmp_path / "dest"
    dest.mkdir()
    apply_layer(io.BytesIO(_tar(src)), dest)
    for mode in (0o4711, 0o2750, 0o1700, 0o000, 0o777):
        assert stat.S_IMODE(os.lstat(dest / f"m{mode:o}").st_mode) == mode

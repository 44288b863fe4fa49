"""apply_layer semantics beyond the breakout vectors: whiteouts, opaque
directories, replacement rules, metadata that must never go through a
symlink, compression."""

from __future__ import annotations

import io
import os
import stat

import pytest
from layer_testlib import MTIME, make_tar, snapshot

from dockyard.errors import LayerError
from dockyard.layer import apply_layer, open_layer
from dockyard.layer.compress import zstandard

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod)")


def _apply(root, entries, **kw):
    apply_layer(io.BytesIO(make_tar(entries, **kw)), root)


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    _apply(root, [["dir", "etc", ""], ["reg", "etc/passwd", "root"], ["reg", "etc/group", "g"],
                  ["dir", "var", ""], ["dir", "var/lib", ""], ["reg", "var/lib/a", "a"],
                  ["dir", "var/lib/sub", ""], ["reg", "var/lib/sub/b", "b"],
                  ["reg", "keep", "keep"]])
    return root


def test_whiteouts_delete_files_and_trees(rootfs):
    _apply(rootfs, [["wh", "etc/.wh.group", ""], ["wh", ".wh.var", ""], ["wh", ".wh.missing", ""],
                    ["wh", "nodir/.wh.x", ""]])
    assert sorted(os.listdir(rootfs)) == ["etc", "keep"]
    assert os.listdir(rootfs / "etc") == ["passwd"]
    assert not (rootfs / "nodir").exists(), "a whiteout must not create its parent"


def test_opaque_directory_keeps_only_this_layers_entries(rootfs):
    _apply(rootfs, [["dir", "var/lib", ""], ["wh", "var/lib/.wh..wh..opq", ""],
                    ["reg", "var/lib/new", "new"]])
    assert os.listdir(rootfs / "var/lib") == ["new"]
    assert (rootfs / "keep").read_text() == "keep"


def test_opaque_marker_after_the_entries_it_must_keep(rootfs):
    # The marker may come after entries of the same layer (merged into an old
    # subdirectory): those stay, what only the lower layer had goes.
    _apply(rootfs, [["dir", "var/lib/sub", ""], ["reg", "var/lib/sub/c", "c"],
                    ["reg", "var/lib/fresh/deep", "implied parent"],
                    ["wh", "var/lib/.wh..wh..opq", ""]])
    assert sorted(os.listdir(rootfs / "var/lib")) == ["fresh", "sub"]
    assert os.listdir(rootfs / "var/lib/sub") == ["c"]
    assert (rootfs / "var/lib/fresh/deep").read_text() == "implied parent"


def test_invalid_whiteout_names_are_refused(rootfs):
    for name in (".wh.", "etc/.wh..", "etc/.wh..."):
        with pytest.raises(LayerError, match="invalid whiteout entry"):
            _apply(rootfs, [["wh", name, ""]])
    assert (rootfs / "etc/passwd").read_text() == "root"


def test_other_aufs_metadata_is_ignored(rootfs):
    _apply(rootfs, [["wh", ".wh..wh.plnk", ""], ["dir", ".wh..wh.orph", ""]])
    assert sorted(os.listdir(rootfs)) == ["etc", "keep", "var"]


def test_replacement_rules(rootfs):
    _apply(rootfs, [["reg", "var/lib", "a file now"], ["dir", "keep", ""],
                    ["reg", "keep/inside", "x"], ["sym", "etc/passwd", "group"]])
    assert (rootfs / "var/lib").read_text() == "a file now"
    assert (rootfs / "keep/inside").read_text() == "x"
    assert os.readlink(rootfs / "etc/passwd") == "group"
    # A directory over a directory merges.
    _apply(rootfs, [["dir", "etc", "", {"mode": 0o700}], ["reg", "etc/more", "m"]])
    assert sorted(os.listdir(rootfs / "etc")) == ["group", "more", "passwd"]
    assert stat.S_IMODE(os.stat(rootfs / "etc").st_mode) == 0o700


def test_writing_over_a_hardlink_does_not_change_the_other_name(rootfs):
    os.link(rootfs / "keep", rootfs / "etc/keep-twin")
    _apply(rootfs, [["reg", "keep", "replaced"]])
    assert (rootfs / "keep").read_text() == "replaced"
    assert (rootfs / "etc/keep-twin").read_text() == "keep"


def test_existing_symlink_to_the_host_is_replaced_not_followed(rootfs, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "file").write_text("host")
    os.chmod(host / "file", 0o600)
    os.symlink(host / "file", rootfs / "f")
    os.symlink(host, rootfs / "d")
    before = snapshot(host)
    _apply(rootfs, [["reg", "f", "mine", {"mode": 0o777}], ["dir", "d", "", {"mode": 0o777}],
                    ["reg", "d/x", "x"]])
    assert snapshot(host) == before
    assert (rootfs / "f").read_text() == "mine" and not os.path.islink(rootfs / "f")
    assert (rootfs / "d").is_dir() and not os.path.islink(rootfs / "d")


@root_only
def test_hardlink_entry_changes_no_metadata_through_a_symlink(rootfs, tmp_path):
    # CVE-2021-32760: chmod/chown of a hardlink to a symlink followed the symlink.
    host = tmp_path / "secret"
    host.write_text("s")
    os.chmod(host, 0o400)
    before = snapshot(tmp_path, exclude=rootfs)
    _apply(rootfs, [["sym", "s", str(host)],
                    ["hard", "t", "s", {"mode": 0o777, "uid": 1000, "gid": 1000}]])
    assert snapshot(tmp_path, exclude=rootfs) == before
    assert os.path.islink(rootfs / "t") and os.readlink(rootfs / "t") == str(host)


@root_only
def test_owners_modes_times_and_devices(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    _apply(root, [["reg", "suid", "x", {"mode": 0o4755, "uid": 1000, "gid": 1000}],
                  ["dir", "shared", "", {"mode": 0o2770, "uid": 7, "gid": 8}],
                  ["sym", "shared/link", "../suid", {"uid": 1234, "gid": 4321}],
                  ["chr", "null", (1, 3), {"mode": 0o666}],
                  ["blk", "loop0", (7, 0), {"mode": 0o660, "gid": 6}],
                  ["fifo", "pipe", "", {"mode": 0o620}],
                  ["reg", "shared/late", "written after the directory entry"]])
    st = os.lstat(root / "suid")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4755, 1000, 1000)
    st = os.lstat(root / "shared")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o2770, 7, 8)
    assert st.st_mtime == MTIME, "directory times are set after their contents"
    st = os.lstat(root / "shared/link")
    assert (st.st_uid, st.st_gid, st.st_mtime) == (1234, 4321, MTIME)
    st = os.lstat(root / "null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_IMODE(st.st_mode) == 0o666
    st = os.lstat(root / "loop0")
    assert stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), st.st_gid) == (7, 6)
    st = os.lstat(root / "pipe")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620


def test_xattrs_are_applied_but_never_overlay_ones(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    pax = {"SCHILY.xattr.user.note": "hi", "SCHILY.xattr.trusted.overlay.opaque": "y",
           "SCHILY.xattr.user.overlay.opaque": "y"}
    _apply(root, [["dir", "d", "", {"pax": pax}], ["reg", "d/f", "f", {"pax": pax}]])
    for path in (root / "d", root / "d/f"):
        assert os.getxattr(path, "user.note") == b"hi"
        assert os.listxattr(path) == ["user.note"]


def test_names_are_cleaned_and_absolute_names_stay_inside(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    _apply(root, [["reg", "./a/../b", "b"], ["reg", "/abs/../c", "c"], ["dir", "./", ""]])
    assert sorted(os.listdir(root)) == ["b", "c"]


@pytest.mark.parametrize("entries, message", [
    ([["reg", "f", "x"], ["reg", "f/g", "y"]], "not a directory"),
    ([["sym", "loop", "loop"], ["reg", "loop/x", ""]], "symbolic links"),
    ([["reg", "..", "x"]], "climbs out"),
    ([["reg", "/", "x"]], "root directory"),
    ([["hard", "h", "nothing"]], "not found"),
])
def test_bad_entries_raise_layer_error(tmp_path, entries, message):
    with pytest.raises(LayerError, match=message):
        _apply(tmp_path, entries)


@pytest.mark.parametrize("compress", ["gz", "bz2", "xz"])
def test_compressed_layers(tmp_path, compress):
    data = make_tar([["reg", "hello", "world"]], compress=compress)
    apply_layer(io.BytesIO(data), tmp_path)
    assert (tmp_path / "hello").read_text() == "world"
    (tmp_path / "layer").write_bytes(data)
    with open_layer(tmp_path / "layer") as f:
        assert f.read() == make_tar([["reg", "hello", "world"]])


@pytest.mark.skipif(zstandard is None, reason="zstandard is not installed")
def test_zstd_layer(tmp_path):  # pragma: no cover - optional dependency
    plain = make_tar([["reg", "z", "std"]])
    apply_layer(io.BytesIO(zstandard.ZstdCompressor().compress(plain)), tmp_path)
    assert (tmp_path / "z").read_text() == "std"


@pytest.mark.skipif(zstandard is not None, reason="zstandard is installed")
def test_zstd_without_the_module_is_reported(tmp_path):
    with pytest.raises(LayerError, match="zstandard"):
        apply_layer(io.BytesIO(b"\x28\xb5\x2f\xfd" + bytes(100)), tmp_path)


@pytest.mark.parametrize("data", [b"not a tar at all" * 40, make_tar([["reg", "f", "x" * 5000]])[:1500],
                                  b"\x1f\x8b\x08\x00garbage"])
def test_unreadable_input_is_a_layer_error(tmp_path, data):
    with pytest.raises(LayerError):
        apply_layer(io.BytesIO(data), tmp_path)


def test_empty_stream_is_an_empty_layer(tmp_path):
    apply_layer(io.BytesIO(b""), tmp_path)
    assert os.listdir(tmp_path) == []


def test_open_layer_passes_plain_tar_through_unchanged():
    data = make_tar([["reg", "a", "b" * 10000]])
    stream = io.BytesIO(data)
    with open_layer(stream) as f:
        assert f.read() == data
    assert not stream.closed, "a caller's stream is the caller's to close"


class _Pipe(io.RawIOBase):
    """A plain tar that cannot seek, like a layer read from a pipe."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        chunk = self._data.read(len(buf))
        buf[:len(chunk)] = chunk
        return len(chunk)


def _source(how: str, data: bytes, tmp_path):
    if how == "file":  # read by offset: headers mapped, data copied in the kernel
        (tmp_path / "layer.tar").write_bytes(data)
        return open(tmp_path / "layer.tar", "rb")
    return io.BytesIO(data) if how == "memory" else io.BufferedReader(_Pipe(data))


SOURCES = ["file", "memory", "pipe"]
_BIG = bytes(range(256)) * 12_000  # bigger than one copy buffer


@root_only
@pytest.mark.parametrize("how", SOURCES)
def test_every_kind_of_source_gives_the_same_tree(tmp_path, how):
    entries = [["dir", "etc", "", {"mode": 0o750, "uid": 7, "gid": 8}],
               ["reg", "etc/big", _BIG, {"mode": 0o640, "uid": 5, "gid": 6}],
               ["reg", "etc/empty", ""],
               ["reg", "etc/setuid", "s", {"mode": 0o4755}],
               ["reg", "etc/locked", "l", {"mode": 0o400}],
               ["reg", "etc/xattr", "x", {"pax": {"SCHILY.xattr.user.k": "v"}}],
               ["hard", "etc/same", "etc/big"], ["sym", "etc/link", "big"],
               ["reg", "deep/missing/parents", "p"], ["reg", "etc/empty", "replaced"]]
    data = make_tar(entries)
    want, got = tmp_path / "want", tmp_path / "got"
    want.mkdir()
    got.mkdir()
    _apply(want, entries)
    with _source(how, data, tmp_path) as src:
        apply_layer(src, got)
    wanted, have = snapshot(want), snapshot(got)
    assert have.keys() == wanted.keys()
    implied = {".", "deep", "deep/missing"}  # made now, with the time of now
    for name in have:  # and ctimes differ between any two trees
        keep = 5 if name in implied else 6
        assert have[name][:keep] + have[name][7:] == wanted[name][:keep] + wanted[name][7:], name
    assert (got / "etc/big").read_bytes() == _BIG
    assert stat.S_IMODE(os.stat(got / "etc/setuid").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(got / "etc/locked").st_mode) == 0o400
    assert (os.stat(got / "etc").st_uid, os.stat(got / "etc/big").st_gid) == (7, 6)
    assert os.getxattr(got / "etc/xattr", "user.k") == b"v"
    assert (got / "etc/empty").read_text() == "replaced"


@pytest.mark.parametrize("how", SOURCES)
def test_a_cut_short_layer_is_an_error_from_every_source(tmp_path, how):
    data = make_tar([["reg", "a", "x" * 3000], ["reg", "b", _BIG]])
    (tmp_path / "root").mkdir()
    with _source(how, data[:len(data) // 2], tmp_path) as src, pytest.raises(LayerError, match="unreadable"):
        apply_layer(src, tmp_path / "root")


@pytest.mark.parametrize("opener", ["gzip", "bz2", "lzma"])
def test_a_decompressing_file_object_is_read_as_a_stream(tmp_path, opener):
    # gzip.open() & co. seek, and their fileno() is the compressed file's.
    module = __import__(opener)
    path = tmp_path / "layer.tar.x"
    with module.open(path, "wb") as f:
        f.write(make_tar([["reg", "a", "x" * 3000], ["reg", "b", _BIG]]))
    (tmp_path / "root").mkdir()
    with module.open(path, "rb") as f:
        apply_layer(f, tmp_path / "root")
    assert (tmp_path / "root/b").read_bytes() == _BIG

"""Images are unpacked into snapshots as they enter the store (import, load,
pull), as Docker does; an image whose unpack fails is not recorded and
leaves nothing behind."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import threading

import pytest
from support import needs_root

from dockyard.archive import import_rootfs, load
from dockyard.errors import LayerError
from dockyard.snapshots import Unpacker, chain_ids
from dockyard.store import Store
from dockyard.store.fsck import check

pytestmark = needs_root()


def _tar(entries: list[tuple[str, bytes | None]]) -> bytes:
    """Regular files (bytes) and directories (None), named verbatim."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _archive(layers: list[bytes], tag: str) -> io.BytesIO:
    """A docker-archive of one image made of `layers`."""
    diff_ids = [_sha(layer) for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    files = {f"{d[7:]}/layer.tar": layer for d, layer in zip(diff_ids, layers)}
    files[_sha(config)[7:] + ".json"] = config
    files["manifest.json"] = json.dumps([{"Config": _sha(config)[7:] + ".json", "RepoTags": [tag],
                                          "Layers": [f"{d[7:]}/layer.tar" for d in diff_ids]}]).encode()
    return io.BytesIO(_tar(list(files.items())))


def _snapshot_fs(store: Store, diff_ids: list[str]):
    path = store.snapshot(chain_ids(diff_ids)[-1])
    return None if path is None else path / "fs"


def _untouched(store: Store) -> None:
    """No image, no snapshot, and fsck finds nothing to repair."""
    assert store.db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0
    assert store.db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0] == 0
    assert sorted(p.name for p in store.snapshot_dir.iterdir()) == ["empty"]
    report = check(store, repair=False)
    assert report.ok and not report.leftovers, report.lines()


GOOD = _tar([("etc", None), ("etc/hostname", b"box\n"), ("etc/motd", b"hello\n")])
UPPER = _tar([("etc", None), ("etc/.wh.motd", b""), ("etc/issue", b"Debian\n")])
HOSTILE = _tar([("../escape", b"out\n")])


def test_import_unpacks_the_layer(tmp_path):
    store = Store(tmp_path / "store")
    image = import_rootfs(store, io.BytesIO(GOOD), tag="base:1")
    fs = _snapshot_fs(store, image.diff_ids)
    assert fs is not None, "the layer was not unpacked at import"
    assert (fs / "etc/hostname").read_bytes() == b"box\n"
    assert check(store, repair=False).ok


def test_load_unpacks_every_layer_with_whiteouts_as_overlayfs_ones(tmp_path):
    store = Store(tmp_path / "store")
    load(store, _archive([GOOD, UPPER], "two:1"))
    diff_ids = [_sha(GOOD), _sha(UPPER)]
    assert (_snapshot_fs(store, diff_ids[:1]) / "etc/motd").read_bytes() == b"hello\n"
    upper = _snapshot_fs(store, diff_ids)
    assert (upper / "etc/issue").read_bytes() == b"Debian\n"
    st = os.lstat(upper / "etc/motd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0  # the overlayfs whiteout


def test_a_refused_layer_leaves_no_image_and_no_snapshot(tmp_path):
    store = Store(tmp_path / "store")
    outside = tmp_path / "store" / "snapshots"
    with pytest.raises(LayerError) as err:
        load(store, _archive([GOOD, HOSTILE], "bad:1"))
    assert "climbs out of the root" in str(err.value) and "\n" not in str(err.value)
    assert store.blobs.all() == []  # the load's blobs went with it
    assert not os.path.lexists(outside / "escape")
    _untouched(store)


def test_a_refused_import_keeps_nothing(tmp_path):
    store = Store(tmp_path / "store")
    with pytest.raises(LayerError, match="climbs out of the root"):
        import_rootfs(store, io.BytesIO(HOSTILE), tag="bad:1")
    assert store.blobs.all() == []
    _untouched(store)


def test_a_later_image_reuses_the_snapshots_of_its_base(tmp_path):
    store = Store(tmp_path / "store")
    load(store, _archive([GOOD], "base:1"))
    first = store.snapshot(_sha(GOOD))
    load(store, _archive([GOOD, UPPER], "two:1"))
    assert store.snapshot(_sha(GOOD)) == first
    assert store.db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0] == 2


def test_unpacker_applies_layers_in_order_whatever_order_they_arrive_in(tmp_path):
    store = Store(tmp_path / "store")
    diff_ids = [_sha(GOOD), _sha(UPPER)]
    unpacker = Unpacker(store, diff_ids)
    store.blobs.put_bytes(UPPER)
    unpacker.ready(diff_ids[1])  # the upper layer first: it must wait for its parent
    arrived = threading.Event()

    def late() -> None:
        store.blobs.put_bytes(GOOD)
        unpacker.ready(diff_ids[0])
        arrived.set()

    threading.Thread(target=late).start()
    assert arrived.wait(30)
    unpacker.finish()
    assert (_snapshot_fs(store, diff_ids) / "etc/issue").read_bytes() == b"Debian\n"
    assert stat.S_ISCHR(os.lstat(_snapshot_fs(store, diff_ids) / "etc/motd").st_mode)


def test_unpacker_failure_raises_at_finish_and_drops_what_it_made(tmp_path):
    store = Store(tmp_path / "store")
    diff_ids = [_sha(GOOD), _sha(HOSTILE)]
    unpacker = Unpacker(store, diff_ids)
    for data, diff_id in ((GOOD, diff_ids[0]), (HOSTILE, diff_ids[1])):
        store.blobs.put_bytes(data)
        unpacker.ready(diff_id)
    with pytest.raises(LayerError, match=f"layer {diff_ids[1]}: .*climbs out of the root"):
        unpacker.finish()
    for digest in diff_ids:
        store.blobs.delete(digest)
    _untouched(store)


def test_unpacker_cancelled_while_waiting_for_a_download(tmp_path):
    store = Store(tmp_path / "store")
    diff_ids = [_sha(GOOD), _sha(UPPER)]
    unpacker = Unpacker(store, diff_ids)
    store.blobs.put_bytes(GOOD)
    unpacker.ready(diff_ids[0])
    unpacker.cancel()  # the upper layer never came: the pull failed
    store.blobs.delete(diff_ids[0])
    _untouched(store)


def test_gc_collects_the_snapshots_of_a_removed_image_and_keeps_the_others(tmp_path):
    store = Store(tmp_path / "store")
    load(store, _archive([GOOD], "base:1"))
    two = load(store, _archive([GOOD, UPPER], "two:1"))[0][0]
    store.untag("docker.io/library/two:1")
    store.delete_image(two)
    store.gc()
    assert store.snapshot(_sha(GOOD)) is not None  # base:1 still uses it
    assert store.snapshot(chain_ids([_sha(GOOD), _sha(UPPER)])[-1]) is None
    assert len([p for p in store.snapshot_dir.iterdir() if p.name != "empty"]) == 1
    assert check(store, repair=False).ok


def _entries(specs: list[tuple[str, str, object, int, int]]) -> bytes:
    """(name, kind 'dir'|'file'|'link', data or link target, mode, uid)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data, mode, uid in specs:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode, info.uid, info.gid = 1_700_000_000, mode, uid, uid
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
                tf.addfile(info)
            else:
                info.size = len(data)  # type: ignore[arg-type]
                tf.addfile(info, io.BytesIO(data))  # type: ignore[arg-type]
    return buf.getvalue()


def _merged_listing(store: Store, diff_ids: list[str], tmp_path) -> dict[str, tuple]:
    """What a container of the image sees: path -> (kind, mode, uid, content or target)."""
    from dockyard.snapshots import Snapshotter

    snaps = Snapshotter(store)
    upper = tmp_path / "view"
    upper.mkdir()
    (upper / "fs").mkdir()
    out = {}
    with snaps.mounted(snaps.lowers(diff_ids), upper) as root:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                st = os.lstat(full)
                rel = os.path.relpath(full, root)
                if stat.S_ISLNK(st.st_mode):
                    what = os.readlink(full)
                elif stat.S_ISREG(st.st_mode):
                    what = open(full, "rb").read()
                else:
                    what = None
                out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, what)
    return out


BASE = _entries([("etc", "dir", None, 0o755, 0), ("etc/hostname", "file", b"box\n", 0o644, 0),
                 ("opt", "dir", None, 0o700, 5), ("opt/old", "file", b"old\n", 0o600, 5),
                 ("usr", "dir", None, 0o755, 0), ("usr/lib", "dir", None, 0o755, 0),
                 ("lib", "link", "usr/lib", 0o777, 0)])


@pytest.mark.parametrize("layer, expect", [
    # adds beside what is below: written straight into its directory
    (_entries([("etc", "dir", None, 0o750, 0), ("etc/new", "file", b"new\n", 0o644, 0)]),
     {"etc": (stat.S_IFDIR, 0o750, 0, None), "etc/new": (stat.S_IFREG, 0o644, 0, b"new\n"),
      "etc/hostname": (stat.S_IFREG, 0o644, 0, b"box\n")}),
    # an implied parent keeps the owner and mode it has below (overlay copy-up)
    (_entries([("opt/new", "file", b"new\n", 0o644, 0)]),
     {"opt": (stat.S_IFDIR, 0o700, 5, None), "opt/new": (stat.S_IFREG, 0o644, 0, b"new\n"),
      "opt/old": (stat.S_IFREG, 0o600, 5, b"old\n")}),
    # an entry under a lower symlink lands where the link points, inside the root
    (_entries([("lib/x.so", "file", b"so\n", 0o644, 0)]),
     {"lib": (stat.S_IFLNK, 0o777, 0, "usr/lib"), "usr/lib/x.so": (stat.S_IFREG, 0o644, 0, b"so\n")}),
    # a file over a lower directory hides all of it
    (_entries([("opt", "file", b"flat\n", 0o644, 0)]),
     {"opt": (stat.S_IFREG, 0o644, 0, b"flat\n"), "opt/old": None}),
])
def test_a_layer_on_top_shows_what_docker_would(tmp_path, layer, expect):
    store = Store(tmp_path / "store")
    load(store, _archive([BASE, layer], "top:1"))
    seen = _merged_listing(store, [_sha(BASE), _sha(layer)], tmp_path)
    for path, want in expect.items():
        assert seen.get(path) == want, path
    assert check(store, repair=False).ok


def test_a_directory_deleted_below_and_made_again_shows_only_its_new_content(tmp_path):
    store = Store(tmp_path / "store")
    gone = _entries([("opt/.wh..wh..opq", "file", b"", 0o644, 0), ("etc", "dir", None, 0o755, 0),
                     ("etc/.wh.hostname", "file", b"", 0o644, 0)])
    again = _entries([("etc", "dir", None, 0o755, 0), ("etc/hostname", "dir", None, 0o755, 0),
                      ("etc/hostname/x", "file", b"x\n", 0o644, 0),
                      ("opt", "dir", None, 0o755, 0), ("opt/new", "file", b"n\n", 0o644, 0)])
    layers = [BASE, gone, again]
    load(store, _archive(layers, "again:1"))
    seen = _merged_listing(store, [_sha(x) for x in layers], tmp_path)
    assert seen["etc/hostname"][0] == stat.S_IFDIR and seen["etc/hostname/x"][3] == b"x\n"
    assert "opt/old" not in seen and seen["opt/new"][3] == b"n\n"

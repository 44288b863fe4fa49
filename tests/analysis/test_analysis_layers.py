"""`dockyard layers`: per-layer sizes, instructions, changes and wasted bytes
of images built by dockyard, and the scanner's whiteout handling."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from analysis_images import NEW_DATA, SIZES, WASTED
from click.testing import CliRunner

from dockyard import api
from dockyard.analysis import format_layers, layers_report, scan_image
from dockyard.analysis.scan import read_layer
from dockyard.cli.inspect_cmds import layers


def _report(store, name, **kw):
    return layers_report(store, api.get_image(store, name), **kw)


def test_layers_match_history_and_blobs(analysis_store):
    image = api.get_image(analysis_store, "waste:1")
    report = layers_report(analysis_store, image)
    layers = report["layers"]
    # busybox + COPY + RUN + COPY + COPY; ENV made no layer and takes no row
    assert len(layers) == len(image.layer_digests) == 5
    assert [layer["digest"] for layer in layers] == image.layer_digests
    assert [layer["size"] for layer in layers] == [d["size"] for d in image.manifest["layers"]]
    assert layers[0]["instruction"] == "Imported from -"
    assert layers[1]["instruction"] == "COPY app/ /opt/app/"
    assert layers[2]["instruction"].startswith("RUN /bin/sh -c rm /opt/app/big.dat")
    assert layers[3]["instruction"] == "COPY data2.bin /opt/app/data.bin"
    assert layers[4]["instruction"] == "COPY extra.bin /opt/extra.bin"
    assert all("# buildkit" not in layer["instruction"] for layer in layers)
    assert report["size"] == sum(layer["size"] for layer in layers)


def test_added_changed_removed_and_waste(analysis_store):
    report = _report(analysis_store, "waste:1")
    copy, run, overwrite, extra = report["layers"][1:]
    # opt, opt/app, 5 files, sub/ and its 2 files ... all new
    assert copy["added"] == 2 + len(SIZES) + 1
    assert copy["changed"] == 0 and copy["removed"] == 0
    assert copy["content_size"] == sum(SIZES.values())
    # big.dat, sub/, sub/a.txt, sub/b.txt gone; new.txt added
    assert run["removed"] == 4
    assert run["added"] == 1
    assert overwrite["changed"] == 1 and overwrite["added"] == 0
    assert extra["added"] == 1 and extra["wasted"] == 0
    assert copy["wasted"] == WASTED
    assert report["wasted"] == WASTED
    content = report["content_size"]
    assert report["efficiency"] == pytest.approx(1 - WASTED / content, abs=1e-6)
    wasted = {w["path"]: w for w in report["wasted_files"]}
    assert wasted["/opt/app/big.dat"] == {"path": "/opt/app/big.dat", "size": SIZES["app/big.dat"],
                                          "layer": 1, "by": 2, "how": "removed"}
    assert wasted["/opt/app/data.bin"]["how"] == "overwritten"
    assert wasted["/opt/app/data.bin"]["by"] == 3
    assert wasted["/opt/app/sub/a.txt"]["by"] == 2
    assert "/opt/app/lib.so" not in wasted and "/opt/extra.bin" not in wasted
    # largest first
    sizes = [w["size"] for w in report["wasted_files"]]
    assert sizes == sorted(sizes, reverse=True)


def test_final_view_matches_the_unpacked_image(analysis_store, tmp_path):
    from support import image_files

    image = api.get_image(analysis_store, "waste:1")
    scan = scan_image(analysis_store, image)
    files = image_files(analysis_store, image, tmp_path / "rootfs")
    assert set(scan.files) == set(files)
    for path, entry in scan.files.items():
        kind = {"file": "file", "dir": "dir", "symlink": "symlink"}.get(entry.kind, "other")
        assert kind == files[path][0], path
        if kind == "file":
            assert entry.size == files[path][4], path
    assert scan.files["opt/app/data.bin"].size == NEW_DATA
    assert scan.files["opt/app/data.bin"].layer == 3


def test_base_image_has_no_waste(store, base_image):
    report = layers_report(store, base_image)
    assert report["wasted"] == 0
    assert report["efficiency"] == 1.0
    assert report["wasted_files"] == []
    assert len(report["layers"]) == 1


def _tar(entries: list[tuple[str, bytes | None]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_opaque_directory_and_whiteout_semantics():
    from dockyard.analysis.scan import LayerScan, _View

    view = _View()
    layers = [
        [("d", None), ("d/old1", b"x" * 10), ("d/old2", b"y" * 20), ("f", b"z" * 5)],
        # an opaque d keeps what this layer writes in d, even listed before the marker
        [("d", None), ("d/new", b"n" * 7), ("d/.wh..wh..opq", b""), ("f", b"w" * 3)],
        [(".wh.d", b""), ("d", None)],
    ]
    scans = []
    for i, entries in enumerate(layers):
        layer = LayerScan(index=i, digest=f"l{i}", diff_id=f"l{i}", size=0)
        view.apply(layer, read_layer(_tar(entries), index=i))
        scans.append(layer)
    assert scans[1].removed == 2 and scans[1].added == 1 and scans[1].changed == 1
    assert scans[0].wasted == 10 + 20 + 5
    assert scans[1].wasted == 7  # d/new went with the whiteout of d
    assert scans[2].removed == 1 and scans[2].changed == 1  # d removed, then made again
    assert sorted(view.files) == ["d", "f"]
    assert view.files["f"].size == 3


def test_empty_and_compressed_layer_blobs():
    import gzip

    assert read_layer(io.BytesIO(b"")) == []
    raw = _tar([("a", b"hello"), ("../escape", b"no"), ("./b/", None)]).getvalue()
    entries = read_layer(io.BytesIO(gzip.compress(raw)), hashing=True)
    assert [(e.path, e.kind, e.size) for e in entries] == [("a", "file", 5), ("b", "dir", 0)]
    assert entries[0].digest == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


def test_cli_table_and_json(analysis_store):
    runner = CliRunner()
    obj = {"store": analysis_store}
    res = runner.invoke(layers, ["waste:1"], obj=obj)
    assert res.exit_code == 0, res.output
    assert "Image efficiency score:" in res.output
    assert "COPY data2.bin /opt/app/data.bin" in res.output
    assert "/opt/app/big.dat" in res.output and "removed in 2" in res.output
    res = runner.invoke(layers, ["waste:1", "--format", "json", "--top", "2"], obj=obj)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["wasted"] == WASTED
    assert [w["path"] for w in data["wasted_files"]] == ["/opt/app/big.dat", "/opt/app/data.bin"]
    res = runner.invoke(layers, ["nosuch:image"], obj=obj)
    assert res.exit_code != 0


def test_format_layers_truncates_long_instructions(analysis_store):
    report = _report(analysis_store, "waste:1")
    text = format_layers(report, width=30)
    assert "RUN /bin/sh -c rm /opt/app/..." in text
    assert "RUN /bin/sh -c rm /opt/app/big.dat && rm -r /opt/app/sub" in format_layers(report, width=0)

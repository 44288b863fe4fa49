"""write_upper_diff against a real overlayfs mount, and the diff applied back
to a plain copy of the lower dir and to another overlay mount."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from layer_testlib import listing, raw_headers, tar_members

from dockyard.errors import LayerError
from dockyard.layer import apply_layer, write_upper_diff

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="overlayfs mounts need root")]


@contextmanager
def overlay(base: Path, lower: Path, options: str = ""):
    """Mount lower + a fresh upper at base/merged; yields (merged, upper)."""
    upper, work, merged = base / "upper", base / "work", base / "merged"
    for d in (upper, work, merged):
        d.mkdir(parents=True)
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}" + (f",{options}" if options else "")
    res = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)],
                         check=False, capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount overlayfs here: {res.stderr.strip()}")
    try:
        yield merged, upper
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def _lower(path: Path) -> Path:
    for rel, text in {"a": "a", "b": "b", "d/x": "x", "d/y": "y", "d/sub/z": "z",
                      "keep/z": "z", "keep/gone": "gone", "etc/passwd": "root"}.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    return path


def _change(merged: Path) -> None:
    """What a RUN step might do, plus the stubs a runtime makes."""
    (merged / "n").write_text("new")
    os.chmod(merged / "n", 0o600)
    os.chown(merged / "n", 1000, 1000)
    os.setxattr(merged / "n", "user.note", b"kept")
    os.link(merged / "n", merged / "n2")
    os.symlink("b", merged / "s")
    (merged / "b").write_text("B!")
    os.unlink(merged / "a")
    os.unlink(merged / "keep/gone")
    shutil.rmtree(merged / "d")
    (merged / "d").mkdir()
    (merged / "d/new").write_text("fresh")
    os.chmod(merged / "keep/z", 0o640)
    (merged / "proc").mkdir()  # mount stubs
    (merged / "etc/hosts").write_text("")


def _expected(merged: Path) -> dict:
    want = listing(merged)
    for stub in ("proc", "etc/hosts"):
        del want[stub]
    return want


def test_upper_diff_entries(tmp_path):
    lower = _lower(tmp_path / "lower")
    with overlay(tmp_path / "ovl", lower) as (merged, upper):
        _change(merged)
    assert stat.S_ISCHR(os.lstat(upper / "a").st_mode)  # what overlayfs left
    out = io.BytesIO()
    write_upper_diff(upper, out, skip=["proc", "/etc/hosts"])
    data = out.getvalue()
    names = [h["name"] for h in raw_headers(data)]
    assert b".wh.a" in names and b"keep/.wh.gone" in names
    assert b"a" not in names
    assert names.index(b"d/") + 1 == names.index(b"d/.wh..wh..opq") < names.index(b"d/new")
    assert b"etc/" in names and b"etc/hosts" not in names
    assert not any(n.startswith(b"proc") for n in names)
    assert b"etc/passwd" not in names, "unchanged lower files are not in the diff"
    for h in raw_headers(data):
        assert not any(b"overlay" in k for k in h["pax"]), h
    members = {m.name: m for m in tar_members(data)}
    for marker in (".wh.a", "keep/.wh.gone", "d/.wh..wh..opq"):
        assert members[marker].isreg() and members[marker].size == 0
        assert not members[marker].islnk(), "whiteouts share an inode; they are not hardlinks"
    assert members["n2"].islnk() and members["n2"].linkname == "n"
    assert (members["n"].uid, members["n"].mode) == (1000, 0o600)
    assert members["keep/z"].mode == 0o640
    assert members["n"].pax_headers["SCHILY.xattr.user.note"] == "kept"
    # The same upper dir twice gives the same bytes.
    again = io.BytesIO()
    write_upper_diff(upper, again, skip=["proc", "etc/hosts"])
    assert again.getvalue() == data


def test_upper_diff_applied_to_a_copy_of_the_lower_dir(tmp_path):
    lower = _lower(tmp_path / "lower")
    with overlay(tmp_path / "ovl", lower) as (merged, upper):
        _change(merged)
        want = _expected(merged)
    out = io.BytesIO()
    write_upper_diff(upper, out, skip=["proc", "etc/hosts"])
    applied = tmp_path / "applied"
    shutil.copytree(lower, applied, symlinks=True)
    apply_layer(io.BytesIO(out.getvalue()), applied)
    assert listing(applied) == want


def test_upper_diff_applied_on_an_overlay_merged_mount(tmp_path):
    lower = _lower(tmp_path / "lower")
    with overlay(tmp_path / "ovl", lower) as (merged, upper):
        _change(merged)
        want = _expected(merged)
    out = io.BytesIO()
    write_upper_diff(upper, out, skip=["proc", "etc/hosts"])
    # The build applies layers into a merged mount whose upper is the new layer.
    with overlay(tmp_path / "ovl2", lower) as (merged2, upper2):
        apply_layer(io.BytesIO(out.getvalue()), merged2)
        assert listing(merged2) == want
    st = os.lstat(upper2 / "a")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, "overlayfs wrote the whiteout itself"


def test_skip_leaves_out_whole_subtrees(tmp_path):
    upper = tmp_path / "upper"
    (upper / "dev/pts").mkdir(parents=True)
    (upper / "dev/null").write_text("")
    (upper / "devices").write_text("not under dev")
    out = io.BytesIO()
    write_upper_diff(upper, out, skip=["dev", ""])
    assert [h["name"] for h in raw_headers(out.getvalue())] == [b"devices"]


def test_redirect_dir_is_refused(tmp_path):
    lower = _lower(tmp_path / "lower")
    with overlay(tmp_path / "ovl", lower, "redirect_dir=on") as (merged, upper):
        os.rename(merged / "d", merged / "moved")
    assert "trusted.overlay.redirect" in os.listxattr(upper / "moved")
    with pytest.raises(LayerError, match="redirect"):
        write_upper_diff(upper, io.BytesIO())

"""overlayfs mounts: layer order, empty lowers, long option strings, plain diffs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dockyard.errors import ContainerRuntimeError
from dockyard.runtime import overlay

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


def _dirs(base: Path, *names: str) -> list[Path]:
    out = []
    for name in names:
        d = base / name
        d.mkdir(parents=True)
        out.append(d)
    return out


def _is_mount(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == target for line in fh)


def test_top_most_lower_wins_and_upper_gets_changes(tmp_path):
    top, bottom, upper, work, merged = _dirs(tmp_path, "top", "bottom", "upper", "work", "merged")
    (bottom / "a").write_text("bottom")
    (bottom / "b").write_text("only-bottom")
    (bottom / "gone").write_text("x")
    (top / "a").write_text("top")
    with overlay.mounted([top, bottom], upper, work, merged) as root:
        assert (root / "a").read_text() == "top"
        assert (root / "b").read_text() == "only-bottom"
        (root / "new").write_text("n")
        os.unlink(root / "gone")
        os.mkdir(root / "d")
        os.rename(root / "d", root / "d2")  # with redirect_dir off this stays a plain dir
    assert not _is_mount(merged)
    assert sorted(os.listdir(upper)) == ["d2", "gone", "new"]
    st = os.lstat(upper / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0  # a whiteout
    assert (bottom / "gone").exists()  # lowers are never written


def test_renamed_lower_dir_is_copied_not_redirected(tmp_path):
    lower, upper, work, merged = _dirs(tmp_path, "lower", "upper", "work", "merged")
    (lower / "dir").mkdir()
    (lower / "dir" / "f").write_text("x")
    with overlay.mounted([lower], upper, work, merged) as root:
        with pytest.raises(OSError):
            os.rename(root / "dir", root / "moved")  # EXDEV: tools fall back to copying
    assert not (upper / "moved").exists()


def test_empty_lowers(tmp_path):
    upper, work, merged = _dirs(tmp_path, "upper", "work", "merged")
    with overlay.mounted([], upper, work, merged) as root:
        assert os.listdir(root) == []
        (root / "f").write_text("x")
    assert os.listdir(upper) == ["f"]


def test_many_long_layer_paths_exceed_one_page(tmp_path):
    deep = tmp_path / ("very-long-directory-name-" * 4)
    lowers = _dirs(deep, *[f"layer-{i:03d}-{'x' * 20}" for i in range(120)])
    for i, d in enumerate(lowers):
        (d / f"f{i}").write_text(str(i))
    (lowers[0] / "f119").write_text("top")
    assert len(overlay.overlay_options([str(p) for p in lowers], "u", "w")) > 4096
    upper, work, merged = _dirs(tmp_path, "upper", "work", "merged")
    with overlay.mounted(lowers, upper, work, merged) as root:
        assert len(os.listdir(root)) == 120
        assert (root / "f119").read_text() == "top"
        assert (root / "f5").read_text() == "5"


def test_paths_with_option_separators(tmp_path):
    lower, upper, work, merged = _dirs(tmp_path, "lo,w:er", "up:per", "work", "merged")
    (lower / "f").write_text("x")
    with overlay.mounted([lower], upper, work, merged) as root:
        assert (root / "f").read_text() == "x"


def test_unmount_happens_on_error_and_failures_raise(tmp_path):
    lower, upper, work, merged = _dirs(tmp_path, "lower", "upper", "work", "merged")
    with pytest.raises(RuntimeError):
        with overlay.mounted([lower], upper, work, merged):
            raise RuntimeError("boom")
    assert not _is_mount(merged)
    with pytest.raises(ContainerRuntimeError, match="mounting overlay"):
        overlay.mount_overlay([tmp_path / "missing"], upper, work, merged)
    with pytest.raises(ContainerRuntimeError, match="unmounting"):
        overlay.unmount(merged)


def test_busy_mount_is_detached_lazily(tmp_path):
    lower, upper, work, merged = _dirs(tmp_path, "lower", "upper", "work", "merged")
    (lower / "f").write_text("x")
    overlay.mount_overlay([lower], upper, work, merged)
    fd = os.open(merged / "f", os.O_RDONLY)
    try:
        overlay.unmount(merged)
        assert not _is_mount(merged)
        assert os.read(fd, 1) == b"x"
    finally:
        os.close(fd)

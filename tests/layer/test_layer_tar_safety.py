"""The 61 breakout cases of tests/data/tar-safety (from moby/go-archive and
containerd's archive tests, Apache-2.0; see ORIGIN there) run through
apply_layer, plus moby's broken.tar.

Every case runs in <tmp>/dest with a sentinel directory <tmp>/victim beside
it; whatever the case expects, nothing outside dest may change (contents,
modes, owners, times, link counts)."""

from __future__ import annotations

import io
import json
import os
import shlex
import stat
import tarfile
from pathlib import Path

import pytest
from layer_testlib import in_root, make_tar, same_file, snapshot

from dockyard.errors import LayerError
from dockyard.layer import apply_layer

DATA = Path(__file__).resolve().parent.parent / "data" / "tar-safety"
CASES = json.loads((DATA / "breakout_cases.json").read_text())["cases"]


def test_case_count():
    assert len(CASES) == 61
    assert len({c["name"] for c in CASES}) == 61


# -- setups named by the cases' "setup" text -----------------------------------

def _setup_sibling(base: Path, dest: Path) -> None:
    (base / "dest-evil").mkdir()
    (base / "dest-evil" / "secret").write_text("secret")
    os.chmod(base / "dest-evil" / "secret", 0o600)


def _setup_two_hop(base: Path, dest: Path) -> None:
    pass  # tmp/dest and tmp/victim: the sentinel directory is made for every case


def _setup_var_run(base: Path, dest: Path, existing: bool = False) -> None:
    (dest / "var").mkdir()
    if existing:
        (dest / "run" / "existing").mkdir(parents=True)
    os.symlink("/run", dest / "var" / "run")


def _setup_escape_absolute(base: Path, dest: Path) -> None:
    (dest / "target").mkdir()
    os.symlink("..", dest / "escape")
    os.symlink("/target", dest / "absolute")


SETUPS = {
    "SiblingPrefix": _setup_sibling,
    "TwoHopSymlinkChain": _setup_two_hop,
    "ThroughAbsoluteSymlink": _setup_var_run,  # variant B; variant A runs in its checker
    "RelativeEscapeThenAbsolute": _setup_escape_absolute,
    "HardlinkSourceThroughAbsSymlink": _setup_var_run,
}


def _apply_steps(steps: list[str]) -> bytes:
    """containerd's 'apply' prelude ('dir /etc', 'file /etc/passwd "x"',
    'symlink a -> b', 'hardlink a -> b') as a first layer."""
    entries = []
    for step in steps:
        words = shlex.split(step)
        if words[0] == "dir":
            entries.append(["dir", words[1], ""])
        elif words[0] == "file":
            entries.append(["reg", words[1], words[2] if len(words) > 2 else ""])
        elif words[0] in ("symlink", "hardlink"):
            assert words[2] == "->"
            entries.append(["sym" if words[0] == "symlink" else "hard", words[1], words[3]])
        else:
            raise AssertionError(f"unknown apply step {step!r}")
    return make_tar(entries)


# -- checks after a case ran -------------------------------------------------------

def _read(root: Path, path: str) -> str:
    return in_root(root, path).read_text()


def _absent(root: Path, path: str) -> bool:
    return not os.path.lexists(in_root(root, path, follow_last=False))


def _symlink_twin(root: Path, link: str, other: str) -> None:
    assert os.path.islink(root / link)
    assert os.readlink(root / link) == os.readlink(root / other)
    assert same_file(root, link, "/etc/passwd")


VALIDATORS = {
    "SymlinkAbsolute": lambda r: _read(r, "etc/unbroken") == "unbroken",
    "SymlinkUpAndOut": lambda r: _read(r, "etc/unbroken") == "unbroken",
    "SymlinkMultipleAbsolute": lambda r: _read(r, "etc/unbroken") == "unbroken",
    "SymlinkMultipleRelative": lambda r: _read(r, "etc/unbroken") == "unbroken",
    "SymlinkEmptyFile": lambda r: (r / "etc" / "emptied").is_file()
    and _read(r, "etc/emptied") == "",
    "HardlinkRelative": lambda r: same_file(r, "/breakouts/mypasswd", "/etc/passwd"),
    "HardlinkDownAndOut": lambda r: same_file(r, "/breakouts/mypasswd", "/etc/passwd"),
    "HardlinkAbsolute": lambda r: same_file(r, "localpasswd", "/etc/passwd"),
    "HardlinkRelativeLong": lambda r: same_file(r, "localpasswd", "/etc/passwd"),
    "HardlinkRelativeUpAndOut": lambda r: same_file(r, "localpasswd", "/etc/passwd"),
    "HardlinkDirectRelative": lambda r: same_file(r, "localpasswd", "/etc/passwd"),
    "HardlinkDirectAbsolute": lambda r: same_file(r, "localpasswd", "/etc/passwd"),
    "SymlinkParentDirectory": lambda r: same_file(r, "/localpasswd", "/etc/passwd"),
    "SymlinkEmptyFilename": lambda r: same_file(r, "/localpasswd", "/etc/passwd"),
    "SymlinkParentRelative": lambda r: same_file(r, "/localetc/localpasswd", "/etc/passwd"),
    "SymlinkSlashEnded": lambda r: same_file(r, "/localetc/localpasswd", "/etc/passwd"),
    "SymlinkOverrideDirectory": lambda r: same_file(r, "/localetc/localpasswd", "/etc/passwd"),
    "SymlinkOverrideDirectoryRelative":
        lambda r: same_file(r, "/localetc/localpasswd", "/etc/passwd"),
    "DirectoryOverrideSymlink": lambda r: same_file(r, "/localetc/localpasswd", "/etc/passwd"),
    "DirectoryOverrideSymlinkAndHardlink":
        lambda r: not same_file(r, "/localetc/localpasswd", "/etc/passwd")
        and _read(r, "/localetc/localpasswd") == "different"
        and _read(r, "/etc/passwd") == "inside",
    "WhiteoutSymlink": lambda r: _read(r, "etc/passwd") == "all users" and _absent(r, "localetc"),
    "WhiteoutSymlinkPath":
        lambda r: _read(r, "etc/passwd") == "all users" and _absent(r, "etc/whitedout"),
    "WhiteoutDirectoryName": lambda r: _read(r, "etc/passwd") == "all users"
    and _read(r, ".wh.etc/somefile") == "non-empty",
    "WhiteoutDeadSymlinkParent": lambda r: _read(r, "etc/passwd") == "all users"
    and _absent(r, "dne"),
    "WhiteoutRelativePath": lambda r: _absent(r, "etc/passwd") and _absent(r, "etc"),
    "HardlinkSymlinkBeforeCreateTarget (non-darwin)":
        lambda r: same_file(r, "localpasswd-dup", "/etc/passwd"),
    "HardlinkSymlinkRelative (non-darwin)":
        lambda r: _symlink_twin(r, "localpasswd", "passwdlink") is None,
    "HardlinkSymlinkAbsolute (non-darwin)":
        lambda r: _symlink_twin(r, "localpasswd", "passwdlink") is None,
    "HardlinkSymlinkChmod (non-darwin)": lambda r: True,  # host side: see _check_host
}


def _check_moby(case: dict, base: Path, dest: Path, err: LayerError | None) -> None:
    name = case["name"]
    if case["expect"] == "contained":
        return  # an error or a success, the snapshot already proved containment
    if name.startswith("ParentTraversal"):
        assert err is not None, "a name climbing out of the root must be refused"
        assert sorted(os.listdir(base)) == ["dest", "host", "victim"]
    elif name == "SiblingPrefix":
        assert not os.path.lexists(dest / "grab")
    elif name == "AbsoluteHardlinkAllowed":
        assert err is None
        assert same_file(dest, "usr/bin/perlbug", "usr/bin/perlthanks")
        assert (dest / "usr/bin/perlthanks").read_text() == "hello"
    elif name == "TwoHopSymlinkChain":
        assert not os.path.lexists(base / "victim" / "newfile")
    elif name == "ThroughAbsoluteSymlink":
        assert err is None
        assert (dest / "run/existing/non-existing/file").read_text() == "content"
    elif name == "RelativeEscapeThenAbsolute":
        assert err is not None and "escape" in str(err)
        assert not os.path.lexists(dest / "target" / "file")
    elif name == "HardlinkSourceThroughAbsSymlink":
        assert err is None
        source, link = os.stat(dest / "run/source"), os.stat(dest / "run/link")
        assert (source.st_dev, source.st_ino) == (link.st_dev, link.st_ino)
        assert source.st_nlink == 2
        assert (dest / "run/link").read_text() == "content"
    elif name.startswith("InvalidWhiteout"):
        assert err is not None and "invalid whiteout entry" in str(err)
    else:
        raise AssertionError(f"no check written for moby case {name!r}")


def _check_containerd(case: dict, dest: Path, err: LayerError | None) -> None:
    if case["expect"].startswith("error"):
        assert err is not None
        return
    assert case["expect"] == "success+validator"
    assert err is None, f"unexpected error: {err}"
    assert VALIDATORS[case["name"]](dest), f"validator failed: {case['validator']}"


def _run(case: dict, base: Path, setup) -> tuple[Path, LayerError | None]:
    dest, victim, host = base / "dest", base / "victim", base / "host"
    dest.mkdir()
    victim.mkdir()
    (victim / "hello").write_text("hello")
    host.mkdir()  # files that the <HOST> case points at
    (host / "perm400").write_text("perm400")
    os.chmod(host / "perm400", 0o400)
    (host / "also-exists-outside-root").write_text("outside")
    os.chmod(host / "also-exists-outside-root", 0o640)
    if case["harness"] == "testBreakout(untar)":
        (dest / "victim").mkdir()  # moby's harness: the root holds an empty 'victim'
    if setup is not None:
        setup(base, dest)
    if case.get("apply"):
        apply_layer(io.BytesIO(_apply_steps(case["apply"])), dest)
    layer = make_tar(case["entries"], replace={"<HOST>": str(host)})
    before = snapshot(base, exclude=dest)
    err = None
    try:
        apply_layer(io.BytesIO(layer), dest)
    except LayerError as exc:  # any other exception fails the test
        err = exc
        assert str(exc) and "\n" not in str(exc)
    assert snapshot(base, exclude=dest) == before, "something outside the root changed"
    assert stat.S_IMODE(os.stat(host / "perm400").st_mode) == 0o400
    return dest, err


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_breakout_case(case, tmp_path):
    if case.get("setup"):
        assert case["name"] in SETUPS, f"setup not implemented: {case['setup']}"
    variants = [SETUPS.get(case["name"])]
    if case["name"] == "ThroughAbsoluteSymlink":
        variants.append(lambda base, dest: _setup_var_run(base, dest, existing=True))
    for i, setup in enumerate(variants):
        base = tmp_path / f"v{i}"
        base.mkdir()
        dest, err = _run(case, base, setup)
        if case["suite"].startswith("containerd"):
            _check_containerd(case, dest, err)
        else:
            _check_moby(case, base, dest, err)


def test_every_containerd_success_case_has_a_validator():
    wanted = {c["name"] for c in CASES
              if c["suite"].startswith("containerd") and c["expect"].startswith("success")}
    assert wanted == set(VALIDATORS)


def test_broken_tar_is_readable(tmp_path):
    # A tar mixing GNU (huge uid) and USTAR (prefix) fields: moby's
    # TestUntarUstarGnuConflict reads it to the end and finds this name.
    wanted = ("root/.cpanm/work/1395823785.24209/Plack-1.0030/blib/man3/"
              "Plack::Middleware::LighttpdScriptNameFix.3pm")
    with tarfile.open(DATA / "broken.tar") as tar:
        assert wanted in tar.getnames()
    with open(DATA / "broken.tar", "rb") as f:
        apply_layer(f, tmp_path)
    assert (tmp_path / wanted).stat().st_size == 6149
    meta = tmp_path / "root/.cpanm/work/1395823785.24209/File-Find-Rule-0.33/META.yml"
    assert meta.stat().st_size == 594
    if os.geteuid() == 0:
        assert (meta.stat().st_uid, meta.stat().st_gid) == (831580115, 755412454)

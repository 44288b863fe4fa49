"""The 61 tar-safety cases (tests/data/tar-safety) on the way an image really
arrives: wrapped in a docker-archive, `load`ed into a store, then built
FROM with a RUN (which writes through every symlink the layers planted,
from inside the container) and read with `COPY --from`.

A case's own setup and its containerd 'apply' prelude become lower layers,
so "a symlink planted by one layer and used by the next" is what happens.
Whatever a case expects, nothing outside the store changes: a sentinel
directory beside the store (with the files the <HOST> case aims at), the
build context, the host's /etc files; and inside the store, every snapshot
directory holds nothing but its `fs`, and fsck finds nothing to complain about.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import tarfile
from pathlib import Path

import pytest
from hardening_lib import (
    TESTS,
    TOOL,
    build,
    busybox_layer,
    check_store_layout,
    docker_archive,
    host_state,
    load_archive,
    make_sentinel,
    tree_state,
    write,
)
from support import needs_root

from dockyard.errors import DockyardError
from dockyard.layer import apply_layer
from dockyard.snapshots import Snapshotter
from dockyard.store import Store
from dockyard.store.fsck import check
from dockyard.store.store import remove_tree

pytestmark = needs_root()

DATA = TESTS / "data" / "tar-safety"
CASES = json.loads((DATA / "breakout_cases.json").read_text())["cases"]

# The 61 cases' oracle lives with apply_layer's own tests; reuse it, not a copy.
sys.path.insert(0, str(TESTS / "layer"))
from layer_testlib import make_tar, same_file

_spec = importlib.util.spec_from_file_location("hardening_tar_safety_oracle",
                                               TESTS / "layer" / "test_layer_tar_safety.py")
oracle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oracle)

# Pre-existing state of a moby case's root, as the layer below the case.
_VAR_RUN = [["dir", "var", ""], ["sym", "var/run", "/run"]]
SETUP_LAYERS = {
    "ThroughAbsoluteSymlink": _VAR_RUN,
    "ThroughAbsoluteSymlink+existing": _VAR_RUN + [["dir", "run", ""], ["dir", "run/existing", ""]],
    "HardlinkSourceThroughAbsSymlink": _VAR_RUN,
    "RelativeEscapeThenAbsolute": [["dir", "target", ""], ["sym", "escape", ".."],
                                   ["sym", "absolute", "/target"]],
}

PARAMS = [(c, c["name"]) for c in CASES]
PARAMS.insert([p[1] for p in PARAMS].index("ThroughAbsoluteSymlink") + 1,
              (next(c for c in CASES if c["name"] == "ThroughAbsoluteSymlink"),
               "ThroughAbsoluteSymlink+existing"))

# From inside the container: append to whatever every symlink of the rootfs
# leads to, and create through every symlinked directory.
RUN_SCRIPT = (f"B={TOOL}; for p in $($B find / -xdev 2>/dev/null); do "
              f"if [ -L \"$p\" ]; then echo pwned >> \"$p\" 2>/dev/null; "
              f"$B mkdir -p \"$p/pwned-dir\" 2>/dev/null; fi; done; true")


def expected_error(case: dict, variant: str) -> bool | None:
    """True: the build must fail; False: it must succeed; None: either, contained."""
    name, expect = case["name"], case["expect"]
    if case["suite"].startswith("containerd"):
        return expect.startswith("error")
    if name.startswith(("ParentTraversal", "InvalidWhiteout")) or name == "RelativeEscapeThenAbsolute":
        return True
    if name in ("AbsoluteHardlinkAllowed", "ThroughAbsoluteSymlink", "HardlinkSourceThroughAbsSymlink"):
        return False
    return None


def validate(case: dict, root: Path) -> None:
    """The case's own verdict on the extracted (merged) image root."""
    name = case["name"]
    if case["suite"].startswith("containerd"):
        if case["expect"].startswith("success"):
            assert oracle.VALIDATORS[name](root), f"validator failed: {case['validator']}"
    elif name == "AbsoluteHardlinkAllowed":
        assert same_file(root, "usr/bin/perlbug", "usr/bin/perlthanks")
        assert (root / "usr/bin/perlthanks").read_text() == "hello"
    elif name == "ThroughAbsoluteSymlink":
        assert (root / "run/existing/non-existing/file").read_text() == "content"
    elif name == "HardlinkSourceThroughAbsSymlink":
        a, b = os.stat(root / "run/source"), os.stat(root / "run/link")
        assert (a.st_ino, a.st_nlink) == (b.st_ino, 2)
        assert (root / "run/link").read_text() == "content"
    elif name == "SiblingPrefix":
        assert not os.path.lexists(root / "grab")
    elif name == "RelativeEscapeThenAbsolute":
        assert not os.path.lexists(root / "target" / "file")


def case_layers(case: dict, variant: str, host: Path) -> list[bytes]:
    layers = []
    if variant in SETUP_LAYERS:
        layers.append(make_tar(SETUP_LAYERS[variant]))
    if case.get("apply"):
        layers.append(oracle._apply_steps(case["apply"]))
    layers.append(make_tar(case["entries"], replace={"<HOST>": str(host)}))
    return layers


def make_host(base: Path) -> Path:
    """The files the <HOST> case points at, as in apply_layer's own test."""
    host = base / "host"
    host.mkdir()
    (host / "perm400").write_text("perm400")
    os.chmod(host / "perm400", 0o400)
    (host / "also-exists-outside-root").write_text("outside")
    os.chmod(host / "also-exists-outside-root", 0o640)
    return host


def listing(root: Path) -> dict[str, tuple]:
    """Names, types, contents and link targets (COPY need not keep hard links)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = os.path.relpath(path, root)
            if path.is_symlink():
                out[rel] = ("symlink", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("dir",)
            elif path.is_file():
                out[rel] = ("file", path.read_bytes())
            else:
                out[rel] = ("other",)
    return out


@contextlib.contextmanager
def merged_view(store: Store, image_ref: str):
    """The image's extracted layers as one overlay view, gone afterwards."""
    from dockyard import api

    image = api.get_image(store, image_ref)
    snaps = Snapshotter(store)
    upper = snaps.new_upper()
    try:
        with snaps.mounted(snaps.lowers(image.diff_ids), upper) as root:
            yield root
    finally:
        remove_tree(upper)


def arrival(store, archive: bytes, expect: bool | None) -> DockyardError | None:
    """Load the archive; its error if the load refused it (nothing recorded then)."""
    try:
        load_archive(store, archive)
    except DockyardError as exc:
        assert str(exc) and "\n" not in str(exc), f"not a one-line error: {exc!r}"
        assert expect is not False, f"the load should have worked: {exc}"
        assert store.images() == [], "a refused load recorded an image"
        return exc
    return None


def outcome(store, ctx: Path, expect: bool | None):
    """(image, None) or (None, error) of a build, checked against `expect`."""
    try:
        image, _ = build(store, ctx)
    except DockyardError as exc:  # any other exception fails the test
        assert str(exc) and "\n" not in str(exc), f"not a one-line error: {exc!r}"
        assert expect is not False, f"the build should have worked: {exc}"
        return None, exc
    assert expect is not True, "the build should have been refused"
    return image, None


@pytest.mark.parametrize("case,variant", PARAMS, ids=[p[1] for p in PARAMS])
def test_hostile_layer_through_load(case, variant, tmp_path):
    make_sentinel(tmp_path)
    host = make_host(tmp_path)
    run_store, copy_store = Store(tmp_path / "store-run"), Store(tmp_path / "store-copy")
    layers = case_layers(case, variant, host)
    run_archive = docker_archive([busybox_layer(), *layers], "hostile:latest")
    copy_archive = docker_archive(layers, "hostile:latest")
    run_ctx = write(tmp_path / "ctx-run", {"Dockerfile": f"""
        FROM hostile:latest
        RUN ["{TOOL}", "sh", "-c", {json.dumps(RUN_SCRIPT)}]
    """})
    copy_ctx = write(tmp_path / "ctx-copy", {"Dockerfile": """
        FROM scratch
        COPY --from=hostile:latest / /
    """})
    outside = (run_store.root, copy_store.root, tmp_path / "copied")
    before, before_host = tree_state(tmp_path, exclude=outside), host_state()
    expect = expected_error(case, variant)

    # Layers are unpacked as they arrive: a refusal comes from load, or else the build.
    run_err = arrival(run_store, run_archive, expect)
    copy_err = arrival(copy_store, copy_archive, expect)
    copied = None
    if run_err is None:
        _, run_err = outcome(run_store, run_ctx, expect)
    if copy_err is None:
        copied, copy_err = outcome(copy_store, copy_ctx, expect)
    assert (run_err is None) == (copy_err is None), (run_err, copy_err)

    assert tree_state(tmp_path, exclude=outside) == before, "something outside the stores changed"
    assert host_state() == before_host, "a host file changed"
    if case["name"].startswith("InvalidWhiteout"):
        assert "invalid whiteout entry" in str(run_err)
    if run_err is None:
        with merged_view(run_store, "hostile:latest") as root:
            validate(case, root)
        with merged_view(copy_store, "hostile:latest") as root:
            validate(case, root)
            source = listing(root)
        dest = tmp_path / "copied"
        dest.mkdir()
        for digest in copied.layer_digests:
            with copy_store.blobs.open(digest) as f:
                apply_layer(f, dest)
        assert listing(dest) == source, "COPY --from changed the tree it copied"
    for store in (run_store, copy_store):
        check_store_layout(store)
        report = check(store)
        assert report.ok and not report.leftovers, report.lines()


def test_broken_tar_layer_through_load(tmp_path):
    """moby's broken.tar (GNU and USTAR fields mixed) as a layer of a loaded image."""
    layer = (DATA / "broken.tar").read_bytes()
    store = Store(tmp_path / "store")
    load_archive(store, docker_archive([layer], "broken:latest"))
    wanted = ("root/.cpanm/work/1395823785.24209/Plack-1.0030/blib/man3/"
              "Plack::Middleware::LighttpdScriptNameFix.3pm")
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"""
        FROM scratch
        COPY --from=broken:latest ["/{wanted}", "/found"]
    """})
    image, _ = build(store, ctx)
    with store.blobs.open(image.layer_digests[-1]) as f, tarfile.open(fileobj=f) as tf:
        assert tf.getmember("found").size == 6149
    check_store_layout(store)

"""Hostile build contexts and Dockerfiles: symlinks out of the context,
`..` in sources and destinations, symlinks planted in the base image, special
files, and a Dockerfile kept outside the context.

Every test has a sentinel directory beside the context and checks that it
is untouched; host paths are never the targets (a broken build would write
into the sentinel, not into /etc)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

import pytest
from hardening_lib import (
    SECRET,
    build,
    cli_argv,
    cli_env,
    make_sentinel,
    tree_state,
    write,
)
from support import needs_root

from dockyard import api
from dockyard.errors import BuildError, DockyardError
from dockyard.store.fsck import check

pytestmark = needs_root()

IMAGE_PASSWD = (b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
                b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")  # support.make_busybox_rootfs


def layer_members(store, image, index: int = -1) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    with store.blobs.open(image.layer_digests[index]) as f, \
            tarfile.open(fileobj=io.BytesIO(f.read())) as tf:
        return {m.name: (m, tf.extractfile(m).read() if m.isfile() else None) for m in tf}


def all_file_bytes(store, image) -> bytes:
    out = b""
    for i in range(len(image.layer_digests)):
        out += b"".join(data for _, data in layer_members(store, image, i).values() if data)
    return out


@pytest.fixture
def sentinel(tmp_path):
    victim = make_sentinel(tmp_path)
    before = tree_state(victim)
    yield victim
    assert tree_state(victim) == before, "the sentinel outside the context changed"


def test_context_symlinks_pointing_outside_are_copied_as_symlinks(store, base_image, tmp_path, sentinel):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        COPY d /d/
        COPY . /all/
    """, "d/plain": "plain\n"})
    os.symlink(str(sentinel / "secret"), ctx / "d" / "abs")
    os.symlink("../../victim/secret", ctx / "d" / "rel")
    os.symlink(str(sentinel), ctx / "d" / "dirlink")
    os.symlink("loop", ctx / "d" / "loop")
    image, _ = build(store, ctx)
    members = layer_members(store, image, -2)
    for name, target in (("abs", str(sentinel / "secret")), ("rel", "../../victim/secret"),
                         ("dirlink", str(sentinel)), ("loop", "loop")):
        info, _ = members[f"d/{name}"]
        assert info.issym() and info.linkname == target, name
    assert not any(n.startswith("d/dirlink/") for n in members)
    everything = layer_members(store, image, -1)
    assert everything["all/d/abs"][0].issym()
    assert SECRET.encode() not in all_file_bytes(store, image)


def test_named_symlink_source_is_resolved_inside_the_context(store, base_image, tmp_path, sentinel):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox:latest\nCOPY d/abs /x\n"})
    (ctx / "d").mkdir()
    os.symlink(str(sentinel / "secret"), ctx / "d" / "abs")
    with pytest.raises(BuildError, match="not found"):
        build(store, ctx)
    # Docker follows a named source symlink, but with the context as its root.
    inside = ctx / str(sentinel).lstrip("/")
    inside.mkdir(parents=True)
    (inside / "secret").write_text("context copy\n")
    image, _ = build(store, ctx)
    assert layer_members(store, image)["x"][1] == b"context copy\n"
    write(ctx, {"Dockerfile": "FROM busybox:latest\nCOPY d/dirlink/secret /y\n"})
    os.symlink(str(sentinel), ctx / "d" / "dirlink")
    image, _ = build(store, ctx)
    assert layer_members(store, image)["y"][1] == b"context copy\n"
    write(ctx, {"Dockerfile": "FROM busybox:latest\nCOPY d/loop/x /z\n"})
    os.symlink("loop", ctx / "d" / "loop")
    with pytest.raises(BuildError):
        build(store, ctx)


@pytest.mark.parametrize("instruction", [
    "COPY ../outside.txt /x",
    "COPY sub/../../outside.txt /x",
    'COPY ["../outside.txt", "/x"]',
    "ADD ../outside.txt /x",
    "COPY ../ /x/",
    "COPY ../* /x/",
])
def test_sources_above_the_context_are_refused(store, base_image, tmp_path, sentinel, instruction):
    (tmp_path / "outside.txt").write_text("outside\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM busybox:latest\n{instruction}\n",
                                   "sub/keep": "keep\n"})
    with pytest.raises(BuildError) as err:
        build(store, ctx)
    assert "\n" not in str(err.value)
    assert len(api.images(store)) == 1  # nothing was built


def test_sources_above_an_image_root_stay_in_the_image(store, base_image, tmp_path, sentinel):
    """`COPY --from` and `RUN --mount=type=bind,source=..` climb no further than
    the image's or the context's root: refused, or the image's own file."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        COPY --from=busybox:latest ../../etc/passwd /p
    """})
    try:
        image, _ = build(store, ctx)
    except BuildError:
        pass
    else:
        assert layer_members(store, image)["p"][1] == IMAGE_PASSWD
    (tmp_path / "outside.txt").write_text("outside\n")
    write(ctx, {"Dockerfile": """
        FROM busybox:latest
        RUN --mount=type=bind,source=../outside.txt,target=/m cat /m > /seen || true
    """})
    try:
        image, _ = build(store, ctx)
    except DockyardError as exc:
        assert "\n" not in str(exc)
    else:
        assert b"outside" not in all_file_bytes(store, image)


def test_destinations_never_leave_the_rootfs(store, base_image, tmp_path, sentinel):
    up = "../" * 20 + str(sentinel).lstrip("/")
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"""
        FROM busybox:latest
        COPY a.txt {up}/planted
        WORKDIR {up}/workdir
        COPY a.txt ./relative
        ADD a.txt /{up}/added
    """, "a.txt": "a\n"})
    image, _ = build(store, ctx)
    inside = str(sentinel).lstrip("/")
    names = set()
    for i in range(len(image.layer_digests)):
        names |= set(layer_members(store, image, i))
    for name in ("planted", "workdir/relative", "added"):
        assert f"{inside}/{name}" in names


@pytest.mark.parametrize("link", ["absolute", "relative"])
def test_copy_into_a_symlinked_image_directory_stays_in_the_rootfs(store, base_image, tmp_path, link):
    """The base image plants /app -> the sentinel (a host path); a context
    directory `app/` copied over it must land in the rootfs, not the host."""
    victim = make_sentinel(tmp_path)
    before = tree_state(victim)
    target = str(victim) if link == "absolute" else "../" * 30 + str(victim).lstrip("/")
    planted = write(tmp_path / "planted", {"Dockerfile": f"""
        FROM busybox:latest
        RUN ln -s {target} /app
    """})
    build(store, planted, tags=["planted:latest"])
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM planted:latest\nCOPY src/ /\n",
                                   "src/app/hello": "overwritten\n",
                                   "src/app/new-file": "new\n"})
    os.chmod(ctx / "src" / "app", 0o777)
    try:
        image, _ = build(store, ctx)
    except BuildError as exc:
        assert "\n" not in str(exc)
    else:
        assert b"new\n" in all_file_bytes(store, image)
    assert tree_state(victim) == before, "COPY wrote through the image's symlink onto the host"


def test_dockerfile_outside_the_context(store, base_image, tmp_path, sentinel):
    """-f may name a Dockerfile anywhere; its <name>.dockerignore beside it
    applies; files beside it are not part of the context."""
    ctx = write(tmp_path / "ctx", {"a.txt": "a\n", "skip.txt": "skip\n"})
    elsewhere = write(tmp_path / "elsewhere", {
        "build.Dockerfile": "FROM busybox:latest\nCOPY . /ctx/\n",
        "build.Dockerfile.dockerignore": "skip.txt\n",
        "beside.txt": "beside\n",
    })
    image, _ = build(store, ctx, dockerfile=elsewhere / "build.Dockerfile")
    names = set(layer_members(store, image))
    assert "ctx/a.txt" in names and "ctx/skip.txt" not in names
    assert not any("beside" in n or "Dockerfile" in n for n in names)
    write(elsewhere, {"build.Dockerfile": "FROM busybox:latest\nCOPY beside.txt /\n"})
    with pytest.raises(BuildError, match="not found"):
        build(store, ctx, dockerfile=elsewhere / "build.Dockerfile")
    write(elsewhere, {"build.Dockerfile": "FROM busybox:latest\nCOPY ../elsewhere/beside.txt /\n"})
    with pytest.raises(BuildError):
        build(store, ctx, dockerfile=elsewhere / "build.Dockerfile")


@pytest.mark.parametrize("instruction", ["COPY . /app/", "COPY fifo /f", "ADD fifo /f", "ADD . /app/"])
def test_special_files_in_the_context_do_not_hang_a_build(store, base_image, tmp_path, instruction):
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM busybox:latest\n{instruction}\n",
                                   "a.txt": "a\n"})
    os.mkfifo(ctx / "fifo")
    try:
        proc = subprocess.run(cli_argv("build", "-q", str(ctx)), env=cli_env(store.root),
                              capture_output=True, text=True, timeout=8, stdin=subprocess.DEVNULL,
                              check=False)
    except subprocess.TimeoutExpired:
        check(store, repair=True)  # the killed build's overlay mounts
        pytest.fail(f"{instruction}: the build hung on a named pipe in the context")
    assert proc.returncode in (0, 1), proc.stderr
    if proc.returncode == 1:
        assert proc.stderr.count("\n") == 1, proc.stderr
    else:
        image = api.get_image(store, proc.stdout.strip())
        info = layer_members(store, image).get("f") or layer_members(store, image).get("app/fifo")
        assert info is not None and info[0].isfifo()

"""The `dockyard` command as a user runs it: real processes, real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from support import needs_root

pytestmark = needs_root()


def dy(root: Path, *args, input=None, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, DOCKYARD_ROOT=str(root))
    return subprocess.run([sys.executable, "-m", "dockyard.cli.main", *args], capture_output=True,
                          text=True, env=env, input=input, cwd=cwd, timeout=300)


@pytest.fixture
def root(tmp_path, busybox_tar):
    r = tmp_path / "root"
    res = dy(r, "import", str(busybox_tar), "busybox:latest", "--change", 'CMD ["sh"]')
    assert res.returncode == 0, res.stderr
    return r


@pytest.fixture
def ctx(tmp_path):
    c = tmp_path / "ctx"
    c.mkdir()
    (c / "Dockerfile").write_text(
        "FROM busybox:latest\nARG WHO=world\nCOPY msg.txt /msg.txt\n"
        "RUN echo \"hello $WHO\" >> /msg.txt\nCMD [\"cat\", \"/msg.txt\"]\n")
    (c / "msg.txt").write_text("first line\n")
    return c


def test_build_run_tag_images_history_inspect_rmi(root, ctx, tmp_path):
    iid = tmp_path / "iid"
    res = dy(root, "build", "-t", "app:1", "-t", "app:latest", "--build-arg", "WHO=dockyard",
             "--label", "team=core", "--progress=plain", "--iidfile", str(iid), str(ctx))
    assert res.returncode == 0, res.stderr
    assert "#4 [stage-0 4/5] RUN" in res.stderr and "DONE" in res.stderr
    image_id = iid.read_text()
    assert image_id.startswith("sha256:")
    out = dy(root, "run", "--rm", "app:1")
    assert (out.returncode, out.stdout) == (0, "first line\nhello dockyard\n")

    again = dy(root, "build", "-q", "-t", "app:1", "--build-arg", "WHO=dockyard", "--label", "team=core", str(ctx))
    assert again.stdout.strip() == image_id     # same id on a no-op rebuild

    plain = dy(root, "build", "--progress=plain", "-t", "app:1", "--build-arg", "WHO=dockyard",
               "--label", "team=core", str(ctx))
    assert plain.stderr.count("CACHED") == 2

    images = dy(root, "images")
    assert "app" in images.stdout and "1" in images.stdout and image_id[7:19] in images.stdout

    assert dy(root, "tag", "app:1", "registry.example:5000/team/app:2").returncode == 0
    info = json.loads(dy(root, "inspect", "app:1").stdout)[0]
    assert info["Id"] == image_id
    assert sorted(info["RepoTags"]) == ["app:1", "app:latest", "registry.example:5000/team/app:2"]
    assert info["Config"]["Labels"] == {"team": "core"}
    assert info["Config"]["Cmd"] == ["cat", "/msg.txt"]

    hist = dy(root, "history", "--no-trunc", "app:1").stdout
    assert "RUN |1 WHO=dockyard /bin/sh -c echo \"hello $WHO\" >> /msg.txt # buildkit" in hist

    res = dy(root, "rmi", "app:latest")
    assert res.stdout.strip() == "Untagged: app:latest"
    dy(root, "rmi", "registry.example:5000/team/app:2")
    res = dy(root, "rmi", "app:1")
    assert f"Deleted: {image_id}" in res.stdout
    assert dy(root, "inspect", "app:1").returncode == 1


def test_save_load_and_oci_layout(root, ctx, tmp_path):
    assert dy(root, "build", "-q", "-t", "app:1", str(ctx)).returncode == 0
    out = tmp_path / "app.tar"
    assert dy(root, "save", "-o", str(out), "app:1").returncode == 0
    with tarfile.open(out) as t:
        manifest = json.load(t.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["app:1"]
    oci = tmp_path / "app-oci.tar"
    assert dy(root, "save", "--format", "oci", "-o", str(oci), "app:1").returncode == 0
    with tarfile.open(oci) as t:
        assert "oci-layout" in t.getnames() and "index.json" in t.getnames()
    other = tmp_path / "other-root"
    res = dy(other, "load", "-i", str(out))
    assert res.returncode == 0 and "Loaded image: app:1" in res.stdout
    run = dy(other, "run", "--rm", "app:1")
    assert run.stdout == "first line\nhello world\n"


def test_errors_are_one_line_without_traceback(root, ctx, tmp_path):
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nCOPY missing.txt /x\n")
    res = dy(root, "build", str(ctx))
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert "Dockerfile:2" in res.stderr and "missing.txt" in res.stderr

    res = dy(root, "build", "--frobnicate", str(ctx))
    assert res.returncode == 2 and "--frobnicate" in res.stderr and "Traceback" not in res.stderr

    (ctx / "Dockerfile").write_text("FROM busybox:latest\nRUN exit 7\n")
    res = dy(root, "build", "--progress=plain", str(ctx))
    assert res.returncode == 1 and "exit code: 7" in res.stderr and "Traceback" not in res.stderr

    res = dy(root, "run", "--rm", "nosuch:image")
    assert res.returncode == 125 and "nosuch" in res.stderr and "Traceback" not in res.stderr

    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive")
    res = dy(root, "load", "-i", str(bad))
    assert res.returncode == 1 and "Traceback" not in res.stderr


def test_import_with_changes_and_prune(root, tmp_path, busybox_tar):
    res = dy(root, "import", str(busybox_tar), "tools:1", "-c", "ENV MODE=debug", "-c", "WORKDIR /tmp",
             "-c", 'ENTRYPOINT ["sh", "-c"]', "-c", 'CMD ["echo $MODE in $(pwd)"]')
    assert res.returncode == 0, res.stderr
    out = dy(root, "run", "--rm", "tools:1")
    assert out.stdout == "debug in /tmp\n"
    dy(root, "rmi", "tools:1")
    res = dy(root, "prune", "-a")
    assert res.returncode == 0 and "Deleted" in res.stdout
    # busybox is still tagged: its layer must survive the prune
    assert dy(root, "run", "--rm", "busybox:latest", "true").returncode == 0


def test_dockerfile_flag_and_target(root, ctx):
    (ctx / "build.Dockerfile").write_text(
        "FROM busybox:latest AS one\nRUN echo one > /which\n"
        "FROM busybox:latest AS two\nRUN echo two > /which\nCMD [\"cat\", \"/which\"]\n")
    res = dy(root, "build", "-f", str(ctx / "build.Dockerfile"), "--target", "one", "-t", "t:1", str(ctx))
    assert res.returncode == 0, res.stderr
    assert dy(root, "run", "--rm", "t:1", "cat", "/which").stdout == "one\n"
    res = dy(root, "build", "-f", str(ctx / "build.Dockerfile"), "--target", "three", str(ctx))
    assert res.returncode == 1 and "three" in res.stderr


def test_build_check_and_lint(root, ctx):
    (ctx / "Dockerfile").write_text("FROM busybox:latest as base\nCMD echo hi\n")
    res = dy(root, "build", "--check", str(ctx))
    assert res.returncode == 1
    assert "FromAsCasing" in res.stderr and "JSONArgsRecommended" in res.stderr
    assert dy(root, "images", "-q").stdout.count("\n") == 1          # nothing was built
    res = dy(root, "build", "-q", str(ctx))                            # warnings only: it builds
    assert res.returncode == 0 and res.stdout.startswith("sha256:")
    (ctx / "Dockerfile").write_text("# check=error=true\nFROM busybox:latest as base\nCMD echo hi\n")
    res = dy(root, "build", str(ctx))
    assert res.returncode == 1 and "build checks failed" in res.stderr
    res = dy(root, "lint", "--format", "json", str(ctx))
    assert res.returncode == 1 and '"FromAsCasing"' in res.stdout


def test_prune_cache_mounts(root, ctx):
    (ctx / "Dockerfile").write_text(
        "FROM busybox:latest\nRUN --mount=type=cache,target=/cache echo kept > /cache/f\n")
    assert dy(root, "build", "-q", str(ctx)).returncode == 0
    assert any((root / "cache-mounts").rglob("f"))
    res = dy(root, "prune", "--cache-mounts")
    assert res.returncode == 0 and "Cleared 1 cache mounts" in res.stdout
    assert not any((root / "cache-mounts").rglob("f"))


def test_created_column_reads_like_docker():
    from dockyard.api import age

    assert age("2023-11-14T22:13:20Z").endswith("years ago")          # SOURCE_DATE_EPOCH form
    assert age("2020-01-01T00:00:00.123456789Z").endswith("years ago")  # BuildKit's nanoseconds
    assert age("not a date") == ""


@pytest.mark.parametrize("limit", [30, 45, 200])
def test_help_lists_the_lazy_commands_with_their_own_summaries(limit):
    import click

    from dockyard.cli import main

    for name in main._LAZY:
        real = main._lazy_command(name).get_short_help_str(limit)
        assert click.Command(name, help=main._LAZY_HELP[name]).get_short_help_str(limit) == real, name


def test_help_lists_every_command_without_loading_them():
    code = ("import sys\nfrom dockyard.cli.main import cli\n"
            "try:\n    cli(['--help'], prog_name='dockyard')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('dockyard.cli.') "
            "and m not in ('dockyard.cli.main', 'dockyard.cli.common')), file=sys.stderr)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    listed = {line.split()[0] for line in res.stdout.split("Commands:", 1)[1].splitlines() if line.strip()}
    assert {"run", "ps", "push", "pull", "build", "fsck", "lint", "volume"} <= listed
    assert res.stderr.strip() == "[]"
    run = subprocess.run([sys.executable, "-m", "dockyard.cli.main", "run", "--help"], capture_output=True,
                         text=True, check=True)
    assert "--publish" in run.stdout

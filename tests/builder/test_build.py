"""End-to-end builds on real runc and overlayfs, checked through the store."""

from __future__ import annotations

import io
import json
import os
import tarfile
import textwrap
from pathlib import Path

import pytest
from support import needs_root
from support import Events, image_files, layer_names

from dockyard import api
from dockyard.errors import BuildError, DockyardError

pytestmark = needs_root()


def write(ctx: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))
    return ctx


def build(store, ctx, **kw):
    events = kw.pop("events", None) or Events()
    image = api.build(ctx, store=store, progress=events, **kw)
    return image, events


def run_output(store, image, cmd=None, **kw) -> str:
    from dockyard.containers import RunOptions, run

    out = store.root / "out.txt"
    with open(out, "wb") as f:
        _, code = run(store, image, RunOptions(command=cmd or [], **kw), stdout=f, stderr=f)
    text = out.read_text()
    assert code == 0, text
    return text


def test_single_stage_config_files_and_run(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": """
            FROM busybox:latest
            ENV A=1 B=$A
            ENV C=$A
            WORKDIR /app
            COPY hello.txt .
            RUN echo built > /app/built.txt && rm /bin/ls
            LABEL version="1.0" maintainer=me
            EXPOSE 8080 53/udp
            USER app
            CMD ["sh", "-c", "cat /app/hello.txt /app/built.txt; echo $C"]
        """,
        "hello.txt": "hello\n",
    })
    image, _ = build(store, ctx, tags=["demo:1"])
    cfg = image.config["config"]
    assert cfg["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                          "A=1", "B=", "C=1"]
    assert cfg["WorkingDir"] == "/app"
    assert cfg["User"] == "app"
    assert cfg["Labels"] == {"version": "1.0", "maintainer": "me"}
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert cfg["Cmd"] == ["sh", "-c", "cat /app/hello.txt /app/built.txt; echo $C"]
    assert api.get_image(store, "demo:1").id == image.id
    files = image_files(store, image, tmp_path / "unpacked")
    assert files["app/hello.txt"][:4] == ("file", "0o644", 0, 0)
    assert "bin/ls" not in files
    assert "app/built.txt" in files
    assert run_output(store, image) == "hello\nbuilt\n1\n"
    # one layer per RUN/COPY/WORKDIR on top of the base, history in order
    assert len(image.diff_ids) == 4
    created = [h.get("created_by", "") for h in image.config["history"]][1:]
    assert created[0] == "ENV A=1 B="
    assert created[2] == "WORKDIR /app"
    assert created[3] == "COPY hello.txt . # buildkit"
    assert created[4] == "RUN /bin/sh -c echo built > /app/built.txt && rm /bin/ls # buildkit"
    # the deletion is a whiteout in the RUN layer, and runtime mount stubs are left out
    names = layer_names(store, image.layer_digests[-1])
    assert "bin/.wh.ls" in names
    assert not any(n.rstrip("/") in ("proc", "sys", "dev", "etc/hosts", "etc/resolv.conf") for n in names)


def test_cache_hits_touch_and_explains_misses(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": """
            FROM busybox:latest
            COPY a.txt /a.txt
            RUN cat /a.txt > /b.txt
        """,
        "a.txt": "one\n",
    })
    first, ev1 = build(store, ctx)
    assert len(ev1.kinds("cached")) == 0
    second, ev2 = build(store, ctx)
    assert second.id == first.id          # a no-op rebuild gives the same image id
    assert len(ev2.kinds("cached")) == 2
    os.utime(ctx / "a.txt", (1, 1))           # touch alone keeps the cache
    _, ev3 = build(store, ctx)
    assert len(ev3.kinds("cached")) == 2
    (ctx / "a.txt").write_text("two\n")
    third, ev4 = build(store, ctx)
    assert len(ev4.kinds("cached")) == 0
    misses = [e.text for e in ev4.kinds("miss")]
    assert any("a.txt" in m for m in misses), misses
    assert third.diff_ids[-1] != first.diff_ids[-1]
    _, ev5 = build(store, ctx, no_cache=True)
    assert len(ev5.kinds("cached")) == 0


def test_build_arg_change_is_named_in_the_miss(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        ARG FLAVOUR=plain
        RUN echo $FLAVOUR > /flavour
    """})
    build(store, ctx)
    image, ev = build(store, ctx, build_args={"FLAVOUR": "spicy"})
    assert any("FLAVOUR" in e.text for e in ev.kinds("miss"))
    assert "spicy" in run_output(store, image, ["cat", "/flavour"])
    # ARG values are not kept in the image's environment
    assert not any(e.startswith("FLAVOUR=") for e in image.config["config"]["Env"])


def test_multi_stage_target_and_unneeded_stages(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        ARG BASE=busybox:latest
        FROM ${BASE} AS build
        RUN mkdir /out && echo artefact > /out/a && chown 1000:1000 /out/a

        FROM ${BASE} AS broken
        RUN exit 1

        FROM ${BASE}
        COPY --from=build /out/a /a
        COPY --from=0 /out /copied
        CMD ["cat", "/a"]
    """})
    image, _ = build(store, ctx)
    files = image_files(store, image, tmp_path / "u")
    assert files["a"][2:4] == (1000, 1000)        # --from keeps owners
    assert files["copied/a"][0] == "file"
    assert run_output(store, image) == "artefact\n"
    with pytest.raises(BuildError, match="did not complete successfully: exit code: 1"):
        build(store, ctx, target="broken")
    only_build, _ = build(store, ctx, target="build")
    assert "out/a" in image_files(store, only_build, tmp_path / "u2")


def test_run_failure_names_line_and_leaves_no_image(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        RUN echo about to fail && exit 3
    """})
    before = {i.id for i in store.images()}
    with pytest.raises(BuildError) as err:
        build(store, ctx, tags=["never:1"])
    msg = str(err.value)
    assert "Dockerfile:2" in msg and "exit code: 3" in msg and "about to fail" in msg
    assert {i.id for i in store.images()} == before
    assert list(store.blobs.ingest_dir.iterdir()) == []
    with pytest.raises(DockyardError):
        api.get_image(store, "never:1")


def test_missing_base_and_unknown_instruction_are_clear(store, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM nothere:1\nRUN true\n"})
    with pytest.raises(DockyardError, match=r"Dockerfile:1.*nothere"):
        build(store, ctx)
    write(ctx, {"Dockerfile": "FROM scratch\nFROBNICATE x\n"})
    with pytest.raises(DockyardError, match=r"Dockerfile:2.*(?i:frobnicate)"):
        build(store, ctx)


def test_whiteouts_and_opaque_directories(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        RUN mkdir -p /d/sub && touch /d/sub/x /d/y /keep /gone
        RUN rm -rf /d && mkdir /d && touch /d/new && rm /gone
    """})
    image, _ = build(store, ctx)
    names = layer_names(store, image.layer_digests[-1])
    assert "d/.wh..wh..opq" in names
    assert ".wh.gone" in names
    files = image_files(store, image, tmp_path / "u")
    assert "d/new" in files and "d/y" not in files and "keep" in files and "gone" not in files


def test_dockerignore_chown_by_name_and_add_archive(store, base_image, tmp_path):
    ctx = tmp_path / "ctx"
    write(ctx, {
        "Dockerfile": """
            FROM busybox:latest
            COPY --chown=app:staff . /src/
            ADD bundle.tar.gz /unpacked/
            COPY --chmod=600 keep.txt /secret.txt
        """,
        ".dockerignore": "*.log\nsecret/\n",
        "keep.txt": "k\n",
        "debug.log": "no\n",
        "secret/key": "no\n",
    })
    payload = tmp_path / "payload"
    (payload / "inner").mkdir(parents=True)
    (payload / "inner" / "f.txt").write_text("inside\n")
    with tarfile.open(ctx / "bundle.tar.gz", "w:gz") as t:
        t.add(payload / "inner", arcname="inner")
    os.symlink("keep.txt", ctx / "link")
    image, _ = build(store, ctx)
    files = image_files(store, image, tmp_path / "u")
    assert files["src/keep.txt"][2:4] == (1000, 50)
    assert "src/debug.log" not in files and "src/secret/key" not in files
    assert files["src/link"][0] == "symlink" and files["src/link"][5] == "keep.txt"
    assert files["unpacked/inner/f.txt"][0] == "file"
    assert files["secret.txt"][1] == "0o600"


def test_onbuild_triggers_run_in_child(store, base_image, tmp_path):
    parent = write(tmp_path / "parent", {"Dockerfile": """
        FROM busybox:latest
        ONBUILD RUN echo triggered > /onbuild.txt
    """})
    build(store, parent, tags=["parent:1"])
    child = write(tmp_path / "child", {"Dockerfile": "FROM parent:1\nCMD [\"cat\", \"/onbuild.txt\"]\n"})
    image, _ = build(store, child)
    assert run_output(store, image) == "triggered\n"
    assert image.config["config"].get("OnBuild") in (None, [])


def test_run_layer_without_changes_is_empty(store, base_image, tmp_path):
    # runc's /etc/hosts stub copies etc/ up; neither may reach the layer
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox:latest\nRUN true\n"})
    image, _ = build(store, ctx)
    assert layer_names(store, image.layer_digests[-1]) == []

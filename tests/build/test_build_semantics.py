"""Build semantics beyond the basics: ARG scoping, labels, FROM by digest,
parallel builds on one store."""

from __future__ import annotations

import subprocess
import sys
import os
from pathlib import Path

import pytest
from support import needs_root
from test_build import build, run_output, write

from dockyard import api

pytestmark = needs_root()


def test_meta_arg_invisible_until_redeclared(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        ARG VERSION=1.2
        FROM busybox:latest
        RUN echo "before:[$VERSION]" > /v
        ARG VERSION
        RUN echo "after:[$VERSION]" >> /v
    """})
    image, _ = build(store, ctx)
    assert run_output(store, image, ["cat", "/v"]) == "before:[]\nafter:[1.2]\n"
    image, _ = build(store, ctx, build_args={"VERSION": "2.0"})
    assert run_output(store, image, ["cat", "/v"]) == "before:[]\nafter:[2.0]\n"


def test_labels_inherited_and_overridden(store, base_image, tmp_path):
    parent = write(tmp_path / "p", {"Dockerfile": 'FROM busybox:latest\nLABEL a=1 b=2\n'})
    build(store, parent, tags=["labelled:1"])
    child = write(tmp_path / "c", {"Dockerfile": 'FROM labelled:1\nLABEL b=3 c=4\n'})
    image, _ = build(store, child, labels={"c": "cli"})
    assert image.config["config"]["Labels"] == {"a": "1", "b": "3", "c": "cli"}


def test_from_by_image_id_and_manifest_digest(store, base_image, tmp_path):
    for ref in (base_image.id, f"busybox@{base_image.manifest_digest}"):
        ctx = write(tmp_path / ref.replace(":", "_").replace("@", "_"), {
            "Dockerfile": f"FROM {ref}\nRUN echo ok > /ok\n"})
        image, _ = build(store, ctx)
        assert run_output(store, image, ["cat", "/ok"]) == "ok\n"


def test_entrypoint_clears_inherited_cmd(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest AS a
        CMD ["echo", "from a"]
        FROM a
        ENTRYPOINT ["echo", "ep"]
    """})
    image, _ = build(store, ctx)
    assert image.config["config"].get("Cmd") is None
    assert run_output(store, image) == "ep\n"


def test_copy_errors(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox:latest\nCOPY a.txt b.txt /dest\n",
                                   "a.txt": "a", "b.txt": "b"})
    with pytest.raises(Exception, match="destination must be a directory and end with a /"):
        build(store, ctx)
    write(ctx, {"Dockerfile": "FROM busybox:latest\nCOPY ../outside /x\n"})
    with pytest.raises(Exception, match="outside the build context"):
        build(store, ctx)


_PARALLEL = """
import sys
from dockyard import api
api.build(sys.argv[1], tags=[sys.argv[2]], store=sys.argv[3])
"""


def test_parallel_builds_share_one_store(store, base_image, tmp_path):
    procs = []
    for n in range(3):
        ctx = write(tmp_path / f"ctx{n}", {"Dockerfile": f"""
            FROM busybox:latest
            RUN echo shared > /shared
            RUN echo {n} > /n
        """})
        procs.append(subprocess.Popen([sys.executable, "-c", _PARALLEL, str(ctx), f"par:{n}", str(store.root)],
                                      stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    for n in range(3):
        image = api.get_image(store, f"par:{n}")
        assert run_output(store, image, ["cat", "/shared", "/n"]) == f"shared\n{n}\n"


def test_dockerfile_specific_ignore_file_wins(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "app.Dockerfile": "FROM busybox:latest\nCOPY . /src/\n",
        "app.Dockerfile.dockerignore": "b.txt\n",
        ".dockerignore": "a.txt\n",
        "a.txt": "a", "b.txt": "b",
    })
    image, _ = build(store, ctx, dockerfile=ctx / "app.Dockerfile")
    out = run_output(store, image, ["ls", "/src"])
    assert "a.txt" in out and "b.txt" not in out

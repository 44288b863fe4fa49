"""Differential tests: Docker (BuildKit) is the oracle.

Each folder in corpus/ is a build context. It is built by Docker and by
dockyard; dockyard's image is saved and loaded into Docker; then the image
configs, the full file listings (type, mode, owner, size, content, link
target) and the `run` output must agree. What is compared and what is not
(creation times, mtimes, runtime mount stubs Docker 20.10 leaves in RUN
layers) is spelled out below.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from support import needs_root
from support import tree_listing

from dockyard import api
from dockyard.layer import apply_layer

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "Dockerfile").exists())
CONFIG_KEYS = ["User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
               "Labels", "StopSignal", "Healthcheck", "OnBuild", "Shell"]

pytestmark = [pytest.mark.slow, needs_root()]


def sh(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kw)


def docker_files(docker: str, image: str, dest: Path) -> dict:
    """The flattened filesystem of a Docker image, via `docker save`."""
    raw = subprocess.run([docker, "save", image], capture_output=True, check=True, timeout=300).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        manifest = json.load(t.extractfile("manifest.json"))
        dest.mkdir(parents=True)
        for layer in manifest[0]["Layers"]:
            apply_layer(t.extractfile(layer), dest)
    return tree_listing(dest, skip=("dev", "proc", "sys"))


def docker_config(docker: str, image: str) -> dict:
    info = json.loads(sh(docker, "image", "inspect", image).stdout)[0]
    cfg = info["Config"]
    return {k: cfg.get(k) or None for k in CONFIG_KEYS} | {"Author": info.get("Author") or None}


def history(docker: str, image: str) -> list[tuple[str, bool]]:
    raw = subprocess.run([docker, "save", image], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        manifest = json.load(t.extractfile("manifest.json"))
        cfg = json.load(t.extractfile(manifest[0]["Config"]))
    return [(h.get("created_by", ""), bool(h.get("empty_layer"))) for h in cfg.get("history", [])]


def _strip_stub_dirs(files: dict) -> dict:
    # Docker 20.10 (BuildKit 0.8) keeps empty mount-point dirs runc created;
    # newer BuildKit, and dockyard, leave them out of RUN layers.
    return {k: v for k, v in files.items() if not (k in ("etc", "dev", "proc", "sys") and v[0] == "dir")}


@pytest.mark.parametrize("case", CASES)
def test_same_as_docker(case, docker, store, base_image, tmp_path):
    ctx = tmp_path / "ctx"
    shutil.copytree(CORPUS / case, ctx, symlinks=True)
    run_id = os.getpid()   # two suites sharing one dockerd must not collide
    oracle = f"dockyard-diff-{case}:docker-{run_id}"
    ours = f"dockyard-diff-{case}:dockyard-{run_id}"
    built = sh(docker, "build", "-q", "-t", oracle, str(ctx), env={"DOCKER_BUILDKIT": "1", "PATH": "/usr/bin:/bin"})
    assert built.returncode == 0, built.stderr
    try:
        image = api.build(ctx, tags=[ours], store=store)
        archive = tmp_path / "ours.tar"
        api.save([ours], archive, store=store)
        loaded = sh(docker, "load", "-i", str(archive))
        assert loaded.returncode == 0, loaded.stderr

        assert docker_config(docker, ours) == docker_config(docker, oracle)
        assert history(docker, ours)[1:] == history(docker, oracle)[1:]

        theirs_files = _strip_stub_dirs(docker_files(docker, oracle, tmp_path / "theirs"))
        our_files = _strip_stub_dirs(docker_files(docker, ours, tmp_path / "ours"))
        missing = sorted(set(theirs_files) - set(our_files))
        extra = sorted(set(our_files) - set(theirs_files))
        assert (missing, extra) == ([], [])
        differ = {k: (our_files[k], theirs_files[k]) for k in theirs_files if our_files[k] != theirs_files[k]}
        assert differ == {}

        run_theirs = sh(docker, "run", "--rm", oracle)
        run_ours = sh(docker, "run", "--rm", ours)
        assert (run_ours.returncode, run_ours.stdout) == (run_theirs.returncode, run_theirs.stdout)
        assert image.id
    finally:
        sh(docker, "rmi", "-f", oracle, ours)

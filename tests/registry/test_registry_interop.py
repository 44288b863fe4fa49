"""Interop with the other tools, through a real registry: Docker pulls and
runs what dockyard pushed, dockyard pulls and runs what Docker pushed, and
skopeo reads what dockyard pushed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from dockyard.reference import Reference
from dockyard.registry import pull, push

pytestmark = pytest.mark.slow


def run(*argv, check=True):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=check)


def test_docker_pulls_and_runs_what_dockyard_pushed(docker, plain_registry, store, base_image, options,
                                                    unique):
    name = f"{plain_registry.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    digest = push(store, name, options=options)
    try:
        pulled = run(docker, "pull", name)
        assert digest in pulled.stdout
        out = run(docker, "run", "--rm", name, "/bin/echo", "pushed by dockyard")
        assert out.stdout.strip() == "pushed by dockyard"
        image_id = run(docker, "image", "inspect", "--format", "{{.Id}}", name).stdout.strip()
        assert image_id == base_image.id
    finally:
        run(docker, "rmi", "-f", name, check=False)


def test_dockyard_pulls_and_runs_what_docker_pushed(docker, plain_registry, fresh_store, options, unique,
                                                    tmp_path):
    name = f"{plain_registry.host}/{unique}:docker"
    run(docker, "tag", "busybox:latest", name)
    try:
        pushed = run(docker, "push", name)
        image = pull(fresh_store, name, options=options)
        assert image.id == run(docker, "image", "inspect", "--format", "{{.Id}}", name).stdout.strip()
        assert f"digest: {image_digest(fresh_store, image)}" in pushed.stdout
    finally:
        run(docker, "rmi", name, check=False)
    if os.geteuid() != 0 or not (shutil.which("runc") or os.path.exists("/usr/sbin/runc")):
        pytest.skip("running containers needs root and runc")
    from dockyard.containers import RunOptions
    from dockyard.containers import run as run_container

    out = tmp_path / "out"
    with open(out, "wb") as stdout:
        _, code = run_container(fresh_store, image, RunOptions(command=["/bin/echo", "pushed by docker"]),
                             stdout=stdout, stderr=stdout)
    assert code == 0
    assert out.read_text().strip() == "pushed by docker"


def image_digest(store, image) -> str:
    from dockyard.registry import repo_digests

    return repo_digests(store, image.id)[0].split("@", 1)[1]


def test_skopeo_reads_what_dockyard_pushed(plain_registry, store, base_image, options, unique):
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.skip("skopeo is not installed")
    name = f"{plain_registry.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    digest = push(store, name, options=options)
    info = json.loads(run(skopeo, "inspect", "--tls-verify=false", f"docker://{name}").stdout)
    assert info["Digest"] == digest
    assert info["Architecture"] == base_image.config["architecture"]
    assert len(info["Layers"]) == 1
    config = json.loads(run(skopeo, "inspect", "--config", "--tls-verify=false", f"docker://{name}").stdout)
    assert config["rootfs"]["diff_ids"] == base_image.diff_ids

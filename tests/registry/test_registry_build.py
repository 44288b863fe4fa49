"""The build talks to registries: FROM of a missing image pulls it, --pull
re-resolves, --push ships the result."""

from __future__ import annotations

import json
import subprocess
import sys

from support import needs_root

from dockyard import api
from dockyard.store import Store

pytestmark = needs_root()


def _write_ctx(tmp_path, base: str):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base}\nRUN echo pulled-base > /marker\nCMD [\"cat\", \"/marker\"]\n")
    return ctx


def test_from_a_missing_image_pulls_it_and_push_ships_the_result(plain_registry, base_image, store, tmp_path):
    base_ref = f"{plain_registry.host}/lib/busybox:1"
    api.tag("busybox:latest", base_ref, store=store)
    api.push(base_ref, store=store)

    fresh = Store(tmp_path / "fresh")                       # nothing local: FROM must pull
    ctx = _write_ctx(tmp_path, base_ref)
    target = f"{plain_registry.host}/team/app:1"
    image = api.build(ctx, store=fresh, tags=[target], push=True)
    assert image.diff_ids[0] == base_image.diff_ids[0]

    other = Store(tmp_path / "other")                       # what was pushed pulls back and runs
    pulled = api.pull(target, store=other)
    assert pulled.id == image.id
    from dockyard.containers import RunOptions, run

    out = tmp_path / "out"
    with open(out, "wb") as f:
        assert run(other, pulled, RunOptions(), stdout=f, stderr=f)[1] == 0
    assert out.read_text() == "pulled-base\n"


def test_build_pull_flag_re_resolves_the_base(plain_registry, base_image, store, tmp_path):
    base_ref = f"{plain_registry.host}/lib/moving:1"
    api.tag("busybox:latest", base_ref, store=store)
    api.push(base_ref, store=store)
    builder_store = Store(tmp_path / "b")
    ctx = _write_ctx(tmp_path, base_ref)
    first = api.build(ctx, store=builder_store)
    # the tag moves in the registry: a new base with one more layer
    ctx2 = tmp_path / "ctx2"
    ctx2.mkdir()
    (ctx2 / "Dockerfile").write_text("FROM busybox:latest\nRUN echo v2 > /version\n")
    api.build(ctx2, store=store, tags=[base_ref], push=True)
    again = api.build(ctx, store=builder_store)            # local copy still used
    assert again.diff_ids == first.diff_ids
    pulled = api.build(ctx, store=builder_store, pull=True)
    assert len(pulled.diff_ids) == len(first.diff_ids) + 1


def test_unreachable_registry_is_a_clear_build_error(store, tmp_path):
    ctx = _write_ctx(tmp_path, "127.0.0.1:9/nothing/here:1")
    res = subprocess.run([sys.executable, "-m", "dockyard.cli.main", "--root", str(tmp_path / "s"),
                          "build", str(ctx)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "Dockerfile:1" in res.stderr and "127.0.0.1:9" in res.stderr


def test_build_sbom_is_attached_to_the_pushed_image(plain_registry, base_image, store, tmp_path):
    from dockyard.reference import Reference
    from dockyard.registry import RegistryOptions
    from dockyard.registry.referrers import referrers_tag
    from dockyard.registry.remote import open_repository

    ctx = tmp_path / "ctx"
    (ctx / "dpkg").mkdir(parents=True)
    (ctx / "dpkg" / "status").write_text(
        "Package: libdemo1\nStatus: install ok installed\nVersion: 1.2-3\nArchitecture: amd64\n\n")
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nCOPY dpkg/status /var/lib/dpkg/status\n")
    name = f"{plain_registry.host}/sbom/app:1"
    api.build(ctx, store=store, tags=[name], push=True, sbom="spdx-json")
    repo = open_repository(Reference.parse(name), RegistryOptions())
    try:
        digest = str(repo.head_manifest("1"))
        index = json.loads(repo.get_manifest(referrers_tag(digest)).data)
        (entry,) = index["manifests"]
        assert entry["artifactType"] == "application/spdx+json"
        artifact = json.loads(repo.get_manifest(entry["digest"]).data)
        assert artifact["subject"]["digest"] == digest
        (layer,) = artifact["layers"]
        sbom = json.loads(repo.read_blob(layer["digest"], layer["size"]))
        assert "libdemo1" in {p["name"] for p in sbom["packages"]}
    finally:
        repo.registry.close()
    with __import__("pytest").raises(Exception, match="--push"):
        api.build(ctx, store=store, tags=[name], sbom="spdx-json")


def test_registry_cache_shared_between_two_empty_stores(plain_registry, base_image, store, tmp_path):
    base_ref = f"{plain_registry.host}/lib/cachebase:1"
    api.tag("busybox:latest", base_ref, store=store)
    api.push(base_ref, store=store)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {base_ref} AS build\nRUN echo built > /out && echo scratch > /tmp/work\n"
        f"FROM {base_ref}\nCOPY --from=build /out /out\nRUN cat /out > /final\n")
    cache_ref = f"{plain_registry.host}/cache/app:buildcache"
    first = api.build(ctx, store=Store(tmp_path / "ci-1"), cache_to=[f"type=registry,ref={cache_ref},mode=max"])

    from support import Events

    events = Events()
    second_store = Store(tmp_path / "ci-2")
    image = api.build(ctx, store=second_store, cache_from=[f"type=registry,ref={cache_ref}"], progress=events)
    assert image.diff_ids == first.diff_ids
    assert len(events.kinds("cached")) == 3 and not events.kinds("output")
    assert all(second_store.blobs.has(d) for d in first.diff_ids)
    # the build stage's own layer was reused by key and never downloaded
    stage_layers = {json.loads(v)["diff_id"] for (v,) in
                    Store(tmp_path / "ci-1").db.execute("SELECT value FROM cache").fetchall()} - set(first.diff_ids)
    assert stage_layers and not any(second_store.blobs.has(d) for d in stage_layers)

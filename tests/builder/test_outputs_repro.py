"""Outputs, metadata, annotations, platform ARGs and reproducible builds."""

from __future__ import annotations

import json
import tarfile

from support import needs_root
from test_build import build, run_output, write

from dockyard import api
from dockyard.builder.config import host_arch
from dockyard.store import Store

pytestmark = needs_root()


def test_outputs_local_tar_oci_docker_and_metadata(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox:latest\nRUN echo out > /result.txt\n"})
    meta = tmp_path / "meta.json"
    image = api.build(ctx, store=store, tags=["out:1"], metadata_file=str(meta),
                      annotations={"org.opencontainers.image.source": "https://example.invalid/x"},
                      outputs=[f"type=local,dest={tmp_path / 'local'}", f"type=tar,dest={tmp_path / 'fs.tar'}",
                               f"type=oci,dest={tmp_path / 'oci.tar'}", f"type=docker,dest={tmp_path / 'd.tar'}"])
    assert (tmp_path / "local" / "result.txt").read_text() == "out\n"
    assert (tmp_path / "local" / "bin" / "busybox").exists()
    with tarfile.open(tmp_path / "fs.tar") as t:
        assert "result.txt" in t.getnames()
    with tarfile.open(tmp_path / "oci.tar") as t:
        assert "index.json" in t.getnames()
    with tarfile.open(tmp_path / "d.tar") as t:
        assert json.load(t.extractfile("manifest.json"))[0]["RepoTags"] == ["out:1"]
    data = json.loads(meta.read_text())
    assert data["containerimage.config.digest"] == image.id
    assert data["containerimage.digest"] == image.manifest_digest
    assert image.manifest["annotations"] == {"org.opencontainers.image.source": "https://example.invalid/x"}


def test_platform_args_predefined(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        ARG TARGETPLATFORM
        ARG TARGETARCH
        ARG BUILDOS
        RUN echo "$TARGETPLATFORM $TARGETARCH $BUILDOS" > /p
    """})
    image, _ = build(store, ctx)
    assert run_output(store, image, ["cat", "/p"]) == f"linux/{host_arch()} {host_arch()} linux\n"


def test_proxy_args_reach_run_but_not_history_or_cache(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox:latest\nRUN echo \"[$HTTP_PROXY]\" > /proxy\n"})
    first, _ = build(store, ctx, build_args={"HTTP_PROXY": "http://proxy.invalid:3128"})
    assert run_output(store, first, ["cat", "/proxy"]) == "[http://proxy.invalid:3128]\n"
    assert "proxy.invalid" not in json.dumps(first.config)
    _, events = build(store, ctx, build_args={"HTTP_PROXY": "http://other.invalid:3128"})
    assert len(events.kinds("cached")) == 1


def test_source_date_epoch_gives_identical_images_on_empty_stores(tmp_path, busybox_tar, monkeypatch):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        WORKDIR /app
        COPY f.txt .
        RUN echo built > /app/built && mkdir -p /app/d
        CMD ["cat", "/app/built"]
    """, "f.txt": "file\n"})
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    ids = []
    seed = Store(tmp_path / "seed")
    api.import_image(busybox_tar, "busybox:latest", store=seed)
    api.save(["busybox:latest"], tmp_path / "base.tar", store=seed)
    for n in range(2):
        st = Store(tmp_path / f"store{n}")
        api.load(tmp_path / "base.tar", store=st)
        image = api.build(ctx, store=st, rewrite_timestamp=True)
        ids.append((image.id, image.manifest_digest))
        assert image.config["created"] == "2023-11-14T22:13:20Z"
        assert all(h["created"] == "2023-11-14T22:13:20Z" for h in image.config["history"][1:])
        with st.blobs.open(image.layer_digests[-1]) as f, tarfile.open(fileobj=f) as t:
            assert all(m.mtime <= 1700000000 for m in t.getmembers())
    assert ids[0] == ids[1]

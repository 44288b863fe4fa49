"""Images that containers use keep their content through rmi and prune."""

from __future__ import annotations

import pytest
from support import needs_root

from dockyard import api
from dockyard.errors import StoreError

pytestmark = needs_root()


def test_rmi_and_prune_spare_images_of_containers(store, base_image, tmp_path):
    from dockyard.container import RunOptions, run

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nRUN echo kept > /kept\n")
    image = api.build(ctx, store=store, tags=["used:1", "used:2"])
    with open(tmp_path / "out", "wb") as f:
        _, code = run(store, image, RunOptions(command=["true"], network="none"), stdout=f, stderr=f)
    assert code == 0
    assert api.rmi(["used:2"], store=store) == ["Untagged: used:2"]
    assert api.rmi(["used:1"], store=store) == ["Untagged: used:1"]      # the image stays
    with pytest.raises(StoreError, match="being used by a container"):
        api.rmi([image.id], store=store)
    api.prune(store=store)
    assert all(store.blobs.has(d) for d in image.diff_ids)

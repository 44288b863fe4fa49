"""--cache-to / --cache-from: a build on an empty store reuses every
unchanged step without running it or fetching layers it does not need."""

from __future__ import annotations

from support import needs_root
from test_build import build, run_output, write

from dockyard import api
from dockyard.store import Store

pytestmark = needs_root()

DOCKERFILE = """
    FROM busybox:latest AS build
    RUN echo intermediate > /big && echo artefact > /artefact
    FROM busybox:latest
    COPY --from=build /artefact /artefact
    COPY app.txt /app.txt
    RUN cat /artefact /app.txt > /combined
    CMD ["cat", "/combined"]
"""


def _stores(tmp_path, busybox_tar):
    seed = Store(tmp_path / "seed")
    api.import_image(busybox_tar, "busybox:latest", store=seed)
    api.save(["busybox:latest"], tmp_path / "base.tar", store=seed)
    a, b = Store(tmp_path / "a"), Store(tmp_path / "b")
    api.load(tmp_path / "base.tar", store=a)
    api.load(tmp_path / "base.tar", store=b)
    return a, b


def test_local_cache_max_reuses_every_step_and_fetches_only_needed_layers(tmp_path, busybox_tar):
    a, b = _stores(tmp_path, busybox_tar)
    ctx = write(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "app.txt": "app\n"})
    cache = tmp_path / "cache"
    first = api.build(ctx, store=a, cache_to=[f"type=local,dest={cache},mode=max"])
    stage_run_layer = [r for r in a.db.execute("SELECT value FROM cache").fetchall()
                       if __import__("json").loads(r[0])["diff_id"] not in first.diff_ids]
    assert len(stage_run_layer) == 1
    stage_diff = __import__("json").loads(stage_run_layer[0][0])["diff_id"]

    image, events = build(b, ctx, cache_from=[f"type=local,src={cache}"])
    assert len(events.kinds("cached")) == 4           # every layer step, RUNs included
    assert not [e for e in events.kinds("output")]     # nothing ran
    assert image.diff_ids == first.diff_ids
    assert run_output(b, image) == "artefact\napp\n"
    assert not b.blobs.has(stage_diff)                 # the build stage's layer was never fetched

    (ctx / "app.txt").write_text("changed\n")
    changed, events = build(b, ctx, cache_from=[f"type=local,src={cache}"])
    assert len(events.kinds("cached")) == 2            # only the steps after the change re-run
    assert run_output(b, changed) == "artefact\nchanged\n"


def test_min_mode_leaves_out_intermediate_stages(tmp_path, busybox_tar):
    a, b = _stores(tmp_path, busybox_tar)
    ctx = write(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "app.txt": "app\n"})
    cache = tmp_path / "cache"
    api.build(ctx, store=a, cache_to=[f"type=local,dest={cache}"])
    _, events = build(b, ctx, cache_from=[f"type=local,src={cache}"])
    # the build stage's RUN is not in a min cache, so it runs; COPY --from then
    # matches by content and everything after it is reused
    assert len(events.kinds("cached")) == 3

"""Pushing or pulling again when nothing changed asks one question (HEAD the
tag) and sends nothing else; when the tag moved, the usual path runs."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from dockyard.reference import Reference
from dockyard.registry import inspect_manifest, login, pull, push
from dockyard.registry import progress as ev
from dockyard.registry.http_transport import HttpTransport
from dockyard.registry.records import known_scheme, remember_scheme
from dockyard.registry.transport import Request, Response

USER, PASSWORD = "alice", "wonderland"  # the token registry's user (conftest)


class Recording:
    """The real transport, noting each request the registry answered (the
    https try on a plain-HTTP loopback registry gets no answer)."""

    def __init__(self, options):
        self.inner = HttpTransport(options.tls_for)
        self.seen: list[tuple[str, str]] = []
        self.schemes: list[str] = []  # of every try, answered or not

    def handle(self, request: Request) -> Response:
        self.schemes.append(urlsplit(request.url).scheme)
        response = self.inner.handle(request)
        self.seen.append((request.method, urlsplit(request.url).path))
        return response

    def close(self) -> None:
        self.inner.close()


def actions(events, kind):
    return [e for e in events if e.action == kind]


def relabelled(store, image, label: str):
    """Another image with the same layers: only its config differs."""
    config = json.loads(image.config_bytes)
    config.setdefault("config", {}).setdefault("Labels", {})["variant"] = label
    return store.put_image(json.dumps(config).encode())


def test_push_again_sends_one_head(plain_registry, store, base_image, options, unique):
    name = f"{plain_registry.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    digest = push(store, name, options=options)

    recording, events = Recording(options), []
    assert push(store, name, progress=events.append, options=options, transport=recording) == digest
    assert recording.seen == [("HEAD", f"/v2/{unique}/manifests/1")]
    assert len(actions(events, ev.LAYER_EXISTS)) == len(base_image.diff_ids)
    assert actions(events, ev.DIGEST)[0].detail.startswith(f"1: digest: {digest} size: ")
    recording.close()


def test_push_after_the_tag_moved_points_it_back(plain_registry, store, base_image, options, unique):
    name = f"{plain_registry.host}/{unique}:1"
    canonical = str(Reference.parse(name))
    other = relabelled(store, base_image, "other")
    store.tag(base_image.id, canonical)
    first = push(store, name, options=options)
    store.tag(other.id, canonical)
    push(store, name, options=options)
    assert inspect_manifest(name, options=options)["config"]["digest"] == other.id

    store.tag(base_image.id, canonical)
    assert push(store, name, options=options) == first
    assert inspect_manifest(name, options=options)["config"]["digest"] == base_image.id


def test_pull_again_sends_one_head(plain_registry, store, base_image, fresh_store, options, unique):
    name = f"{plain_registry.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    digest = push(store, name, options=options)
    pull(fresh_store, name, options=options)

    recording, events = Recording(options), []
    image = pull(fresh_store, name, progress=events.append, options=options, transport=recording)
    assert image.id == base_image.id
    assert recording.seen == [("HEAD", f"/v2/{unique}/manifests/1")]
    assert actions(events, ev.ALREADY_EXISTS) and not actions(events, ev.DOWNLOADING)
    assert actions(events, ev.DIGEST)[0].detail == f"Digest: {digest}"
    assert "Image is up to date" in actions(events, ev.STATUS)[-1].detail
    recording.close()


def test_pull_after_the_tag_moved_fetches_the_new_image(plain_registry, store, base_image, fresh_store,
                                                         options, unique):
    name = f"{plain_registry.host}/{unique}:1"
    canonical = str(Reference.parse(name))
    store.tag(base_image.id, canonical)
    push(store, name, options=options)
    assert pull(fresh_store, name, options=options).id == base_image.id

    other = relabelled(store, base_image, "moved")
    store.tag(other.id, canonical)
    push(store, name, options=options)
    events: list[ev.Event] = []
    assert pull(fresh_store, name, progress=events.append, options=options).id == other.id
    assert fresh_store.lookup(name, canonical).id == other.id
    assert "Downloaded newer image" in actions(events, ev.STATUS)[-1].detail


def test_pull_again_with_a_missing_layer_fetches_it(plain_registry, store, base_image, fresh_store,
                                                   options, unique):
    name = f"{plain_registry.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    push(store, name, options=options)
    image = pull(fresh_store, name, options=options)
    fresh_store.blobs.path(image.diff_ids[0]).unlink()

    events: list[ev.Event] = []
    pull(fresh_store, name, progress=events.append, options=options)
    assert actions(events, ev.PULL_COMPLETE)
    assert fresh_store.blobs.has(image.diff_ids[0])


def test_noop_push_and_pull_authenticate_with_tokens(token_registry, store, base_image, fresh_store,
                                                      options, unique):
    host = token_registry.host
    login(host, USER, PASSWORD, options=options)
    name = f"{host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    digest = push(store, name, options=options)
    pull(fresh_store, name, options=options)

    recording = Recording(options)
    assert push(store, name, options=options, transport=recording) == digest
    # the HEAD, and (when the token for this scope is not cached yet) the 401 dance
    assert recording.seen[-1] == ("HEAD", f"/v2/{unique}/manifests/1")
    assert {m for m, _ in recording.seen} <= {"HEAD", "GET"}
    recording.seen.clear()
    assert pull(fresh_store, name, options=options, transport=recording).id == base_image.id
    assert recording.seen[-1] == ("HEAD", f"/v2/{unique}/manifests/1")
    assert {m for m, _ in recording.seen} <= {"HEAD", "GET"}
    recording.close()


def test_a_plain_http_registry_is_tried_on_http_first_next_time(plain_registry, store, base_image,
                                                                options, unique):
    name = f"{plain_registry.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    first = Recording(options)
    push(store, name, options=options, transport=first)
    assert first.schemes[:2] == ["https", "http"]  # as Docker: TLS first on an insecure registry
    assert known_scheme(store, plain_registry.host) == "http"

    again = Recording(options)
    push(store, name, options=options, transport=again)
    assert again.schemes == ["http"]
    first.close()
    again.close()


def test_a_registry_that_moved_to_tls_is_found_again(tls_registry, store, base_image, fresh_store,
                                                     options, unique):
    name = f"{tls_registry.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    remember_scheme(store, tls_registry.host, "http")
    push(store, name, options=options)  # insecure (loopback): TLS without verification
    assert known_scheme(store, tls_registry.host) == "https"
    remember_scheme(fresh_store, tls_registry.host, "http")
    assert pull(fresh_store, name, options=options).id == base_image.id

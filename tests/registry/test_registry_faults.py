"""Push and pull through a proxy that drops connections mid-blob, resets
them, and answers 500 and 429 once: both still succeed. When a fault does
not go away, the error names the registry, the repository and the status."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dockyard.reference import Reference
from dockyard.registry import RegistryHTTPError, TransportError, pull, push


def test_push_and_pull_survive_faults(fault_proxy, store, base_image, fresh_store, options, unique):
    name = f"{fault_proxy.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    fault_proxy.add("HEAD", r"/blobs/sha256:", "500")
    fault_proxy.add("POST", r"/blobs/uploads/$", "429")
    fault_proxy.add("PUT", r"/blobs/uploads/", "reset")
    fault_proxy.add("PUT", r"/manifests/1$", "500")
    digest = push(store, name, options=options)
    assert {kind for *_, kind, _ in fault_proxy.injected()} == {"500", "429", "reset"}

    fault_proxy.log.clear()
    fault_proxy.add("GET", r"/manifests/1$", "500")
    fault_proxy.add("GET", r"/blobs/sha256:" + base_image.id.split(":")[1], "429")
    fault_proxy.add("GET", r"/blobs/sha256:(?!" + base_image.id.split(":")[1] + ")", "drop")
    image = pull(fresh_store, name, options=options)
    assert image.id == base_image.id
    assert fresh_store.lookup(name, str(Reference.parse(name))).id == image.id
    assert {kind for *_, kind, _ in fault_proxy.injected()} == {"500", "429", "drop"}
    # the dropped download resumed where it stopped
    assert any(rng.startswith("bytes=") and rng != "bytes=0-" for *_, rng in fault_proxy.log)
    assert digest


def test_chunked_push_survives_a_reset(fault_proxy, store, base_image, fresh_store, options, unique):
    chunky = replace(options, monolithic_max=1, chunk_size=256 << 10)
    name = f"{fault_proxy.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    fault_proxy.add("PATCH", r"/blobs/uploads/", "reset")
    push(store, name, options=chunky)
    assert pull(fresh_store, name, options=options).id == base_image.id


def test_persistent_500_names_registry_repository_and_status(fault_proxy, fresh_store, options, unique):
    fault_proxy.add("GET", r"/manifests/", "500", times=100)
    with pytest.raises(RegistryHTTPError) as info:
        pull(fresh_store, f"{fault_proxy.host}/{unique}:1", options=options)
    text = str(info.value)
    assert f"registry {fault_proxy.host}" in text
    assert f"repository {unique}" in text
    assert "HTTP 500" in text and f"after {options.retry.attempts} tries" in text
    assert len(fault_proxy.injected()) == options.retry.attempts
    assert "\n" not in text


def test_persistent_resets_name_registry_and_repository(fault_proxy, fresh_store, options, unique):
    fault_proxy.add("GET", r"/manifests/", "reset", times=100)
    with pytest.raises(TransportError) as info:
        pull(fresh_store, f"{fault_proxy.host}/{unique}:1", options=options)
    text = str(info.value)
    assert fault_proxy.host in text and unique in text and "tries" in text


def test_429_honours_retry_after(fault_proxy, store, base_image, options, unique):
    name = f"{fault_proxy.host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    fault_proxy.add("PUT", r"/manifests/", "429", times=2)
    push(store, name, options=options)
    assert len(fault_proxy.injected()) == 2

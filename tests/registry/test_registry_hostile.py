"""A registry that lies: truncated bodies, wrong sizes, another blob than the
one asked for, a manifest that is not the digest it claims. Each is detected,
named, and leaves nothing of the bad content in the store; once the registry
behaves again, the same pull works. And a push that was interrupted uploads,
when run again, only the blobs that had not arrived.

Images are put on the registry with the client's own upload (no dockyard
push), so a test can make manifests and configs that dockyard never would.
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from dockyard.image import Digest, mediatypes
from dockyard.reference import Reference
from dockyard.registry import DigestMismatch, TransportError, pull, push
from dockyard.registry import progress as ev
from dockyard.registry.client import Registry


def layer_tar(name: str, content: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(content), 0
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def put_image(host: str, path: str, tag: str, layers: list[bytes], *, options,
              diff_ids: list[str] | None = None, sizes: list[int] | None = None,
              config_extra: dict | None = None) -> dict:
    """Upload layers (uncompressed) and a config, then a manifest under `tag`.

    `diff_ids` and `sizes` override what the config and manifest say."""
    registry = Registry(host, options=options)
    repo = registry.repository(path, push=True)
    digests = [str(Digest.of_bytes(data)) for data in layers]
    config = {"architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": diff_ids or digests},
              "config": {}, **(config_extra or {})}
    config_bytes = json.dumps(config).encode()
    for data in [*layers, config_bytes]:
        digest = str(Digest.of_bytes(data))
        if repo.blob_size(digest) is None:
            repo.upload_blob(digest, len(data), lambda off, n, d=data: [d[off:off + n]])
    manifest = {
        "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": str(Digest.of_bytes(config_bytes)),
                   "size": len(config_bytes)},
        "layers": [{"mediaType": mediatypes.OCI_LAYER, "digest": d, "size": s}
                   for d, s in zip(digests, sizes or [len(x) for x in layers])],
    }
    data = json.dumps(manifest).encode()
    manifest_digest = str(repo.put_manifest(tag, data, mediatypes.OCI_MANIFEST))
    registry.close()
    return {"layers": digests, "config": str(Digest.of_bytes(config_bytes)), "manifest": manifest_digest,
            "sizes": [len(x) for x in layers]}


@pytest.fixture
def served(plain_registry, fault_proxy, options, unique):
    """Two images of two same-sized layers each, on the registry behind the proxy."""
    one = put_image(plain_registry.host, unique, "1",
                    [layer_tar("a", b"A" * 5000), layer_tar("b", b"B" * 5000)], options=options)
    two = put_image(plain_registry.host, unique, "2",
                    [layer_tar("c", b"C" * 5000), layer_tar("d", b"D" * 5000)], options=options,
                    config_extra={"author": "someone else"})
    return {"one": one, "two": two, "name": f"{fault_proxy.host}/{unique}", "path": unique}


def assert_nothing_stored(store, *bad: str) -> None:
    assert store.images() == []
    for digest in bad:
        assert not store.blobs.has(digest), f"{digest} reached the store"
    assert not [p for p in store.tmp_dir.iterdir() if p.name.startswith("pull-")]


def clean_pull_works(fault_proxy, store, served, options) -> None:
    fault_proxy.faults.clear()
    image = pull(store, served["name"] + ":1", options=options)
    assert image.diff_ids == served["one"]["layers"]


def test_body_cut_short_but_framed_as_complete(fault_proxy, fresh_store, served, options):
    bad = served["one"]["layers"][1]
    fault_proxy.add("GET", "/blobs/" + bad, "short", times=100)
    with pytest.raises(DigestMismatch, match=r"got \d+ bytes, expected \d+") as info:
        pull(fresh_store, served["name"] + ":1", options=options)
    assert bad in str(info.value) and served["path"] in str(info.value)
    assert_nothing_stored(fresh_store, bad)
    clean_pull_works(fault_proxy, fresh_store, served, options)


def test_body_longer_than_the_descriptor(fault_proxy, fresh_store, served, options):
    bad = served["one"]["layers"][0]
    fault_proxy.add("GET", "/blobs/" + bad, "long", times=100, arg="trailing garbage")
    with pytest.raises(DigestMismatch, match="more than the 10240 bytes announced"):
        pull(fresh_store, served["name"] + ":1", options=options)
    assert_nothing_stored(fresh_store, bad)
    clean_pull_works(fault_proxy, fresh_store, served, options)


def test_connection_cut_every_time(fault_proxy, fresh_store, served, options):
    bad = served["one"]["layers"][0]
    fault_proxy.add("GET", "/blobs/" + bad, "drop", times=100)
    with pytest.raises(TransportError, match="tries"):
        pull(fresh_store, served["name"] + ":1", options=options)
    assert_nothing_stored(fresh_store, bad)
    clean_pull_works(fault_proxy, fresh_store, served, options)


def test_another_blob_than_the_one_asked_for(fault_proxy, fresh_store, served, options):
    wanted, sent = served["one"]["layers"][1], served["two"]["layers"][0]
    fault_proxy.add("GET", "/blobs/" + wanted, "substitute", times=100,
                    arg=f"/v2/{served['path']}/blobs/{sent}")
    with pytest.raises(DigestMismatch, match=f"content has digest {sent}, expected {wanted}"):
        pull(fresh_store, served["name"] + ":1", options=options)
    assert_nothing_stored(fresh_store, wanted, sent)
    clean_pull_works(fault_proxy, fresh_store, served, options)


def test_another_config_than_the_one_asked_for(fault_proxy, fresh_store, served, options):
    wanted, sent = served["one"]["config"], served["two"]["config"]
    fault_proxy.add("GET", "/blobs/" + wanted, "substitute", times=100,
                    arg=f"/v2/{served['path']}/blobs/{sent}")
    with pytest.raises(DigestMismatch, match=wanted):
        pull(fresh_store, served["name"] + ":1", options=options)
    assert_nothing_stored(fresh_store, *served["one"]["layers"], *served["two"]["layers"])
    clean_pull_works(fault_proxy, fresh_store, served, options)


def test_tag_answered_with_another_manifest_than_its_digest_header(fault_proxy, fresh_store, served,
                                                                    options):
    # the body of tag 2 under the headers of tag 1 (Docker-Content-Digest of 1)
    fault_proxy.add("GET", "/manifests/1$", "substitute", times=100,
                    arg=f"/v2/{served['path']}/manifests/2")
    with pytest.raises(DigestMismatch, match=f"expected {served['one']['manifest']}"):
        pull(fresh_store, served["name"] + ":1", options=options)
    assert_nothing_stored(fresh_store, *served["two"]["layers"])
    clean_pull_works(fault_proxy, fresh_store, served, options)


def test_digest_reference_answered_with_another_manifest(fault_proxy, fresh_store, served, options):
    wanted = served["one"]["manifest"]
    fault_proxy.add("GET", "/manifests/" + wanted, "substitute", times=100,
                    arg=f"/v2/{served['path']}/manifests/2")
    with pytest.raises(DigestMismatch, match=f"expected {wanted}"):
        pull(fresh_store, f"{served['name']}@{wanted}", options=options)
    assert_nothing_stored(fresh_store, *served["two"]["layers"])


@pytest.mark.parametrize("delta, message", [(+7, r"got 10240 bytes, expected 10247"),
                                            (-7, "more than the 10233 bytes announced")])
def test_manifest_lies_about_a_layer_size(plain_registry, fault_proxy, fresh_store, options, unique,
                                          delta, message):
    data = layer_tar("x", b"X" * 5000)
    put_image(plain_registry.host, unique, "lying", [data], options=options, sizes=[len(data) + delta])
    with pytest.raises(DigestMismatch, match=message):
        pull(fresh_store, f"{fault_proxy.host}/{unique}:lying", options=options)
    assert_nothing_stored(fresh_store, str(Digest.of_bytes(data)))


def test_config_names_other_layer_content(plain_registry, fault_proxy, fresh_store, options, unique):
    data = layer_tar("x", b"X" * 100)
    claimed = str(Digest.of_bytes(b"something else"))
    put_image(plain_registry.host, unique, "1", [data], options=options, diff_ids=[claimed])
    with pytest.raises(DigestMismatch, match="does not match diff id"):
        pull(fresh_store, f"{fault_proxy.host}/{unique}:1", options=options)
    assert_nothing_stored(fresh_store, claimed, str(Digest.of_bytes(data)))


# -- interrupted pushes -----------------------------------------------------------------------

def _image_with_layers(store, count: int, size: int = 300_000):
    layers, diff_ids = [], []
    for i in range(count):
        data = layer_tar(f"layer{i}", os.urandom(size))
        digest = store.blobs.put_bytes(data)
        layers.append((digest, len(data)))
        diff_ids.append(digest)
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": []}
    return store.put_image(json.dumps(config).encode(), layers=layers)


def _blob_puts(log) -> list[str]:
    """Digests of the blob uploads the registry completed (PUT ...?digest=, passed through)."""
    out = []
    for method, path, _, kind, _ in log:
        if method == "PUT" and "/blobs/uploads/" in path and "digest=" in path and not kind:
            out.append(path.split("digest=", 1)[1].split("&", 1)[0].replace("%3A", ":"))
    return out


def test_failed_push_resumes_with_only_the_missing_blobs(fault_proxy, store, options, unique):
    image = _image_with_layers(store, 4)
    name = f"{fault_proxy.host}/{unique}:1"
    store.tag(image.id, str(Reference.parse(name)))
    one_at_a_time = replace(options, upload_concurrency=1)
    # two blob uploads get through, then every upload is cut off
    fault_proxy.add("PUT", r"/blobs/uploads/", "reset", times=1000, after=2)
    with pytest.raises(TransportError):
        push(store, name, options=one_at_a_time)
    first = _blob_puts(fault_proxy.log)
    assert len(first) == 2

    fault_proxy.faults.clear()
    fault_proxy.log.clear()
    events: list[ev.Event] = []
    push(store, name, progress=events.append, options=options)
    second = _blob_puts(fault_proxy.log)
    assert len(second) == 3 and not set(first) & set(second)  # 4 layers + config, each sent once
    # the layers that had arrived are remembered: not even compressed again
    uploaded_layers = len([d for d in first if d != str(Digest.of_bytes(image.config_bytes))])
    assert len([e for e in events if e.action == ev.COMPRESSING]) == 4 - uploaded_layers


def test_killed_push_resumes_with_only_the_missing_blobs(fault_proxy, store, options, unique,
                                                        docker_config, tmp_path):
    image = _image_with_layers(store, 4)
    name = f"{fault_proxy.host}/{unique}:1"
    store.tag(image.id, str(Reference.parse(name)))
    fault_proxy.add("PUT", r"/blobs/uploads/", "stall", times=1000, after=2, arg="20")
    env = dict(os.environ, DOCKYARD_ROOT=str(store.root), DOCKER_CONFIG=str(docker_config),
               DOCKYARD_CONFIG=str(tmp_path / "none.toml"))
    proc = subprocess.Popen([sys.executable, "-c", "from dockyard.cli.main import main; main()",
                             "push", name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(kind == "stall" for *_, kind, _ in fault_proxy.log):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the push never reached the stalled upload"
            time.sleep(0.05)
        time.sleep(0.3)  # let parallel uploads settle on either side
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    first = _blob_puts(fault_proxy.log)
    assert 2 <= len(first) < 5

    fault_proxy.faults.clear()
    fault_proxy.log.clear()
    push(store, name, options=options)
    second = _blob_puts(fault_proxy.log)
    assert sorted(first + second) == sorted(set(first + second)) and len(first + second) == 5


# -- the 61 tar-safety cases, served by a registry, pulled, then built on ------------------------

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "layer"))
from layer_testlib import make_tar, snapshot

TAR_CASES = json.loads((Path(__file__).resolve().parent.parent / "data" / "tar-safety"
                        / "breakout_cases.json").read_text())["cases"]

# what the moby harnesses set up inside the root before the layer, as a lower layer
_PRELUDES = {
    "ThroughAbsoluteSymlink": [["dir", "var", ""], ["sym", "var/run", "/run"]],
    "HardlinkSourceThroughAbsSymlink": [["dir", "var", ""], ["sym", "var/run", "/run"]],
    "RelativeEscapeThenAbsolute": [["dir", "target", ""], ["sym", "escape", ".."],
                                   ["sym", "absolute", "/target"]],
}
_MUST_FAIL_MOBY = ("ParentTraversal", "InvalidWhiteout", "RelativeEscapeThenAbsolute")
_MUST_WORK_MOBY = ("AbsoluteHardlinkAllowed", "ThroughAbsoluteSymlink", "HardlinkSourceThroughAbsSymlink")


def _prelude(case: dict) -> list[list[str]]:
    entries = list(_PRELUDES.get(case["name"], []))
    if case["harness"] == "testBreakout(untar)":
        entries.append(["dir", "victim", ""])  # moby's harness: an empty 'victim' inside the root
    for step in case.get("apply") or []:
        import shlex

        words = shlex.split(step)
        if words[0] == "dir":
            entries.append(["dir", words[1], ""])
        elif words[0] == "file":
            entries.append(["reg", words[1], words[2] if len(words) > 2 else ""])
        else:
            entries.append(["sym" if words[0] == "symlink" else "hard", words[1], words[3]])
    return entries


def _expect(case: dict) -> str:
    """"fail", "work" or "either" (contained: an error or a success both do)."""
    if case["suite"].startswith("containerd"):
        return "fail" if case["expect"].startswith("error") else "work"
    if case["name"].startswith(_MUST_FAIL_MOBY):
        return "fail"
    return "work" if case["name"] in _MUST_WORK_MOBY else "either"


@pytest.fixture(scope="module")
def tar_safety(plain_registry, busybox_tar, tmp_path_factory):
    """One store for every case, a sentinel tree beside it, busybox on the registry."""
    if os.geteuid() != 0:
        pytest.skip("needs root (overlayfs, runc)")
    from dockyard import api
    from dockyard.registry import RegistryOptions, RetryPolicy
    from dockyard.store import Store

    base = tmp_path_factory.mktemp("tar-safety-pull")
    (base / "victim").mkdir()
    (base / "victim" / "hello").write_text("hello")
    (base / "host").mkdir()
    (base / "host" / "perm400").write_text("perm400")
    os.chmod(base / "host" / "perm400", 0o400)
    (base / "host" / "also-exists-outside-root").write_text("outside")
    store = Store(base / "store")
    busybox = api.import_image(busybox_tar, "busybox:latest", store=store)
    with store.blobs.open(busybox.diff_ids[0]) as f:
        busybox_layer = f.read()
    config_dir = base / "docker-config"
    config_dir.mkdir()
    options = RegistryOptions(retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02),
                              docker_config=config_dir)
    return {"base": base, "store": store, "busybox": busybox_layer, "options": options,
            "repo": f"tarsafety/cases-{os.getpid()}"}


def _escaped_into_store(store) -> list[str]:
    stray = []
    for snap in (store.root / "snapshots").iterdir():
        if snap.is_dir():
            stray += [f"{snap.name}/{n}" for n in os.listdir(snap) if n not in ("fs", "work", "merged")]
        else:
            stray.append(snap.name)
    return stray


@pytest.mark.root
@pytest.mark.parametrize("index", range(len(TAR_CASES)), ids=[c["name"] for c in TAR_CASES])
def test_tar_safety_case_through_pull_and_build(index, tar_safety, plain_registry, tmp_path):
    from dockyard import api
    from dockyard.builder.executor import Builder, BuildOptions
    from dockyard.errors import DockyardError

    case, env = TAR_CASES[index], tar_safety
    base, store = env["base"], env["store"]
    layers = [env["busybox"]]
    if _prelude(case):
        layers.append(make_tar(_prelude(case)))
    layers.append(make_tar(case["entries"], replace={"<HOST>": str(base / "host")}))
    tag = f"case{index}"
    put_image(plain_registry.host, env["repo"], tag, layers, options=env["options"])
    before = snapshot(base, exclude=base / "store")

    name = f"{plain_registry.host}/{env['repo']}:{tag}"
    error = None
    try:  # pulling unpacks the layers: a hostile one is refused here, or by the build
        image = pull(store, name, options=env["options"])
    except DockyardError as exc:
        error = exc
        assert str(exc) and "\n" not in str(exc).strip()
        with pytest.raises(DockyardError):
            api.get_image(store, name)  # nothing recorded for the refused image
    else:
        assert len(image.diff_ids) == len(layers)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    # the RUN also writes through every link the layers left (outside busybox's /bin)
    (ctx / "Dockerfile").write_text(
        f"FROM {name}\n"
        "RUN echo ran > /ran; for l in $(find / -xdev -type l ! -path '/bin/*'); do "
        "echo pwned >> \"$l\"; done 2>/dev/null; true\n")
    try:
        built = Builder(store).build(BuildOptions(context=ctx)) if error is None else None
    except DockyardError as exc:
        error = exc
        assert str(exc) and "\n" not in str(exc).strip()
        assert "did not complete successfully" not in str(exc), "the layer went in; the RUN failed"
    else:
        if built is not None:
            assert len(built.diff_ids) == len(layers) + 1  # the RUN ran on the extracted layers

    assert snapshot(base, exclude=base / "store") == before, "something outside the store changed"
    assert stat.S_IMODE(os.stat(base / "host" / "perm400").st_mode) == 0o400
    assert _escaped_into_store(store) == []
    expect = _expect(case)
    if expect == "fail":
        assert error is not None, f"{case['name']}: expected the layer to be refused"
    elif expect == "work":
        assert error is None, f"{case['name']}: {error}"

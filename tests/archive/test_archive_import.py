"""import_rootfs: `docker import` of a root filesystem tarball."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess

import pytest

from dockyard.archive import import_rootfs
from dockyard.archive.importer import apply_changes, config_json
from dockyard.errors import DockerfileError, LayerError
from dockyard.image.platform import Platform


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_import_keeps_the_tar_as_the_layer(new_store, rootfs_tar):
    store = new_store()
    data = rootfs_tar.read_bytes()
    with open(rootfs_tar, "rb") as f:
        image = import_rootfs(store, f, tag="dockyard-test-imp:1")
    assert image.diff_ids == [_sha(data)]
    assert image.layer_digests == [_sha(data)]
    assert store.blobs.read_bytes(_sha(data)) == data
    assert image.tags == ["docker.io/library/dockyard-test-imp:1"]
    assert store.lookup("x", "docker.io/library/dockyard-test-imp:1").id == image.id
    cfg = image.config
    host = Platform.host()
    assert (cfg["architecture"], cfg["os"]) == (host.architecture, host.os)
    assert cfg["history"] == [{"created": cfg["created"], "comment": "Imported from -"}]
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": [_sha(data)]}
    assert image.id == _sha(image.config_bytes)


def test_import_writes_configs_in_buildkit_key_order(new_store, rootfs_tar):
    image = import_rootfs(new_store(), io.BytesIO(rootfs_tar.read_bytes()), tag=None,
                          changes=["ENV A=1", "CMD [\"sh\"]", "USER root"])
    assert list(image.config) == ["architecture", "comment", "config", "created", "history",
                                  "os", "rootfs"]
    assert list(image.config["config"]) == ["User", "Env", "Cmd"]
    assert b'", "' not in image.config_bytes and b'": ' not in image.config_bytes  # compact
    assert config_json({"os": "linux", "architecture": "amd64", "rootfs": {"diff_ids": [], "type": "layers"}}) \
        == b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_compressed_tar_gives_the_same_layer(new_store, rootfs_tar, compress):
    data = rootfs_tar.read_bytes()
    if compress == "gzip":
        packed = gzip.compress(data)
    else:
        if not shutil.which("zstd"):
            pytest.skip("zstd program not installed")
        packed = subprocess.run(["zstd", "-c", "-q"], input=data, capture_output=True, check=True).stdout
    image = import_rootfs(new_store(), io.BytesIO(packed), tag="dockyard-test-gz")
    assert image.diff_ids == [_sha(data)]


def test_changes_land_in_the_config(new_store, rootfs_tar):
    with open(rootfs_tar, "rb") as f:
        image = import_rootfs(new_store(), f, tag="dockyard-test-chg", changes=[
            'CMD ["/bin/sh", "-c", "echo hi"]', "ENV PATH=/bin GREETING=\"hello world\"",
            "WORKDIR /srv", "WORKDIR app", "EXPOSE 80 53/udp", "LABEL a=b", "USER 1000",
            "VOLUME /data", "STOPSIGNAL SIGTERM"], message="from a test")
    cfg = image.config["config"]
    assert cfg["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert cfg["Env"] == ["PATH=/bin", "GREETING=hello world"]
    assert cfg["WorkingDir"] == "/srv/app"
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["Labels"] == {"a": "b"}
    assert cfg["User"] == "1000"
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["StopSignal"] == "SIGTERM"
    assert image.config["comment"] == "from a test"
    assert image.config["history"][0]["comment"] == "from a test"


def test_change_details_follow_dockerfile_rules():
    cfg = apply_changes({}, ["ENV A=1", "ENV B=$A-x C='${A}'y D=\"${A}\"y", "ENTRYPOINT /run.sh",
                             "ONBUILD RUN make", "HEALTHCHECK --interval=5s --retries=2 CMD true"])
    assert cfg["Env"] == ["A=1", "B=1-x", "C=${A}y", "D=1y"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "/run.sh"]
    assert cfg["OnBuild"] == ["RUN make"]
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 2}
    # A new ENTRYPOINT drops an earlier image's CMD, but not one set in the same changes.
    assert "Cmd" not in apply_changes({"Cmd": ["old"]}, ["ENTRYPOINT [\"/e\"]"])
    assert apply_changes({}, ['CMD ["a"]', 'ENTRYPOINT ["/e"]'])["Cmd"] == ["a"]


@pytest.mark.parametrize("change", ["RUN echo hi", "COPY a b", "FROM busybox", "SHELL [\"/bin/bash\"]"])
def test_unsupported_change_names_the_instruction(new_store, h, rootfs_tar, change):
    store = new_store()
    before = h.store_state(store)
    with pytest.raises(DockerfileError) as err, open(rootfs_tar, "rb") as f:
        import_rootfs(store, f, tag="dockyard-test-bad", changes=[change])
    assert change.split()[0] in str(err.value)
    assert h.store_state(store) == before


def test_not_a_tar_is_refused_and_leaves_nothing(new_store, h):
    store = new_store()
    before = h.store_state(store)
    garbage = io.BytesIO(b"this is not a tar archive at all" * 100)
    with pytest.raises(LayerError, match="not a valid tar"):
        import_rootfs(store, garbage, tag="dockyard-test-garbage")
    assert h.store_state(store) == before
    with pytest.raises(LayerError, match="decompress"):
        import_rootfs(store, io.BytesIO(gzip.compress(b"x" * 5000)[:-20]), tag=None)
    assert h.store_state(store) == before


def test_changes_match_docker_import(new_store, rootfs_tar, docker_cli, h):
    changes = ["ENV A=1 B=\"x y\"", "ENV C $A-z", "WORKDIR rel", "WORKDIR sub",
               "EXPOSE 80 90-91/udp", "VOLUME /v /w", "CMD echo hi", 'ENTRYPOINT ["/e"]',
               "USER nobody", "LABEL a=b \"c d\"=e", "ONBUILD run echo x",
               "HEALTHCHECK --interval=5s --retries=2 CMD curl x"]
    tag = h.unique_tag("chg")
    args = [a for c in changes for a in ("-c", c)]
    docker_cli.track(tag)
    docker_cli("import", *args, str(rootfs_tar), tag)
    theirs = json.loads(docker_cli("inspect", "--format", "{{json .Config}}", tag))
    with open(rootfs_tar, "rb") as f:
        ours = import_rootfs(new_store(), f, tag=tag, changes=changes).config["config"]
    for key, value in ours.items():
        assert theirs[key] == value, key
    assert {k for k, v in theirs.items() if v not in (None, "", False)} == set(ours)

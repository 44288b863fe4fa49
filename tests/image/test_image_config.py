"""Image configs: BuildKit's byte layout (the image ID depends on it) and checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from dockyard.image import (
    DEFAULT_PATH_ENV,
    Digest,
    ImageFormatError,
    config_json,
    format_created,
    new_config,
    parse_config,
)

T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
DIFF = str(Digest.of_bytes(b"layer"))


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (T0, "2024-01-02T03:04:05Z"),
        (T0.replace(microsecond=120000), "2024-01-02T03:04:05.12Z"),
        (T0.replace(microsecond=1), "2024-01-02T03:04:05.000001Z"),
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05Z"),  # naive counts as UTC
        (
            T0.replace(tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "2024-01-02T03:04:05+05:30",
        ),
        (T0.replace(tzinfo=timezone(-timedelta(hours=2))), "2024-01-02T03:04:05-02:00"),
        (datetime(1970, 1, 1, tzinfo=UTC), "1970-01-01T00:00:00Z"),
    ],
)
def test_format_created_is_go_rfc3339nano(when: datetime, text: str) -> None:
    assert format_created(when) == text


def test_new_config_shape() -> None:
    cfg = new_config("amd64", "linux", created=T0)
    assert cfg == {
        "architecture": "amd64",
        "config": {"Env": [DEFAULT_PATH_ENV], "WorkingDir": "/"},
        "created": "2024-01-02T03:04:05Z",
        "history": [],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    assert new_config("arm64", "linux", variant="v8", created=T0)["variant"] == "v8"
    assert new_config("amd64", "windows", created=T0)["config"] == {"WorkingDir": "/"}
    assert parse_config(config_json(cfg)) == cfg
    # each call gets fresh lists and dicts
    assert new_config("amd64", "linux")["history"] is not cfg["history"]


def test_new_config_defaults_to_now() -> None:
    created = datetime.fromisoformat(new_config("amd64", "linux")["created"])
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=1)


def test_config_json_golden_bytes() -> None:
    cfg = new_config("amd64", "linux", created=T0)
    cfg["rootfs"]["diff_ids"].append(DIFF)
    cfg["history"].append(
        {"comment": "buildkit.dockerfile.v0", "created_by": "RUN a && b > c # buildkit",
         "created": "2024-01-02T03:04:05Z"}
    )  # fmt: skip
    cfg["history"].append(
        {"empty_layer": True, "created_by": 'CMD ["sh"]', "created": "2024-01-02T03:04:05Z",
         "comment": "buildkit.dockerfile.v0"}
    )  # fmt: skip
    cfg["config"]["Cmd"] = ["sh"]
    cfg["config"]["ArgsEscaped"] = True
    cfg["config"]["Labels"] = {"z": "1", "a": "<2>"}
    assert config_json(cfg).decode() == (
        '{"architecture":"amd64",'
        '"config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],'
        '"Cmd":["sh"],"WorkingDir":"/","Labels":{"a":"\\u003c2\\u003e","z":"1"},'
        '"ArgsEscaped":true},'
        '"created":"2024-01-02T03:04:05Z",'
        '"history":[{"created":"2024-01-02T03:04:05Z",'
        '"created_by":"RUN a \\u0026\\u0026 b \\u003e c # buildkit",'
        '"comment":"buildkit.dockerfile.v0"},'
        '{"created":"2024-01-02T03:04:05Z","created_by":"CMD [\\"sh\\"]",'
        '"comment":"buildkit.dockerfile.v0","empty_layer":true}],'
        '"os":"linux",'
        f'"rootfs":{{"type":"layers","diff_ids":["{DIFF}"]}}}}'
    )


def test_config_json_does_not_depend_on_input_order() -> None:
    cfg = new_config("arm64", "linux", variant="v8", created=T0)
    cfg["config"].update(User="app", Entrypoint=["/e"], Volumes={"/b": {}, "/a": {}})
    backwards = {k: cfg[k] for k in reversed(list(cfg))}
    backwards["config"] = {k: cfg["config"][k] for k in reversed(list(cfg["config"]))}
    backwards["rootfs"] = {"diff_ids": [], "type": "layers"}
    assert config_json(backwards) == config_json(cfg)
    doc = json.loads(config_json(cfg))
    assert list(doc) == sorted(doc)  # Go map: keys sorted
    assert list(doc["config"]) == ["User", "Env", "Entrypoint", "Volumes", "WorkingDir"]
    assert list(doc["config"]["Volumes"]) == ["/a", "/b"]


def test_config_json_drops_go_omitempty_fields() -> None:
    cfg = {
        "architecture": "amd64",
        "author": "",
        "variant": None,
        "os.features": [],
        "os": "linux",
        "config": {
            "User": "", "Env": [], "Cmd": None, "Labels": {}, "ArgsEscaped": False,
            "OnBuild": None, "Healthcheck": {"Retries": 3, "Interval": 0, "Test": ["CMD", "x"]},
            "Hostname": "",  # not a field BuildKit knows: kept as given
        },
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [{"created_by": "x", "empty_layer": False, "comment": ""}],
    }  # fmt: skip
    doc = json.loads(config_json(cfg))
    assert doc == {
        "architecture": "amd64",
        "config": {"Healthcheck": {"Test": ["CMD", "x"], "Retries": 3}, "Hostname": ""},
        "history": [{"created_by": "x"}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    assert list(doc["config"]["Healthcheck"]) == ["Test", "Retries"]


def test_config_json_keeps_unknown_top_level_keys_sorted() -> None:
    cfg = new_config("amd64", "linux", created=T0)
    cfg["moby.buildkit.cache.v0"] = "abc"
    cfg["container_config"] = {"Z": 1, "A": 2}
    doc = json.loads(config_json(cfg))
    assert list(doc) == sorted(doc)
    assert list(doc["container_config"]) == ["Z", "A"]  # unknown objects are left alone


def test_image_id_is_the_digest_of_config_json() -> None:
    data = config_json(new_config("amd64", "linux", created=T0))
    assert Digest.of_bytes(data) == Digest.of_bytes(config_json(parse_config(data)))


def _config(**changes: object) -> str:
    doc: dict[str, object] = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [DIFF]},
    }
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not None})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("invalid JSON", "config: invalid JSON: Expecting value: line 1 column 1 (char 0)"),
        ('"x"', 'config: must be a JSON object, got "x"'),
        (_config(os=123), "config.os: must be a string, got 123"),
        (_config(architecture=None), 'config: missing required field "architecture"'),
        (_config(variant=123), "config.variant: must be a string, got 123"),
        (_config(rootfs=None), 'config: missing required field "rootfs"'),
        (_config(rootfs={"diff_ids": []}), 'config.rootfs: missing required field "type"'),
        (_config(rootfs={"type": "tar", "diff_ids": []}),
         "config.rootfs.type: must be \"layers\", got 'tar'"),
        (_config(rootfs={"type": "layers", "diff_ids": ["sha256:x"]}),
         ('config.rootfs.diff_ids[0]: invalid digest "sha256:x": sha256 needs 64 lowercase '
         "hex characters")),
        (_config(created="yesterday"), "config.created: must be an RFC 3339 time, got 'yesterday'"),
        (_config(history="should be an array"),
         'config.history: must be an array, got "should be an array"'),
        (_config(history=[{"empty_layer": "yes"}]),
         'config.history[0].empty_layer: must be true or false, got "yes"'),
        (_config(config={"User": 1234}), "config.config.User: must be a string, got 1234"),
        (_config(config={"Env": [7353]}), "config.config.Env[0]: must be a string, got 7353"),
        (_config(config={"Env": ["foo"]}), "config.config.Env[0]: must be \"NAME=value\", got 'foo'"),
        (_config(config={"Env": ["=x"]}), "config.config.Env[0]: must be \"NAME=value\", got '=x'"),
        (_config(config={"Volumes": ["/var/data"]}),
         'config.config.Volumes: must be an object, got ["/var/data"]'),
        (_config(config={"ExposedPorts": {"80/tcp": True}}),
         'config.config.ExposedPorts["80/tcp"]: must be an object, got true'),
        (_config(config={"Labels": {"a": 1}}), 'config.config.Labels["a"]: must be a string, got 1'),
        (_config(config={"Healthcheck": {"Retries": "3"}}),
         "config.config.Healthcheck.Retries: must be an integer, got '3'"),
        (_config(config="x"), 'config.config: must be a JSON object, got "x"'),
    ],
)  # fmt: skip
def test_parse_config_errors_name_the_field(data: str, message: str) -> None:
    with pytest.raises(ImageFormatError) as info:
        parse_config(data)
    assert str(info.value) == message


def test_parse_config_accepts_what_go_accepts() -> None:
    # nulls where Go zero values are allowed, BuildKit's null diff_ids, unknown keys
    doc = json.loads(_config())
    doc["config"] = {
        "Cmd": None,
        "Entrypoint": None,
        "Volumes": None,
        "Env": ["A=", "B=c=d"],
    }
    doc["rootfs"]["diff_ids"] = None
    doc["container_config"] = {"Hostname": "abc"}
    doc["created"] = "2015-10-31T22:22:56.015925234+01:00"
    assert parse_config(json.dumps(doc)) == doc

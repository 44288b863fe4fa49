"""Descriptors, manifests, indexes and platform selection."""

from __future__ import annotations

import json

import pytest

from dockyard.image import (
    Descriptor,
    Digest,
    ImageFormatError,
    Index,
    Manifest,
    Platform,
    index_json,
    manifest_json,
    parse_index,
    parse_manifest,
    select_platform,
)
from dockyard.image import (
    mediatypes as mt,
)

CFG_DIGEST = Digest.of_bytes(b"{}")
L1 = Digest.of_bytes(b"layer1")
M1 = Digest.of_bytes(b"manifest1")
CONFIG = Descriptor(mt.OCI_CONFIG, CFG_DIGEST, 2)
LAYER = Descriptor(mt.OCI_LAYER_GZIP, L1, 10)


# --- Descriptor -------------------------------------------------------------


def test_descriptor_json_order_and_round_trip() -> None:
    desc = Descriptor(
        mt.OCI_MANIFEST,
        str(M1),  # a string digest is parsed
        7,
        annotations={"z": "1", "a": "2"},
        platform=Platform.parse("linux/arm/v7"),
        urls=["https://example.com/x"],
        artifact_type="application/vnd.example+json",
        data=b"\x00\xff",
    )
    assert desc.digest == M1
    doc = desc.to_json()
    assert list(doc) == [
        "mediaType", "digest", "size", "urls", "annotations", "data", "platform", "artifactType",
    ]  # fmt: skip
    assert list(doc["annotations"]) == ["a", "z"]  # Go writes maps sorted
    assert doc["data"] == "AP8="
    assert Descriptor.from_json(doc) == desc


def test_descriptor_is_a_frozen_value() -> None:
    desc = Descriptor(mt.OCI_LAYER, L1, 1, annotations={"k": "v"})
    assert desc == Descriptor(mt.OCI_LAYER, L1, 1, annotations={"k": "v"})
    assert hash(desc) == hash(Descriptor(mt.OCI_LAYER, L1, 1, annotations={"k": "v"}))
    with pytest.raises(TypeError):
        desc.annotations["k"] = "changed"  # type: ignore[index]
    with pytest.raises(AttributeError):
        desc.size = 2  # type: ignore[misc]
    assert Descriptor(mt.OCI_LAYER, L1, 1, annotations={}).annotations is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"media_type": "nope"}, 'descriptor has invalid media type "nope"'),
        ({"size": -1}, "descriptor.size: must be a non-negative integer, got -1"),
        ({"size": True}, "descriptor.size: must be a non-negative integer, got true"),
        (
            {"digest": "sha256:x"},
            'invalid digest "sha256:x": sha256 needs 64 lowercase hex',
        ),
        ({"artifact_type": "x"}, 'descriptor has invalid artifactType "x"'),
    ],
)
def test_descriptor_constructor_validates(
    kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {
        "media_type": mt.OCI_LAYER,
        "digest": L1,
        "size": 1,
        **kwargs,
    }
    with pytest.raises(ImageFormatError, match=message.replace("(", r"\(")):
        Descriptor(**args)  # type: ignore[arg-type]


# --- manifest bytes ---------------------------------------------------------

GOLDEN_MANIFEST = (
    '{"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2,'
    '"config":{"mediaType":"application/vnd.oci.image.config.v1+json",'
    f'"digest":"{CFG_DIGEST}","size":2}},'
    '"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",'
    f'"digest":"{L1}","size":10}}],'
    '"annotations":{"a":"x \\u003c\\u003e \\u0026 é","b":"y"}}'
)


def test_manifest_json_golden_bytes() -> None:
    data = manifest_json(CONFIG, [LAYER], {"b": "y", "a": "x <> & é"})
    assert data == GOLDEN_MANIFEST.encode()


def test_manifest_json_buildkit_indent() -> None:
    data = manifest_json(CONFIG, [LAYER], media_type=mt.DOCKER_MANIFEST, indent=2)
    assert data.decode() == "\n".join(
        [
            "{",
            '  "mediaType": "application/vnd.docker.distribution.manifest.v2+json",',
            '  "schemaVersion": 2,',
            '  "config": {',
            '    "mediaType": "application/vnd.oci.image.config.v1+json",',
            f'    "digest": "{CFG_DIGEST}",',
            '    "size": 2',
            "  },",
            '  "layers": [',
            "    {",
            '      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",',
            f'      "digest": "{L1}",',
            '      "size": 10',
            "    }",
            "  ]",
            "}",
        ]
    )


def test_manifest_json_key_order_with_everything() -> None:
    subject = Descriptor(mt.OCI_MANIFEST, M1, 3)
    doc = json.loads(
        manifest_json(
            CONFIG,
            [LAYER],
            {"k": "v"},
            subject=subject,
            artifact_type="application/x+json",
        )
    )
    assert list(doc) == [
        "mediaType", "schemaVersion", "artifactType", "config", "layers", "subject", "annotations",
    ]  # fmt: skip


def test_manifest_json_without_layers_or_media_type() -> None:
    doc = json.loads(manifest_json(CONFIG, [], media_type=None))
    assert doc == {"schemaVersion": 2, "config": CONFIG.to_json(), "layers": []}


def test_manifest_json_refuses_non_manifest_types() -> None:
    with pytest.raises(ImageFormatError, match="is not an image manifest type"):
        manifest_json(CONFIG, [LAYER], media_type=mt.OCI_INDEX)
    with pytest.raises(ImageFormatError, match="is not an image index type"):
        index_json([], media_type=mt.OCI_MANIFEST)


def test_manifest_round_trip() -> None:
    manifest = Manifest(CONFIG, [LAYER], annotations={"k": "v"})
    data = manifest.to_json()
    parsed = parse_manifest(data)
    assert parsed == manifest
    assert parsed.to_json() == data
    assert parse_manifest(data.decode()) == manifest
    assert parse_manifest(manifest.to_json(indent=2)) == manifest
    assert str(Digest.of_bytes(data)) == str(Digest.of_bytes(parsed.to_json()))


def test_parse_manifest_without_layers_key() -> None:
    # BuildKit's Go types omit an empty "layers"
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": CONFIG.to_json()}
    assert parse_manifest(json.dumps(doc)).layers == ()


def test_parse_docker_manifest() -> None:
    data = manifest_json(
        Descriptor(mt.DOCKER_CONFIG, CFG_DIGEST, 2),
        [Descriptor(mt.DOCKER_LAYER_GZIP, L1, 10)],
        media_type=mt.DOCKER_MANIFEST,
    )
    manifest = parse_manifest(data)
    assert manifest.media_type == mt.DOCKER_MANIFEST
    assert mt.compression_of(manifest.layers[0].media_type) is mt.Compression.GZIP


def _manifest_doc(**changes: object) -> str:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": CONFIG.to_json(),
        "layers": [LAYER.to_json()],
    }
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return json.dumps(doc)


MANIFEST_ERRORS = [
    ("not json", "manifest: invalid JSON: Expecting value: line 1 column 1 (char 0)"),
    ("[]", "manifest: must be a JSON object, got []"),
    (
        _manifest_doc(schemaVersion=None),
        'manifest: missing required field "schemaVersion"',
    ),
    (
        _manifest_doc(schemaVersion=1),
        "manifest: Docker schema1 manifests are not supported",
    ),
    (_manifest_doc(schemaVersion=3), "manifest.schemaVersion: must be 2, got 3"),
    (_manifest_doc(schemaVersion="2"), "manifest.schemaVersion: must be 2, got '2'"),
    (
        _manifest_doc(mediaType=mt.OCI_INDEX),
        (
            f'manifest.mediaType: "{mt.OCI_INDEX}" is not an image manifest (an index: use '
            "parse_index)"
        ),
    ),
    (
        _manifest_doc(mediaType="text/plain"),
        'manifest.mediaType: "text/plain" is not an image manifest',
    ),
    (_manifest_doc(mediaType=5), "manifest.mediaType: must be a string, got 5"),
    (_manifest_doc(config=None), 'manifest: missing required field "config"'),
    (_manifest_doc(config=[]), "manifest.config: must be a JSON object, got []"),
    (_manifest_doc(layers={}), "manifest.layers: must be an array of descriptors"),
    (
        _manifest_doc(layers=[LAYER.to_json(), {**LAYER.to_json(), "size": "12"}]),
        'manifest.layers[1].size: must be a non-negative integer, got "12"',
    ),
    (
        _manifest_doc(layers=[{**LAYER.to_json(), "digest": "sha256:abc"}]),
        (
            'manifest.layers[0].digest: invalid digest "sha256:abc": sha256 needs 64 lowercase '
            "hex characters"
        ),
    ),
    (
        _manifest_doc(
            layers=[{k: v for k, v in LAYER.to_json().items() if k != "mediaType"}]
        ),
        'manifest.layers[0]: missing required field "mediaType"',
    ),
    (
        _manifest_doc(layers=[{**LAYER.to_json(), "urls": ["relative/path"]}]),
        'manifest.layers[0].urls[0]: "relative/path" is not an absolute URI',
    ),
    (
        _manifest_doc(layers=[{**LAYER.to_json(), "data": "abc"}]),
        "manifest.layers[0].data: must be padded standard base64",
    ),
    (
        _manifest_doc(annotations={"k": 1}),
        'manifest.annotations["k"]: must be a string, got 1',
    ),
    (_manifest_doc(subject="x"), 'manifest.subject: must be a JSON object, got "x"'),
    (
        _manifest_doc(artifactType="nope"),
        'manifest.artifactType: "nope" is not a valid media type',
    ),
]


@pytest.mark.parametrize(("data", "message"), MANIFEST_ERRORS)
def test_parse_manifest_errors_name_the_field(data: str, message: str) -> None:
    with pytest.raises(ImageFormatError) as info:
        parse_manifest(data)
    assert str(info.value) == message


# --- indexes ----------------------------------------------------------------


def _entry(
    platform: str | None, name: bytes = b"m", media_type: str = mt.OCI_MANIFEST
) -> Descriptor:
    return Descriptor(
        media_type,
        Digest.of_bytes(name + (platform or "").encode()),
        100,
        platform=Platform.parse(platform) if platform else None,
    )


def test_index_json_golden_bytes() -> None:
    entry = _entry("linux/arm64/v8")
    data = index_json([entry], {"org.opencontainers.image.ref.name": "v1"})
    assert data.decode() == (
        '{"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2,'
        '"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        f'"digest":"{entry.digest}","size":100,'
        '"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}],'
        '"annotations":{"org.opencontainers.image.ref.name":"v1"}}'
    )


def test_index_round_trip() -> None:
    index = Index([_entry("linux/amd64"), _entry(None)], mt.DOCKER_MANIFEST_LIST)
    data = index.to_json()
    assert parse_index(data) == index
    assert parse_index(data).to_json() == data
    assert parse_index(index.to_json(indent=2)) == index


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            "{",
            (
                "index: invalid JSON: Expecting property name enclosed in double quotes: "
                "line 1 column 2 (char 1)"
            ),
        ),
        ('{"schemaVersion":2}', 'index: missing required field "manifests"'),
        (
            '{"schemaVersion":2,"manifests":{}}',
            "index.manifests: must be an array of descriptors",
        ),
        (
            json.dumps(
                {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "manifests": []}
            ),
            (
                f'index.mediaType: "{mt.OCI_MANIFEST}" is not an image index (a manifest: use '
                "parse_manifest)"
            ),
        ),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "manifests": [
                        {**_entry(None).to_json(), "platform": {"os": "linux"}}
                    ],
                }
            ),
            'index.manifests[0].platform: missing required field "architecture"',
        ),
    ],
)
def test_parse_index_errors(data: str, message: str) -> None:
    with pytest.raises(ImageFormatError) as info:
        parse_index(data)
    assert str(info.value) == message


def test_parse_manifest_refuses_an_index() -> None:
    with pytest.raises(ImageFormatError, match="use parse_index"):
        parse_manifest(Index([_entry("linux/amd64")]).to_json())


# --- platform selection -----------------------------------------------------

INDEX = Index(
    [
        _entry(None, b"attestation"),
        _entry("linux/386"),
        _entry("linux/amd64/v2"),
        _entry("linux/amd64"),
        _entry("linux/arm/v6"),
        _entry("linux/arm64/v8"),
        _entry("linux/ppc64le"),
        _entry("windows/amd64"),
    ]
)


@pytest.mark.parametrize(
    ("want", "chosen"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/amd64/v2", "linux/amd64/v2"),
        ("linux/amd64/v3", "linux/amd64/v2"),  # best older revision
        ("linux/386", "linux/386"),
        ("linux/arm64", "linux/arm64/v8"),  # arm64 means arm64/v8
        ("linux/aarch64", "linux/arm64/v8"),
        ("linux/arm/v7", "linux/arm/v6"),  # v7 runs v6 images
        ("linux/arm/v5", None),
        ("linux/ppc64le", "linux/ppc64le"),
        ("windows/amd64", "windows/amd64"),
        ("linux/s390x", None),
    ],
)
def test_select_platform(want: str, chosen: str | None) -> None:
    desc = select_platform(INDEX, Platform.parse(want))
    assert (str(desc.platform) if desc else None) == chosen


def test_select_platform_strict_and_first_wins() -> None:
    assert select_platform(INDEX, Platform.parse("linux/arm/v7"), strict=True) is None
    assert select_platform(INDEX, Platform.parse("linux/amd64/v3"), strict=True) is None
    twins = Index([_entry("linux/amd64", b"first"), _entry("linux/amd64", b"second")])
    assert select_platform(twins, Platform.parse("linux/amd64")) == twins.manifests[0]
    amd64_only = Index([_entry("linux/386"), _entry("linux/amd64")])
    assert (
        select_platform(amd64_only, Platform.parse("linux/amd64"))
        == amd64_only.manifests[1]
    )

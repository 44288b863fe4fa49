from __future__ import annotations

import re
from pathlib import Path

import pytest

from dockyard.image import Compression, ImageFormatError
from dockyard.image import mediatypes as mt

SPEC_LIST = Path(__file__).parent.parent / "data" / "oci-image-spec" / "media-types.md"

# media type | manifest | index | config | layer | compression | foreign
TABLE = [
    (mt.OCI_MANIFEST, True, False, False, False, None, False),
    (mt.DOCKER_MANIFEST, True, False, False, False, None, False),
    (mt.OCI_INDEX, False, True, False, False, None, False),
    (mt.DOCKER_MANIFEST_LIST, False, True, False, False, None, False),
    (mt.OCI_CONFIG, False, False, True, False, None, False),
    (mt.DOCKER_CONFIG, False, False, True, False, None, False),
    (mt.OCI_LAYER, False, False, False, True, Compression.UNCOMPRESSED, False),
    (mt.OCI_LAYER_GZIP, False, False, False, True, Compression.GZIP, False),
    (mt.OCI_LAYER_ZSTD, False, False, False, True, Compression.ZSTD, False),
    (mt.DOCKER_LAYER, False, False, False, True, Compression.UNCOMPRESSED, False),
    (mt.DOCKER_LAYER_GZIP, False, False, False, True, Compression.GZIP, False),
    (
        mt.DOCKER_FOREIGN_LAYER,
        False,
        False,
        False,
        True,
        Compression.UNCOMPRESSED,
        True,
    ),
    (mt.DOCKER_FOREIGN_LAYER_GZIP, False, False, False, True, Compression.GZIP, True),
    (
        mt.OCI_LAYER_NONDISTRIBUTABLE_GZIP,
        False,
        False,
        False,
        True,
        Compression.GZIP,
        True,
    ),
    (
        mt.OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
        False,
        False,
        False,
        True,
        Compression.ZSTD,
        True,
    ),
    (mt.DOCKER_SCHEMA1_SIGNED_MANIFEST, False, False, False, False, None, False),
    (mt.OCI_EMPTY, False, False, False, False, None, False),
    (mt.IN_TOTO, False, False, False, False, None, False),
]


@pytest.mark.parametrize(
    ("media_type", "manifest", "index", "config", "layer", "compression", "foreign"),
    TABLE,
)
def test_classification(
    media_type: str,
    manifest: bool,
    index: bool,
    config: bool,
    layer: bool,
    compression: Compression | None,
    foreign: bool,
) -> None:
    assert mt.is_valid_media_type(media_type)
    assert mt.is_manifest(media_type) is manifest
    assert mt.is_index(media_type) is index
    assert mt.is_config(media_type) is config
    assert mt.is_layer(media_type) is layer
    assert mt.is_foreign_layer(media_type) is foreign
    if compression is None:
        with pytest.raises(ImageFormatError, match="is not a known layer type"):
            mt.compression_of(media_type)
    else:
        assert mt.compression_of(media_type) is compression


def test_constants_match_the_spec_list() -> None:
    listed = set(re.findall(r"`(application/vnd\.oci\.[^`]+)`", SPEC_LIST.read_text()))
    ours = {v for k, v in vars(mt).items() if k.startswith("OCI_")}
    assert listed == ours


def test_docker_values() -> None:
    assert mt.DOCKER_LAYER == "application/vnd.docker.image.rootfs.diff.tar"
    assert mt.DOCKER_LAYER_GZIP == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert mt.DOCKER_MANIFEST == "application/vnd.docker.distribution.manifest.v2+json"
    assert mt.DOCKER_CONFIG == "application/vnd.docker.container.image.v1+json"


@pytest.mark.parametrize(
    ("compression", "oci", "expected"),
    [
        ("gzip", True, mt.OCI_LAYER_GZIP),
        (Compression.ZSTD, True, mt.OCI_LAYER_ZSTD),
        (Compression.UNCOMPRESSED, True, mt.OCI_LAYER),
        (Compression.GZIP, False, mt.DOCKER_LAYER_GZIP),
        (Compression.UNCOMPRESSED, False, mt.DOCKER_LAYER),
    ],
)
def test_layer_media_type(compression: str, oci: bool, expected: str) -> None:
    assert mt.layer_media_type(compression, oci=oci) == expected
    assert mt.compression_of(expected) == compression


def test_layer_media_type_errors() -> None:
    with pytest.raises(ImageFormatError, match="no zstd layer media type"):
        mt.layer_media_type(Compression.ZSTD, oci=False)
    with pytest.raises(ImageFormatError, match='unknown layer compression "lz4"'):
        mt.layer_media_type("lz4")


@pytest.mark.parametrize(
    "bad", ["", "application", ".foo/bar", "foo/.bar", "a/b c", "x" * 128 + "/y"]
)
def test_invalid_media_types(bad: str) -> None:
    assert not mt.is_valid_media_type(bad)

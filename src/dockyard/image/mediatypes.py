"""Media types of the OCI image spec and Docker's schema2, and what they mean.

Media types stay plain strings on the wire and in descriptors; the helpers
here answer the questions callers ask of them (is it a manifest? how is this
layer compressed?) so nobody else compares strings.
"""

from __future__ import annotations

import re
from enum import StrEnum

from dockyard.image.errors import ImageFormatError

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_FOREIGN_LAYER_GZIP",
    "DOCKER_LAYER",
    "DOCKER_LAYER_GZIP",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_SCHEMA1_MANIFEST",
    "DOCKER_SCHEMA1_SIGNED_MANIFEST",
    "IN_TOTO",
    "OCI_CONFIG",
    "OCI_DESCRIPTOR",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_NONDISTRIBUTABLE",
    "OCI_LAYER_NONDISTRIBUTABLE_GZIP",
    "OCI_LAYER_NONDISTRIBUTABLE_ZSTD",
    "OCI_LAYER_ZSTD",
    "OCI_LAYOUT_HEADER",
    "OCI_MANIFEST",
    "Compression",
    "compression_of",
    "is_config",
    "is_foreign_layer",
    "is_index",
    "is_layer",
    "is_manifest",
    "is_valid_media_type",
    "layer_media_type",
]

# OCI image spec
OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
# deprecated by the spec, still found in Windows images
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = OCI_LAYER_NONDISTRIBUTABLE + "+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = OCI_LAYER_NONDISTRIBUTABLE + "+zstd"

# Docker image manifest v2, schema 2
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
# schema1 is long deprecated; named only so registry code can refuse it clearly
DOCKER_SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED_MANIFEST = (
    "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

# BuildKit stores provenance/SBOM attestations as layers of this type
IN_TOTO = "application/vnd.in-toto+json"


class Compression(StrEnum):
    """How a layer blob is compressed; the values are BuildKit's names."""

    UNCOMPRESSED = "uncompressed"
    GZIP = "gzip"
    ZSTD = "zstd"


_LAYERS: dict[str, Compression] = {
    OCI_LAYER: Compression.UNCOMPRESSED,
    OCI_LAYER_GZIP: Compression.GZIP,
    OCI_LAYER_ZSTD: Compression.ZSTD,
    OCI_LAYER_NONDISTRIBUTABLE: Compression.UNCOMPRESSED,
    OCI_LAYER_NONDISTRIBUTABLE_GZIP: Compression.GZIP,
    OCI_LAYER_NONDISTRIBUTABLE_ZSTD: Compression.ZSTD,
    DOCKER_LAYER: Compression.UNCOMPRESSED,
    DOCKER_LAYER_GZIP: Compression.GZIP,
    DOCKER_FOREIGN_LAYER: Compression.UNCOMPRESSED,
    DOCKER_FOREIGN_LAYER_GZIP: Compression.GZIP,
}
_FOREIGN = frozenset(
    {
        DOCKER_FOREIGN_LAYER,
        DOCKER_FOREIGN_LAYER_GZIP,
        OCI_LAYER_NONDISTRIBUTABLE,
        OCI_LAYER_NONDISTRIBUTABLE_GZIP,
        OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
    }
)
_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
_INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
_CONFIGS = frozenset({OCI_CONFIG, DOCKER_CONFIG})

# RFC 6838 type/subtype, as the OCI descriptor schema restricts it
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)


def is_valid_media_type(media_type: str) -> bool:
    return isinstance(media_type, str) and _MEDIA_TYPE.fullmatch(media_type) is not None


def is_manifest(media_type: str) -> bool:
    """An OCI or Docker schema2 image manifest (not an index, not schema1)."""
    return media_type in _MANIFESTS


def is_index(media_type: str) -> bool:
    """An OCI image index or a Docker manifest list."""
    return media_type in _INDEXES


def is_config(media_type: str) -> bool:
    return media_type in _CONFIGS


def is_layer(media_type: str) -> bool:
    """A filesystem changeset we know how to unpack (foreign layers included)."""
    return media_type in _LAYERS


def is_foreign_layer(media_type: str) -> bool:
    """Layers that registries may not serve and pushes must skip."""
    return media_type in _FOREIGN


def compression_of(media_type: str) -> Compression:
    try:
        return _LAYERS[media_type]
    except KeyError:
        raise ImageFormatError(
            f'media type "{media_type}" is not a known layer type'
        ) from None


def layer_media_type(compression: Compression | str, *, oci: bool = True) -> str:
    """The media type to write for a layer compressed this way."""
    try:
        compression = Compression(compression)
    except ValueError:
        raise ImageFormatError(f'unknown layer compression "{compression}"') from None
    if oci:
        return {
            Compression.UNCOMPRESSED: OCI_LAYER,
            Compression.GZIP: OCI_LAYER_GZIP,
            Compression.ZSTD: OCI_LAYER_ZSTD,
        }[compression]
    if compression is Compression.ZSTD:
        # schema2 has no zstd layer type; BuildKit switches to OCI types here
        raise ImageFormatError(
            "Docker schema2 has no zstd layer media type; use OCI media types"
        )
    return (
        DOCKER_LAYER if compression is Compression.UNCOMPRESSED else DOCKER_LAYER_GZIP
    )

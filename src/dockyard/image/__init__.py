"""The OCI/Docker image model: digests, media types, platforms, descriptors,
manifests, indexes and configs. Pure values and bytes; no I/O.

Media type constants and helpers stay in their namespace
(``from dockyard.image import mediatypes``); everything else is re-exported.
"""

from __future__ import annotations

from dockyard.image import mediatypes
from dockyard.image.config import (
    DEFAULT_PATH_ENV,
    config_json,
    format_created,
    new_config,
    parse_config,
)
from dockyard.image.descriptor import Descriptor
from dockyard.image.digest import SHA256, SHA512, Digest
from dockyard.image.errors import ImageFormatError
from dockyard.image.manifest import (
    Index,
    Manifest,
    index_json,
    manifest_json,
    parse_index,
    parse_manifest,
    select_platform,
)
from dockyard.image.mediatypes import Compression
from dockyard.image.platform import Platform

__all__ = [
    "DEFAULT_PATH_ENV",
    "SHA256",
    "SHA512",
    "Compression",
    "Descriptor",
    "Digest",
    "ImageFormatError",
    "Index",
    "Manifest",
    "Platform",
    "config_json",
    "format_created",
    "index_json",
    "manifest_json",
    "mediatypes",
    "new_config",
    "parse_config",
    "parse_index",
    "parse_manifest",
    "select_platform",
]

"""The OCI/Docker image model: digests, media types, platforms, descriptors,
manifests, indexes and configs. Pure values and bytes; no I/O.

Media type constants and helpers stay in their namespace
(``from dockyard.image import mediatypes``); everything else is re-exported.
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use: `dockyard run` needs only digests (through references),
# and the manifest and platform models cost it start-up time.
_EXPORTS = {
    "DEFAULT_PATH_ENV": "config", "config_json": "config", "format_created": "config",
    "new_config": "config", "parse_config": "config",
    "Descriptor": "descriptor",
    "SHA256": "digest", "SHA512": "digest", "Digest": "digest",
    "ImageFormatError": "errors",
    "Index": "manifest", "Manifest": "manifest", "index_json": "manifest",
    "manifest_json": "manifest", "parse_index": "manifest", "parse_manifest": "manifest",
    "select_platform": "manifest",
    "Compression": "mediatypes",
    "Platform": "platform",
}

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


def __getattr__(name: str) -> Any:
    if name == "mediatypes":
        return importlib.import_module(f"{__name__}.mediatypes")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | {"mediatypes"})

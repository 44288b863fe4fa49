"""Image manifests and indexes: parsing, canonical bytes, platform choice.

Bytes are written the way BuildKit writes them (Go's encoding/json over the
OCI types, wrapped so ``mediaType`` comes first): ``mediaType``,
``schemaVersion``, ``artifactType``, ``config``/``manifests``, ``layers``,
``subject``, ``annotations``. BuildKit indents with two spaces; we default
to compact bytes, and ``indent=2`` reproduces BuildKit's layout exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dockyard.image._decode import (
    check_str,
    expect_object,
    fail,
    load_json,
    require,
)
from dockyard.image._gojson import go_json, sorted_map
from dockyard.image.descriptor import (
    Descriptor,
    descriptors_from_json,
    descriptors_to_json,
    freeze_annotations,
    optional_annotations,
    optional_artifact_type,
)
from dockyard.image.errors import ImageFormatError
from dockyard.image.mediatypes import (
    DOCKER_SCHEMA1_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    is_index,
    is_manifest,
    is_valid_media_type,
)
from dockyard.image.platform import Platform

__all__ = [
    "Index",
    "Manifest",
    "index_json",
    "manifest_json",
    "parse_index",
    "parse_manifest",
    "select_platform",
]


@dataclass(frozen=True, slots=True)
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str | None = OCI_MANIFEST
    annotations: Mapping[str, str] | None = field(default=None, hash=False)
    subject: Descriptor | None = None
    artifact_type: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "annotations", freeze_annotations(self.annotations))

    def to_json(self, *, indent: int | None = None) -> bytes:
        return manifest_json(
            self.config,
            self.layers,
            self.annotations,
            self.media_type,
            subject=self.subject,
            artifact_type=self.artifact_type,
            indent=indent,
        )

    @classmethod
    def from_json(cls, value: Any, where: str = "manifest") -> Manifest:
        obj = expect_object(value, where)
        _check_schema_version(obj, where)
        media_type = _media_type(obj, where)
        if media_type is not None and not is_manifest(media_type):
            hint = " (an index: use parse_index)" if is_index(media_type) else ""
            raise fail(
                f"{where}.mediaType", f'"{media_type}" is not an image manifest{hint}'
            )
        config = Descriptor.from_json(require(obj, "config", where), f"{where}.config")
        # BuildKit omits "layers" when there are none (Go omitempty)
        raw_layers = obj.get("layers")
        layers = (
            ()
            if raw_layers is None
            else descriptors_from_json(raw_layers, f"{where}.layers")
        )
        return cls(
            config,
            layers,
            media_type,
            annotations=optional_annotations(obj, where),
            subject=_subject(obj, where),
            artifact_type=optional_artifact_type(obj, where),
        )


@dataclass(frozen=True, slots=True)
class Index:
    manifests: tuple[Descriptor, ...]
    media_type: str | None = OCI_INDEX
    annotations: Mapping[str, str] | None = field(default=None, hash=False)
    subject: Descriptor | None = None
    artifact_type: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "manifests", tuple(self.manifests))
        object.__setattr__(self, "annotations", freeze_annotations(self.annotations))

    def to_json(self, *, indent: int | None = None) -> bytes:
        return index_json(
            self.manifests,
            self.annotations,
            self.media_type,
            subject=self.subject,
            artifact_type=self.artifact_type,
            indent=indent,
        )

    @classmethod
    def from_json(cls, value: Any, where: str = "index") -> Index:
        obj = expect_object(value, where)
        _check_schema_version(obj, where)
        media_type = _media_type(obj, where)
        if media_type is not None and not is_index(media_type):
            hint = (
                " (a manifest: use parse_manifest)" if is_manifest(media_type) else ""
            )
            raise fail(
                f"{where}.mediaType", f'"{media_type}" is not an image index{hint}'
            )
        manifests = descriptors_from_json(
            require(obj, "manifests", where), f"{where}.manifests"
        )
        return cls(
            manifests,
            media_type,
            annotations=optional_annotations(obj, where),
            subject=_subject(obj, where),
            artifact_type=optional_artifact_type(obj, where),
        )


def manifest_json(
    config: Descriptor,
    layers: Iterable[Descriptor],
    annotations: Mapping[str, str] | None = None,
    media_type: str | None = OCI_MANIFEST,
    *,
    subject: Descriptor | None = None,
    artifact_type: str | None = None,
    indent: int | None = None,
) -> bytes:
    """The manifest's bytes; its digest is the manifest's identity."""
    if media_type is not None and not is_manifest(media_type):
        raise ImageFormatError(
            f'manifest_json: "{media_type}" is not an image manifest type'
        )
    doc = _head(media_type, artifact_type)
    doc["config"] = config.to_json()
    # always written, even empty: the OCI schema requires the field
    doc["layers"] = descriptors_to_json(layers)
    _tail(doc, subject, annotations)
    return go_json(doc, indent=indent)


def index_json(
    manifests: Iterable[Descriptor],
    annotations: Mapping[str, str] | None = None,
    media_type: str | None = OCI_INDEX,
    *,
    subject: Descriptor | None = None,
    artifact_type: str | None = None,
    indent: int | None = None,
) -> bytes:
    if media_type is not None and not is_index(media_type):
        raise ImageFormatError(f'index_json: "{media_type}" is not an image index type')
    doc = _head(media_type, artifact_type)
    doc["manifests"] = descriptors_to_json(manifests)
    _tail(doc, subject, annotations)
    return go_json(doc, indent=indent)


def parse_manifest(data: bytes | str) -> Manifest:
    """An OCI or Docker schema2 manifest; anything else raises ImageFormatError."""
    return Manifest.from_json(load_json(data, "manifest"))


def parse_index(data: bytes | str) -> Index:
    """An OCI index or Docker manifest list; anything else raises ImageFormatError."""
    return Index.from_json(load_json(data, "index"))


def select_platform(
    index: Index, platform: Platform, *, strict: bool = False
) -> Descriptor | None:
    """The entry Docker would pull for ``platform``, or None.

    Exact matches (after normalization) win; unless ``strict``, compatible
    fallbacks follow in ``Platform.compatible()`` order (amd64 -> 386, arm/v7
    -> arm/v6, ...). Among equals the first entry wins. Entries without a
    platform are never chosen.
    """
    candidates = platform.compatible()[:1] if strict else platform.compatible()
    for want in candidates:
        for desc in index.manifests:
            if desc.platform is not None and want.matches(desc.platform):
                return desc
    return None


def _head(media_type: str | None, artifact_type: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if media_type:
        doc["mediaType"] = media_type
    doc["schemaVersion"] = 2
    if artifact_type:
        if not is_valid_media_type(artifact_type):
            raise ImageFormatError(f'invalid artifactType "{artifact_type}"')
        doc["artifactType"] = artifact_type
    return doc


def _tail(
    doc: dict[str, Any],
    subject: Descriptor | None,
    annotations: Mapping[str, str] | None,
) -> None:
    if subject is not None:
        doc["subject"] = subject.to_json()
    if annotations:
        doc["annotations"] = sorted_map(dict(annotations))


def _check_schema_version(obj: dict[str, Any], where: str) -> None:
    version = require(obj, "schemaVersion", where)
    if isinstance(version, bool):
        raise fail(f"{where}.schemaVersion", f"must be 2, got {version!r}")
    if version == 1 or obj.get("mediaType") == DOCKER_SCHEMA1_MANIFEST:
        raise fail(where, "Docker schema1 manifests are not supported")
    if version != 2:
        raise fail(f"{where}.schemaVersion", f"must be 2, got {version!r}")


def _media_type(obj: dict[str, Any], where: str) -> str | None:
    if obj.get("mediaType") is None:
        return None
    value = check_str(obj["mediaType"], f"{where}.mediaType")
    if not is_valid_media_type(value):
        raise fail(f"{where}.mediaType", f'"{value}" is not a valid media type')
    return value


def _subject(obj: dict[str, Any], where: str) -> Descriptor | None:
    if obj.get("subject") is None:
        return None
    return Descriptor.from_json(obj["subject"], f"{where}.subject")

"""Content descriptors: what a blob is, its digest and its size."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from dockyard.errors import go_quote
from dockyard.image._decode import (
    check_size,
    check_str,
    check_str_list,
    check_str_map,
    expect_object,
    fail,
    require,
)
from dockyard.image._gojson import sorted_map
from dockyard.image.digest import Digest
from dockyard.image.errors import ImageFormatError
from dockyard.image.mediatypes import is_valid_media_type
from dockyard.image.platform import Platform

__all__ = ["Descriptor"]

# an absolute URI: a scheme, then no whitespace
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")


def freeze_annotations(value: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """A read-only copy, so frozen value types stay frozen; empty becomes None."""
    if not value:
        return None
    return MappingProxyType(dict(value))


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI descriptor. ``digest`` may be given as a string; it is parsed."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] | None = field(default=None, hash=False)
    platform: Platform | None = None
    urls: tuple[str, ...] | None = None
    artifact_type: str | None = None
    data: bytes | None = None

    def __post_init__(self) -> None:
        if isinstance(self.digest, str):
            object.__setattr__(self, "digest", Digest.parse(self.digest))
        if not isinstance(self.digest, Digest):
            raise ImageFormatError(
                f"descriptor digest must be a Digest, got {self.digest!r}"
            )
        if not is_valid_media_type(self.media_type):
            raise ImageFormatError(
                f"descriptor has invalid media type {go_quote(self.media_type)}"
            )
        check_size(self.size, "descriptor.size")
        object.__setattr__(self, "annotations", freeze_annotations(self.annotations))
        if self.urls is not None:
            object.__setattr__(self, "urls", tuple(self.urls) or None)
        if self.artifact_type is not None and not is_valid_media_type(
            self.artifact_type
        ):
            raise ImageFormatError(
                f"descriptor has invalid artifactType {go_quote(self.artifact_type)}"
            )

    def to_json(self) -> dict[str, Any]:
        """The JSON object, keys in the order the OCI Go types write them."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = sorted_map(dict(self.annotations))
        if self.data is not None:
            out["data"] = base64.b64encode(self.data).decode("ascii")
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, value: Any, where: str = "descriptor") -> Descriptor:
        obj = expect_object(value, where)
        media_type = check_str(require(obj, "mediaType", where), f"{where}.mediaType")
        if not is_valid_media_type(media_type):
            raise fail(
                f"{where}.mediaType", f"{go_quote(media_type)} is not a valid media type"
            )
        raw_digest = check_str(require(obj, "digest", where), f"{where}.digest")
        try:
            digest = Digest.parse(raw_digest)
        except ImageFormatError as e:
            raise fail(f"{where}.digest", str(e)) from None
        size = check_size(require(obj, "size", where), f"{where}.size")
        return cls(
            media_type,
            digest,
            size,
            annotations=optional_annotations(obj, where),
            platform=(
                Platform.from_json(obj["platform"], f"{where}.platform")
                if obj.get("platform") is not None
                else None
            ),
            urls=_urls(obj, where),
            artifact_type=optional_artifact_type(obj, where),
            data=_data(obj, where),
        )


def optional_annotations(obj: dict[str, Any], where: str) -> dict[str, str] | None:
    if obj.get("annotations") is None:
        return None
    return check_str_map(obj["annotations"], f"{where}.annotations")


def _urls(obj: dict[str, Any], where: str) -> tuple[str, ...] | None:
    if obj.get("urls") is None:
        return None
    urls = check_str_list(obj["urls"], f"{where}.urls")
    for i, url in enumerate(urls):
        if not _URI.fullmatch(url):
            raise fail(f"{where}.urls[{i}]", f'"{url}" is not an absolute URI')
    return tuple(urls)


def optional_artifact_type(obj: dict[str, Any], where: str) -> str | None:
    if obj.get("artifactType") is None:
        return None
    value = check_str(obj["artifactType"], f"{where}.artifactType")
    if not is_valid_media_type(value):
        raise fail(f"{where}.artifactType", f'"{value}" is not a valid media type')
    return value


def _data(obj: dict[str, Any], where: str) -> bytes | None:
    if obj.get("data") is None:
        return None
    text = check_str(obj["data"], f"{where}.data")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise fail(f"{where}.data", "must be padded standard base64") from None


def descriptors_from_json(value: Any, where: str) -> tuple[Descriptor, ...]:
    if not isinstance(value, list):
        raise fail(where, "must be an array of descriptors")
    return tuple(
        Descriptor.from_json(item, f"{where}[{i}]") for i, item in enumerate(value)
    )


def descriptors_to_json(items: Iterable[Descriptor]) -> list[dict[str, Any]]:
    return [d.to_json() for d in items]

"""Typed access to decoded JSON with errors that name the field.

Every check raises ImageFormatError as ``<where>: <what is wrong>`` where
``where`` is a path like ``manifest.layers[2].size``, so a broken document
never surfaces as a KeyError or TypeError deep inside a caller.
"""

from __future__ import annotations

import json
from typing import Any

from dockyard.errors import go_quote
from dockyard.image.errors import ImageFormatError

_MAX_INT64 = 2**63 - 1


def describe(value: Any) -> str:
    """A short JSON rendering of a bad value for an error message."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except RecursionError:
        return "a value nested too deeply"
    return text if len(text) <= 60 else text[:57] + "..."


def fail(where: str, message: str) -> ImageFormatError:
    return ImageFormatError(f"{where}: {message}")


def load_json(data: bytes | str, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise fail(what, f"invalid JSON: {e}") from None
    except RecursionError:
        # json's decoder recurses once per nesting level
        raise fail(what, "invalid JSON: nested too deeply") from None


def expect_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(where, f"must be a JSON object, got {describe(value)}")
    return value


def require(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise fail(where, f'missing required field "{key}"')
    return obj[key]


def check_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise fail(where, f"must be a string, got {describe(value)}")
    return value


def check_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise fail(where, f"must be true or false, got {describe(value)}")
    return value


def check_size(value: Any, where: str) -> int:
    # bool is an int subclass in Python but never a size in JSON
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value <= _MAX_INT64
    ):
        raise fail(where, f"must be a non-negative integer, got {describe(value)}")
    return value


def check_str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        raise fail(where, f"must be an array of strings, got {describe(value)}")
    for i, item in enumerate(value):
        check_str(item, f"{where}[{i}]")
    return value


def check_str_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise fail(where, f"must be an object of strings, got {describe(value)}")
    for key, item in value.items():
        check_str(item, f"{where}[{go_quote(key)}]")
    return value


def check_object_map(value: Any, where: str) -> dict[str, Any]:
    """Go's map[string]struct{}: ExposedPorts, Volumes."""
    if not isinstance(value, dict):
        raise fail(where, f"must be an object, got {describe(value)}")
    for key, item in value.items():
        if not isinstance(item, dict):
            raise fail(f"{where}[{go_quote(key)}]", f"must be an object, got {describe(item)}")
    return value


def check_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise fail(where, f"must be an array, got {describe(value)}")
    return value

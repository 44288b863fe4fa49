"""JSON bytes as Go's encoding/json writes them.

Image IDs and manifest digests are hashes of these bytes, so to produce the
same IDs as BuildKit we must produce the same bytes: no spaces, non-ASCII
kept as UTF-8, and ``< > &`` plus U+2028/U+2029 escaped as ``\\u003c`` etc.
(Go's HTML-safe default). Key order is the caller's job: build dicts in the
order the Go struct declares its fields, or sorted for Go maps.
"""

from __future__ import annotations

import json
from typing import Any

# Outside strings JSON text never contains these characters, so a plain
# translate over the encoded text only touches string contents.
_GO_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def go_json(value: Any, *, indent: int | None = None) -> bytes:
    """``json.Marshal`` (indent None) or ``json.MarshalIndent(v, "", " "*indent)``."""
    if indent is None:
        text = json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
    else:
        text = json.dumps(
            value,
            ensure_ascii=False,
            indent=indent,
            separators=(",", ": "),
            allow_nan=False,
        )
    return text.translate(_GO_ESCAPES).encode("utf-8")


def sorted_map(value: dict[str, Any]) -> dict[str, Any]:
    """Go marshals maps with their keys sorted."""
    return {k: value[k] for k in sorted(value)}

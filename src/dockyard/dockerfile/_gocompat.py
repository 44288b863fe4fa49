"""Small re-creations of Go standard-library behaviour the front end relies on.

BuildKit is written in Go, and several observable details of its Dockerfile
handling come straight from Go's library: which characters count as white
space (``unicode.IsSpace``), how strings are quoted in ``Dump`` output
(``strconv.Quote``), how HEALTHCHECK durations are read
(``time.ParseDuration``) and how integers are read (``strconv.ParseInt``).
Python's own versions differ at the edges, so these helpers copy Go's rules.
"""

from __future__ import annotations

import re

__all__ = [
    "GO_SPACES",
    "go_isspace",
    "go_lstrip",
    "go_quote",
    "go_quote_list",
    "go_trimspace",
    "parse_duration",
    "parse_int32",
]

# unicode.IsSpace: Latin-1 spaces plus the White_Space property. Python's
# str.isspace() also counts U+001C..U+001F, which Go does not.
GO_SPACES = (
    "\t\n\v\f\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_SPACE_SET = frozenset(GO_SPACES)


def go_isspace(ch: str) -> bool:
    return ch in _SPACE_SET


def go_trimspace(s: str) -> str:
    return s.strip(GO_SPACES)


def go_lstrip(s: str) -> str:
    return s.lstrip(GO_SPACES)


_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def go_quote(s: str) -> str:
    """strconv.Quote: a double-quoted Go string literal, printable runes kept.

    Undecodable input bytes (carried as surrogate escapes) print as ``\\xNN``
    like Go prints invalid UTF-8.
    """
    out = ['"']
    for ch in s:
        esc = _SIMPLE_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
            continue
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape'd raw byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:  # not a valid rune: Go prints U+FFFD
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_quote_list(items: list[str]) -> str:
    """fmt's %q of a []string: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(i) for i in items) + "]"


_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_MAX_INT64 = (1 << 63) - 1
_NUMBER = re.compile(r"([0-9]*)(?:\.([0-9]*))?")
_UNIT = re.compile(r"[^0-9.]*")


def parse_duration(text: str) -> int:
    """time.ParseDuration, returning nanoseconds; ValueError with Go's message."""
    invalid = ValueError("time: invalid duration " + go_quote(text))
    s = text
    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        number = _NUMBER.match(s)
        assert number is not None  # the pattern can match empty
        whole, frac = number.group(1), number.group(2)
        if not whole and not frac:
            raise invalid
        s = s[number.end():]
        unit = _UNIT.match(s).group()  # type: ignore[union-attr]
        if not unit:
            raise ValueError("time: missing unit in duration " + go_quote(text))
        if unit not in _UNIT_NS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(text)}")
        s = s[len(unit):]
        scale = _UNIT_NS[unit]
        value = int(whole or "0") * scale
        if frac:
            value += int(frac) * scale // 10 ** len(frac)
        total += value
        if total > _MAX_INT64 + (1 if negative else 0):
            raise invalid
    return -total if negative else total


def parse_int32(text: str) -> int:
    """strconv.ParseInt(text, 10, 32); ValueError with Go's message."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not body.isascii() or not body.isdigit():
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(1 << 31) <= value < (1 << 31):
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value

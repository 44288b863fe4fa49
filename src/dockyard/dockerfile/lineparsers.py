"""Per-keyword argument splitting, the second half of BuildKit's line parser.

Each function takes the rest of an instruction line (flags already removed)
and the escape token, and returns ``(args, is_json)``. Quotes are kept in the
words: removing them is the job of word expansion, later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from ._gocompat import go_isspace, go_lstrip, go_quote, go_trimspace

__all__ = ["DISPATCH", "LineParseError", "parse_words", "split_command"]

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"

Args = tuple[list[str], bool]


class LineParseError(ValueError):
    """An instruction line that cannot be split (reported with its line)."""


def split_command(line: str, escape: str) -> tuple[str, list[str], str]:
    """``KEYWORD --flag ... rest`` -> (keyword, flags, rest)."""
    parts = _WHITESPACE.split(go_trimspace(line), maxsplit=1)
    flags: list[str] = []
    rest = ""
    if len(parts) == 2:
        rest, flags = _extract_flags(parts[1], escape)
    return parts[0], flags, go_trimspace(rest)


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading words that start with ``--``; a bare ``--`` ends them."""
    words: list[str] = []
    pos, end = 0, len(line)
    while True:
        while pos < end and go_isspace(line[pos]):
            pos += 1
        if pos == end:
            return "", words
        if not line.startswith("--", pos):
            return line[pos:], words
        word: list[str] = []
        blank_ok = False
        quote = ""
        while pos < end:
            ch = line[pos]
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == escape and pos + 1 == end:
                    quote = ""  # an escape at the very end is dropped
                else:
                    if ch == escape:
                        pos += 1
                        ch = line[pos]
                    word.append(ch)
                pos += 1
                continue
            if go_isspace(ch):
                break
            if ch in ("'", '"'):
                quote, blank_ok = ch, True
            elif ch == escape:
                if pos + 1 < end:
                    pos += 1
                    word.append(line[pos])
            else:
                word.append(ch)
            pos += 1
        text = "".join(word)
        if text == "--":
            return ("", words) if pos == end else (line[pos:], words)
        if blank_ok or text:
            words.append(text)


def parse_words(rest: str, escape: str) -> list[str]:
    """Split on blanks outside quotes; quotes and escapes stay in the words."""
    words: list[str] = []
    word: list[str] = []
    in_word = blank_ok = False
    quote = ""
    pos, end = 0, len(rest)
    while pos < end:
        ch = rest[pos]
        if not in_word:
            if go_isspace(ch):
                pos += 1
                continue
            in_word = True
        if not quote:
            if go_isspace(ch):
                if blank_ok or word:
                    words.append("".join(word))
                word, in_word, blank_ok = [], False, False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote, blank_ok = ch, True
            if ch == escape:
                if pos + 1 == end:
                    pos += 1
                    continue  # an escape at the end of the line is dropped
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        # inside quotes: the escape works except within single quotes
        closing = ch == quote
        if ch == escape and quote != "'":
            if pos + 1 == end:
                quote = ""
                pos += 1
                continue
            word.append(ch)
            pos += 1
            ch = rest[pos]
        if closing:
            quote = ""
        word.append(ch)
        pos += 1
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


def _parse_json(rest: str) -> list[str] | None:
    """The JSON array at the start of rest, or None if there is none.

    Like Go's json.Decoder, only the first value is read: text after the
    closing bracket is ignored.
    """
    rest = go_lstrip(rest)
    if not rest.startswith("["):
        return None
    try:
        value, _ = json.JSONDecoder(parse_constant=_reject_constant).raw_decode(rest)
    except ValueError:
        return None
    except RecursionError:  # valid but absurdly nested: not an array of strings
        raise LineParseError(_NOT_STRING_ARRAY) from None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise LineParseError(_NOT_STRING_ARRAY)
    # Go turns invalid UTF-8 and lone surrogates into U+FFFD.
    return [_SURROGATE.sub("\ufffd", item) for item in value]


def _reject_constant(name: str) -> None:
    raise ValueError(f"invalid JSON constant {name}")


def _whitespace_list(rest: str, escape: str) -> Args:
    return (_WHITESPACE.split(rest) if rest else []), False


def _maybe_json(rest: str, escape: str) -> Args:
    if not rest:
        return [], False
    items = _parse_json(rest)
    return (items, True) if items is not None else ([rest], False)


def _maybe_json_list(rest: str, escape: str) -> Args:
    items = _parse_json(rest)
    return (items, True) if items is not None else _whitespace_list(rest, escape)


def _string(rest: str, escape: str) -> Args:
    return ([rest] if rest else []), False


def _name_or_name_value(rest: str, escape: str) -> Args:
    return parse_words(rest, escape), False


def _name_value(keyword: str) -> Callable[[str, str], Args]:
    def parse(rest: str, escape: str) -> Args:
        words = parse_words(rest, escape)
        if not words:
            return [], False
        if "=" not in words[0]:
            # legacy "KEY name value": the value is the raw rest of the line
            parts = _WHITESPACE.split(rest, maxsplit=1)
            if len(parts) < 2:
                raise LineParseError(f"{keyword} must have two arguments")
            return [parts[0], parts[1], ""], False
        args: list[str] = []
        for word in words:
            if "=" not in word:
                raise LineParseError(
                    f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value"
                )
            key, value = word.split("=", 1)
            args += [key, value, "="]
        return args, False

    return parse


def _health_config(rest: str, escape: str) -> Args:
    """``HEALTHCHECK TYPE command``: the type, then the command as CMD reads it."""
    sep = 0
    while sep < len(rest) and not go_isspace(rest[sep]):
        sep += 1
    if sep == 0:
        return [], False
    args, is_json = _maybe_json(go_lstrip(rest[sep:]), escape)
    return [rest[:sep]] + args, is_json


def _onbuild(rest: str, escape: str) -> Args:
    raise AssertionError("ONBUILD nests a whole instruction; the parser handles it")


DISPATCH: dict[str, Callable[[str, str], Args]] = {
    "add": _maybe_json_list,
    "arg": _name_or_name_value,
    "cmd": _maybe_json,
    "copy": _maybe_json_list,
    "entrypoint": _maybe_json,
    "env": _name_value("ENV"),
    "expose": _whitespace_list,
    "from": _whitespace_list,
    "healthcheck": _health_config,
    "label": _name_value("LABEL"),
    "maintainer": _string,
    "onbuild": _onbuild,
    "run": _maybe_json,
    "shell": _maybe_json,
    "stopsignal": _string,
    "user": _string,
    "volume": _maybe_json_list,
    "workdir": _string,
}

"""Dockerfile text -> a flat list of instruction nodes, as BuildKit parses it.

The parser only splits lines into instructions: it joins continuation lines,
drops comments, reads parser directives and heredoc bodies, pulls leading
``--flags`` off each instruction and splits the rest the way each keyword
wants (JSON array, whitespace list, key/value triples, or the whole line).
It does not know which flags exist or what arguments mean; that is
``instructions.py``. Unknown keywords are kept (BuildKit's parser ignores
them too) unless ``strict=True``; ``instructions.parse_dockerfile`` rejects
them.

``dump(node)`` renders BuildKit's canonical ``Dump`` form, which the
conformance vectors use as golden output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ..errors import DockerfileError
from ._gocompat import go_lstrip, go_quote, go_quote_list, go_trimspace
from .heredoc import (
    Heredoc,
    HeredocError,
    chomp_heredoc_content,
    heredocs_from_line,
    parse_heredoc,
)
from .lineparsers import DISPATCH, LineParseError, split_command

__all__ = [
    "Heredoc",
    "Node",
    "ParseResult",
    "ParseWarning",
    "chomp_heredoc_content",
    "dump",
    "dump_result",
    "parse",
    "parse_heredoc",
]

_HEREDOC_KEYWORDS = frozenset({"add", "copy", "run"})
_DIRECTIVE = re.compile(r"#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})
# bufio.Scanner's default limit: BuildKit cannot read longer lines.
_MAX_LINE_BYTES = 64 * 1024
_NO_EMPTY_CONTINUATION_URL = "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/"


@dataclass
class Node:
    """One instruction.

    ``args`` holds what BuildKit's ``Node.Next`` chain holds: JSON array items
    for JSON forms, the rest of the line for shell forms, (key, value, sep)
    triples for ENV/LABEL, words for FROM/EXPOSE/ARG/ADD/COPY/VOLUME. For
    ONBUILD ``args`` is empty and ``next`` is the triggered instruction.
    ``original`` is the logical line (continuations joined, no heredoc bodies).
    """

    value: str
    args: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    json: bool = False
    original: str = ""
    start_line: int = 0
    end_line: int = 0
    heredocs: list[Heredoc] = field(default_factory=list)
    next: Node | None = None
    comments: list[str] = field(default_factory=list)

    def can_contain_heredoc(self) -> bool:
        node = self.next if self.value == "onbuild" and self.next is not None else self
        return node.value in _HEREDOC_KEYWORDS and not node.json


@dataclass(frozen=True)
class ParseWarning:
    """A problem that does not stop the parse (BuildKit returns these as data)."""

    message: str
    line: int
    url: str = ""
    detail: str = ""


@dataclass
class ParseResult:
    children: list[Node]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)
    warnings: list[ParseWarning] = field(default_factory=list)

    def dump(self) -> str:
        return dump_result(self)


class _Directives:
    """Parser-directive state: only comment lines before anything else count."""

    def __init__(self, escape: str) -> None:
        self.done = False
        self.values: dict[str, str] = {}
        self.set_escape(escape)

    def set_escape(self, token: str) -> None:
        if token not in ("\\", "`"):
            raise ValueError(f"invalid escape token '{token}' does not match ` or \\")
        self.escape = token
        e = re.escape(token)
        # An escape at the end of a line continues it, unless it is itself
        # escaped ("foo \\" keeps its backslashes and ends the line).
        self.continuation = re.compile(rf"([^{e}]){e}[ \t]*\Z|\A{e}[ \t]*\Z")

    def feed(self, line: str) -> bool:
        """Look at one top-level line; True when it was a directive."""
        if self.done:
            return False
        match = _DIRECTIVE.match(line)
        if match is None or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            self.done = True
            return False
        key, value = match.group(1).lower(), match.group(2)
        if key in self.values:
            raise ValueError(f"only one {key} parser directive can be used")
        self.values[key] = value
        if key == "escape":
            self.set_escape(value)
        return True

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """Strip a trailing line-continuation; the bool is True at end of line."""
        trimmed, count = self.continuation.subn(r"\1", line, count=1)
        return (trimmed, False) if count else (line, True)


def _is_comment(line: str) -> bool:
    return go_lstrip(line).startswith("#")


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _split_lines(text: str, filename: str) -> list[str]:
    """Lines with their newlines kept (heredoc bodies need them)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    for number, line in enumerate(out, 1):
        if len(line) * 4 > _MAX_LINE_BYTES and len(line.encode("utf-8", "surrogateescape")) > _MAX_LINE_BYTES:
            raise DockerfileError(
                f"dockerfile line greater than max allowed size of {_MAX_LINE_BYTES - 1}", filename, number
            )
    return out


def _node_from_line(line: str, directives: _Directives, comments: list[str]) -> Node:
    keyword, flags, rest = split_command(line, directives.escape)
    value = keyword.lower()
    parse_args = DISPATCH.get(value)
    if parse_args is None:
        args, is_json, nested = [""], False, None  # BuildKit keeps an empty argument
    elif value == "onbuild":
        args, is_json = [], False
        nested = _node_from_line(rest, directives, []) if rest else None
    else:
        args, is_json = parse_args(rest, directives.escape)
        nested = None
    return Node(value=value, args=args, flags=flags, json=is_json, original=line, next=nested,
                comments=list(comments))


def parse(
    text: str | bytes,
    filename: str = "Dockerfile",
    *,
    escape: str = "\\",
    strict: bool = False,
) -> ParseResult:
    """Parse Dockerfile text into instruction nodes.

    ``escape`` is the starting escape token (an ``# escape=`` directive still
    overrides it). With ``strict=True`` an unknown instruction is an error
    here already instead of in ``instructions.parse_dockerfile``.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    lines = _split_lines(text, filename)
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    try:
        directives = _Directives(escape)
    except ValueError as exc:
        raise DockerfileError(str(exc), filename) from None
    children: list[Node] = []
    warnings: list[ParseWarning] = []
    comments: list[str] = []
    pos = 0
    total = len(lines)

    while pos < total:
        raw = lines[pos]
        if _is_comment(raw):
            comment = go_trimspace(raw[1:])
            comments = comments + [comment] if comment else []
        token = go_lstrip(_trim_newline(raw))
        try:
            if directives.feed(token) and comments:
                comments = comments[:-1]  # directives are not doc comments
        except ValueError as exc:
            raise DockerfileError(str(exc), filename, pos + 1) from None
        pos += 1
        start_line = pos
        line, end_of_line = directives.trim_continuation("" if _is_comment(token) else token)
        if end_of_line and not line:
            continue

        parts = [line]
        empty_continuation = False
        while not end_of_line and pos < total:
            raw = lines[pos]
            pos += 1
            if _is_comment(raw):
                continue
            token = _trim_newline(raw)
            if not go_lstrip(token):
                empty_continuation = True
                continue
            token, end_of_line = directives.trim_continuation(token)
            parts.append(token)
        line = "".join(parts)

        if empty_continuation:
            warnings.append(ParseWarning(
                message="Empty continuation line found in: " + line,
                line=pos,
                url=_NO_EMPTY_CONTINUATION_URL,
                detail="Empty continuation lines will become errors in a future release",
            ))

        try:
            node = _node_from_line(line, directives, comments)
        except LineParseError as exc:
            raise DockerfileError(str(exc), filename, start_line) from None
        if strict and node.value not in DISPATCH:
            raise DockerfileError(f"unknown instruction: {node.value.upper()}", filename, start_line)

        if node.can_contain_heredoc() and "<<" in line:
            try:
                docs = heredocs_from_line(line)
            except HeredocError as exc:
                raise DockerfileError(str(exc), filename, start_line) from None
            for doc in docs:
                body: list[str] = []
                terminated = False
                while pos < total:
                    raw = lines[pos]
                    pos += 1
                    candidate = _trim_newline(raw)
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    body.append(raw)
                if not terminated:
                    raise DockerfileError("unterminated heredoc", filename, start_line)
                node.heredocs.append(replace(doc, content="".join(body)))

        node.start_line, node.end_line = start_line, pos
        children.append(node)
        comments = []

    if not children:
        raise DockerfileError("file with no instructions", filename, pos or None)
    return ParseResult(
        children=children,
        escape=directives.escape,
        directives=dict(directives.values),
        warnings=warnings,
    )


def _dump_body(node: Node) -> str:
    text = node.value
    if node.flags:
        text += " " + go_quote_list(node.flags)
    for arg in node.args:
        text += " " + go_quote(arg)
    if node.next is not None:
        text += " (" + _dump_body(node.next) + ")"
    return go_trimspace(text)


def dump(node: Node) -> str:
    """One node in BuildKit's Dump form, e.g. ``(copy ["--from=a"] "x" "/y")``."""
    return "(" + _dump_body(node) + ")"


def dump_result(result: ParseResult) -> str:
    """Every node, one per line, as BuildKit dumps a whole AST."""
    return "".join(dump(child) + "\n" for child in result.children)

"""Heredoc detection for RUN, COPY and ADD (Dockerfile syntax 1.4+).

BuildKit finds heredocs in two steps, and so do we:

1. the instruction line is split into shell words with quotes, escapes and
   unset variables all kept verbatim, so nothing is lost;
2. each word is matched against ``N<<-NAME``; the name is then lexed twice,
   with and without quote removal. If the quote counts differ, part of the
   name was quoted and the body must not be expanded (like ``sh``).

Heredoc bodies are stored unchanged; ``<<-`` only affects how the terminator
is recognised, and :func:`chomp_heredoc_content` strips the tabs later.

The small lexer here only splits words; it never expands anything, so it does
not depend on the full word expander in ``shell.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._gocompat import go_isspace, go_quote

__all__ = [
    "Heredoc",
    "HeredocError",
    "chomp_heredoc_content",
    "heredocs_from_line",
    "parse_heredoc",
]

# The escape token of the heredoc lexer is always a backslash, even when the
# Dockerfile's escape directive selects a backtick (as in BuildKit).
_ESC = "\\"
_HEREDOC = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_SPECIAL_PARAMS = frozenset("@*#?-$!0")


@dataclass(frozen=True)
class Heredoc:
    """One heredoc attached to an instruction.

    ``content`` is the body exactly as written (lines with their newlines);
    ``expand`` is False when any part of the delimiter was quoted; ``chomp``
    marks ``<<-``; ``file_descriptor`` is the ``N`` of ``N<<NAME`` (0 if absent).
    """

    name: str
    content: str = ""
    expand: bool = True
    chomp: bool = False
    file_descriptor: int = 0


class HeredocError(ValueError):
    """A heredoc delimiter that cannot be lexed (e.g. an unclosed quote)."""


class _Words:
    """Accumulates shell words the way BuildKit's lexer does."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.word = ""
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if go_isspace(ch):
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def result(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
        return self.words


class _Lexer:
    """Word splitter with unset variables kept as written (SkipUnsetEnv)."""

    def __init__(self, src: str, raw_quotes: bool, raw_escapes: bool) -> None:
        self.src = src
        self.pos = 0
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.special = {"'": self._single, '"': self._double, "$": self._dollar, "<": self._angle}

    def peek(self) -> str:
        return self.src[self.pos] if self.pos < len(self.src) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    def process(self, stop: str = "", raw_escapes: bool | None = None) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        if raw_escapes is not None:
            self.raw_escapes = raw_escapes
        try:
            return self._process(stop)
        finally:
            self.raw_escapes = saved

    def _process(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.result()
            special = self.special.get(ch)
            if special is not None:
                text = special()
                result.append(text)
                if ch == "$":
                    words.add_string(text)
                else:
                    words.add_raw(text)
                continue
            ch = self.next()
            if ch == _ESC:
                if self.raw_escapes:
                    words.add_raw(ch)
                    result.append(ch)
                ch = self.next()
                if not ch:
                    break
                words.add_raw(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop:
            raise HeredocError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def _single(self) -> str:
        quote = self.next()
        out = [quote] if self.raw_quotes else []
        while True:
            ch = self.next()
            if not ch:
                raise HeredocError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double(self) -> str:
        quote = self.next()
        out = [quote] if self.raw_quotes else []
        while True:
            ch = self.peek()
            if not ch:
                raise HeredocError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            ch = self.next()
            if ch == _ESC:
                if self.raw_escapes:
                    out.append(ch)
                nxt = self.peek()
                if not nxt:
                    continue
                if nxt in ('"', "$", _ESC):
                    ch = self.next()
            out.append(ch)

    def _angle(self) -> str:
        # "<<", an optional "-" and any following blanks stay glued to the
        # delimiter word, so "<< EOF" and "<<- EOF" are found as heredocs.
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        text = "<<"
        if self.peek() == "-":
            text += self.next()
        while self.peek() and go_isspace(self.peek()):
            text += self.next()
        return text

    def _name(self) -> str:
        ch = self.peek()
        if ch and ch.isdecimal():
            digits = ""
            while self.peek() and self.peek().isdecimal():
                digits += self.next()
            return digits
        if ch and ch in _SPECIAL_PARAMS:
            return self.next()
        name = ""
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            name += self.next()
        return name

    def _dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self._name()
            return "$" + name if name else "$"
        self.next()
        ch = self.peek()
        if not ch:
            raise HeredocError("syntax error: missing '}'")
        if ch in "{}:":
            raise HeredocError("syntax error: bad substitution")
        name = self._name()
        ch = self.next()
        if not ch:
            raise HeredocError("syntax error: missing '}'")
        if ch == "}":
            return "${" + name + "}"
        modifier = ch
        if ch == ":":
            ch = self.next()
            modifier += ch
        if modifier.startswith(":") or ch in "+-?#%":
            word = self._braced("}", ch in "#%")
            return "${" + name + modifier + word + "}"
        if ch == "/" and modifier == "/":
            if self.peek() == "/":
                self.next()
            pattern = self._braced("/", True)
            replacement = self._braced("}", True)
            return f"${{{name}/{pattern}/{replacement}}}"
        raise HeredocError(f"unsupported modifier ({modifier}) in substitution")

    def _braced(self, stop: str, raw_escapes: bool) -> str:
        try:
            text, _ = self.process(stop, raw_escapes)
        except HeredocError:
            if not self.peek():
                raise HeredocError("syntax error: missing '}'" if stop == "}" else "syntax error: missing '/' in ${}")
            raise
        return text


def _split(src: str, *, raw_quotes: bool, raw_escapes: bool) -> list[str]:
    lexer = _Lexer(src, raw_quotes, raw_escapes)
    try:
        return lexer.process()[1]
    except HeredocError as exc:
        raise HeredocError(f"failed to process {go_quote(src)}: {exc}") from None
    except RecursionError:
        raise HeredocError(f"failed to process {go_quote(src)}: nested too deeply") from None


def parse_heredoc(src: str) -> Heredoc | None:
    """Read one word as a heredoc start (``<<EOF``, ``3<<-'EOF'``...).

    Returns None when the word is not a heredoc; raises HeredocError when it
    is one whose delimiter cannot be lexed.
    """
    match = _HEREDOC.match(src)
    if match is None:
        return None
    digits, dash, rest = match.groups()
    if not rest:
        return None
    words = _split(rest, raw_quotes=False, raw_escapes=False)
    if len(words) != 1:
        return None
    raw_words = _split(rest, raw_quotes=True, raw_escapes=False)
    if len(raw_words) != len(words):
        raise HeredocError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name, raw = words[0], raw_words[0]
    quotes = name.count("'") + name.count('"')
    raw_quotes = raw.count("'") + raw.count('"')
    return Heredoc(
        name=name,
        expand=quotes == raw_quotes,
        chomp=dash == "-",
        file_descriptor=int(digits) if digits else 0,
    )


def heredocs_from_line(line: str) -> list[Heredoc]:
    """Every heredoc started on an instruction line, in order of appearance."""
    try:
        words = _split(line, raw_quotes=True, raw_escapes=True)
    except HeredocError:
        return []  # an unlexable line simply has no heredocs
    docs: list[Heredoc] = []
    for word in words:
        doc = parse_heredoc(word)
        if doc is not None:
            docs.append(doc)
    return docs


def chomp_heredoc_content(content: str) -> str:
    """What ``<<-`` means for the body: leading tabs removed from every line."""
    return _LEADING_TABS.sub("", content)

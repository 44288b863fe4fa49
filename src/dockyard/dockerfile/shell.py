"""Shell-style word expansion for Dockerfiles, following BuildKit's lexer.

Quotes are removed, escapes handled and ``$VAR`` / ``${VAR...}`` references
replaced the way BuildKit's ``frontend/dockerfile/shell`` package does it,
including its quirks (the expectations come from its conformance vectors).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from dockyard.dockerfile._gocompat import GO_SPACES, go_quote
from dockyard.errors import DockerfileError

__all__ = ["GO_SPACES", "Lexer", "build_envs", "expand", "go_quote"]

_EOF = ""  # what _Word.peek()/next() return past the end
_SPECIAL_PARAMS = frozenset("@*#?-$!0")

_UNEXPECTED_END = "unexpected end of statement while looking for matching"

Env = Mapping[str, str] | Iterable[str]


class _ShellError(Exception):
    """An expansion failure; wrapped into DockerfileError at the top."""


def build_envs(env: Iterable[str]) -> dict[str, str]:
    """Turn ``["k=v", "flag"]`` into a dict; later entries win, a bare name maps to ''."""
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out




class Lexer:
    """BuildKit's shell lexer.

    ``raw_quotes`` keeps quote characters in the output, ``raw_escapes`` keeps
    escape characters, ``skip_process_quotes`` treats quotes as ordinary
    characters (heredocs) and ``skip_unset_env`` leaves references to unset
    variables in place.
    """

    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_process_quotes: bool = False,
        skip_unset_env: bool = False,
    ) -> None:
        if len(escape) != 1:
            raise DockerfileError(f"invalid escape token {escape!r}: must be a single character")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_process_quotes = skip_process_quotes
        self.skip_unset_env = skip_unset_env

    def process_word(self, word: str, env: Env) -> str:
        """Expand one word: quotes removed, escapes and variables processed."""
        return self._process(word, env).result

    def process_words(self, word: str, env: Env) -> list[str]:
        """Expand and split into words on unquoted whitespace."""
        return self._process(word, env).words

    def process_word_with_matches(self, word: str, env: Env) -> tuple[str, set[str], set[str]]:
        """Expand; also return the names referenced that were set and unset."""
        w = self._process(word, env)
        return w.result, w.matched, w.unmatched

    def _process(self, word: str, env: Env) -> _Word:
        envs = env if isinstance(env, Mapping) else build_envs(env)
        w = _Word(self, word, envs)
        try:
            w.result, w.words = w.stop_on(_EOF, self.raw_escapes)
        except _ShellError as exc:
            raise DockerfileError(f"failed to process {go_quote(word)}: {exc}") from None
        return w


def expand(word: str, env: Env, escape: str = "\\") -> str:
    """Expand ``word`` with a default lexer."""
    return Lexer(escape).process_word(word, env)


class _Words:
    """Accumulates the split words as the expansion goes."""

    __slots__ = ("word", "words")

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []

    def add_char(self, ch: str) -> None:
        if ch not in GO_SPACES:
            self.word += ch
        elif self.word:
            self.words.append(self.word)
            self.word = ""

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw(self, s: str) -> None:
        self.word += s  # quoted text: spaces don't split

    def get(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
        return self.words


class _Word:
    """One expansion in progress: a cursor over the text plus its results."""

    def __init__(self, lex: Lexer, text: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.text = text
        self.pos = 0
        self.env = env
        self.raw_escapes = lex.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()
        self.result = ""
        self.words: list[str] = []

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False

    def stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        """Process up to ``stop`` (consumed) or the end when ``stop`` is EOF."""
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def stop_on_delim(self, stop: str, raw_escapes: bool, missing: str) -> str:
        """stop_on for the parts of ${...}: running off the end means ``missing``."""
        try:
            return self.stop_on(stop, raw_escapes)[0]
        except _ShellError:
            if self.peek() == _EOF:
                raise _ShellError(f"syntax error: missing {missing}") from None
            raise

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        out: list[str] = []
        words = _Words()
        quotes = not self.lex.skip_process_quotes
        esc = self.lex.escape
        while (ch := self.peek()) != _EOF:
            if stop and ch == stop:
                self.next()
                return "".join(out), words.get()
            if ch == "$":
                tmp = self.dollar()
                out.append(tmp)
                words.add_string(tmp)  # expansions are subject to splitting
                continue
            if quotes and ch in "'\"":
                tmp = self.single_quote() if ch == "'" else self.double_quote()
                out.append(tmp)
                words.add_raw(tmp)
                continue
            ch = self.next()
            if ch == esc:
                if self.raw_escapes:
                    words.add_raw(ch)
                    out.append(ch)
                ch = self.next()
                if ch == _EOF:
                    break  # a trailing escape is dropped
                words.add_raw(ch)
            else:
                words.add_char(ch)
            out.append(ch)
        if stop:
            raise _ShellError(f"{_UNEXPECTED_END} {stop}")
        return "".join(out), words.get()

    def single_quote(self) -> str:
        raw = self.lex.raw_quotes
        opening = self.next()
        out = [opening] if raw else []
        while True:
            ch = self.next()
            if ch == _EOF:
                raise _ShellError(f"{_UNEXPECTED_END} single-quote")
            if ch == "'":
                if raw:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        raw = self.lex.raw_quotes
        esc = self.lex.escape
        opening = self.next()
        out = [opening] if raw else []
        while True:
            ch = self.peek()
            if ch == _EOF:
                raise _ShellError(f"{_UNEXPECTED_END} double-quote")
            if ch == '"':
                self.next()
                if raw:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == esc:
                if self.raw_escapes:
                    out.append(ch)
                nxt = self.peek()
                if nxt == _EOF:
                    continue  # the loop then reports the missing quote
                if nxt in ('"', "$", esc):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        """A variable name: letters/digits/_, all digits, or one special char."""
        buf: list[str] = []
        while (ch := self.peek()) != _EOF:
            if not buf and ch.isdecimal():
                while (d := self.peek()) != _EOF and d.isdecimal():
                    buf.append(self.next())
                return "".join(buf)
            if not buf and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            buf.append(self.next())
        return "".join(buf)

    def dollar(self) -> str:
        self.next()  # the '$'
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value

        self.next()  # the '{'
        ch = self.peek()
        if ch == _EOF:
            raise _ShellError("syntax error: missing '}'")
        if ch in "{}:":
            raise _ShellError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == _EOF:
            raise _ShellError("syntax error: missing '}'")
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch == ":" or ch in "+-?#%":
            return self._modifier(name, ch)
        if ch == "/":
            return self._replace(name)
        raise _ShellError(f"unsupported modifier ({_shown(ch)}) in substitution")

    def _modifier(self, name: str, ch: str) -> str:
        mod = ch
        null_is_unset = ch == ":"
        if null_is_unset:
            ch = self.next()
            mod += ch
        # patterns keep their escapes so \* can mean a literal star
        word = self.stop_on_delim("}", ch == "#" or ch == "%", "'}'")

        value, found = self.get_env(name)
        if self.lex.skip_unset_env and not found:
            return "${" + name + mod + word + "}"
        unset = not found or (null_is_unset and value == "")
        if ch == "-":
            return word if unset else value
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if not found:
                raise _ShellError(f"{name}: {_shown(word) or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _ShellError(f"{name}: {_shown(word) or 'is not allowed to be empty'}")
            return value
        if ch in ("#", "%"):
            greedy = word.startswith(ch)  # ## and %% take the longest match
            if greedy:
                word = word[1:]
            trim = _trim_suffix if ch == "%" else _trim_prefix
            return trim(word, value, greedy)
        raise _ShellError(f"unsupported modifier ({_shown(mod)}) in substitution")

    def _replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        pattern = self.stop_on_delim("/", True, "'/' in ${}")
        replacement = self.stop_on_delim("}", True, "'}'")

        value, found = self.get_env(name)
        if self.lex.skip_unset_env and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        glob = _Glob(pattern, greedy=True)
        if replace_all:
            return _go_replace_all(glob, value, replacement)
        span = glob.search(value)
        if span:
            value = value[: span[0]] + replacement + value[span[1] :]
        return value


# ---- ${v#pat}, ${v%pat}, ${v/pat/x} --------------------------------------------
# BuildKit turns the pattern into a Go regex (`*` -> `.*`, or `.*?` for the
# shortest match; `?` -> `.`; the rest literal) and takes its leftmost-first
# match. Go's matcher is linear; Python's backtracks, so a hostile pattern
# like `*a*a*a*a*c` took exponential time. _Glob finds the same match by the
# same backtracking order, remembering the (token, position) states that
# already failed, so each is tried once: O(len(pattern) * len(value)).

_STAR, _ANY = 0, 1  # pattern tokens besides literal characters (str)


def _shown(text: str) -> str:
    """``text`` for a message: as it is when printable, else Go-quoted
    (a line break in a Dockerfile word must not split the message)."""
    return text if text.isprintable() else go_quote(text)


class _Glob:
    """A compiled shell pattern with BuildKit's regex semantics."""

    __slots__ = ("fixed", "greedy", "tokens")

    def __init__(self, pattern: str, greedy: bool, shown: str | None = None) -> None:
        tokens: list[int | str] = []
        i, n = 0, len(pattern)
        while i < n:
            ch = pattern[i]
            i += 1
            if ch == "*":
                if not tokens or tokens[-1] != _STAR:  # `.*.*` matches what `.*` does
                    tokens.append(_STAR)
            elif ch == "?":
                tokens.append(_ANY)
            elif ch == "\\":
                nxt = pattern[i] if i < n else _EOF
                if nxt in ("}", "/"):
                    continue  # only needed to get past the ${} parser
                i += 1
                if nxt not in ("*", "?", "\\"):
                    if not nxt:
                        what = "escape at end of pattern"
                    elif nxt.isprintable():
                        what = f"escape '\\{nxt}'"
                    else:
                        what = "escape " + go_quote("\\" + nxt)
                    shown = pattern if shown is None else shown
                    raise _ShellError(
                        f"invalid pattern ({_shown(shown)}) in substitution: invalid {what}"
                    )
                tokens.append(nxt)
            else:
                tokens.append(ch)
        self.tokens = tokens
        self.greedy = greedy
        # without a star nothing can backtrack: Python's re is quick and the same
        self.fixed = None if _STAR in tokens else re.compile(
            "".join(re.escape(tok) if isinstance(tok, str) else "." for tok in tokens))

    def match(self, text: str, start: int, failed: set[int]) -> int:
        """The end of the match anchored at ``start``, or -1.

        ``failed`` holds the states known to lead nowhere; states this call
        visits are added, so it stays valid for other starts in the same
        text only while nothing has matched."""
        if self.fixed is not None:
            found = self.fixed.match(text, start)
            return found.end() if found else -1
        tokens, greedy = self.tokens, self.greedy
        m, n = len(tokens), len(text)
        width = n + 1
        stack = [(0, start)]
        while stack:
            k, i = stack.pop()
            while True:  # follow the preferred branch; alternatives wait on the stack
                if k == m:
                    return i
                key = k * width + i
                if key in failed:
                    break
                failed.add(key)
                tok = tokens[k]
                if tok == _STAR:  # `.*`: any run of characters but a line break
                    if i < n and text[i] != "\n":
                        if greedy:  # one more first; stopping here is the fallback
                            stack.append((k + 1, i))
                            i += 1
                        else:  # stop here first; one more is the fallback
                            stack.append((k, i + 1))
                            k += 1
                    else:
                        k += 1
                elif i < n and (text[i] == tok if tok != _ANY else text[i] != "\n"):
                    k += 1
                    i += 1
                else:
                    break
        return -1

    def search(self, text: str, pos: int = 0) -> tuple[int, int] | None:
        """The leftmost-first match at or after ``pos``: (start, end)."""
        if self.fixed is not None:
            found = self.fixed.search(text, pos)
            return found.span() if found else None
        failed: set[int] = set()
        for start in range(pos, len(text) + 1):
            end = self.match(text, start, failed)
            if end >= 0:
                return start, end
        return None


def _trim_prefix(pattern: str, value: str, greedy: bool, shown: str | None = None) -> str:
    end = _Glob(pattern, greedy, shown).match(value, 0, set())
    return value[end:] if end >= 0 else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern keeping each escape before the character it escapes."""
    toks: list[str] = []
    i, last = 0, len(pattern) - 1
    while i <= last:
        if pattern[i] == "\\" and i != last:
            toks.append(pattern[i : i + 2])
            i += 2
        else:
            toks.append(pattern[i])
            i += 1
    return "".join(reversed(toks))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # a regex finds the leftmost match, so search the reversed string
    # (only the reversed pattern is checked, as in BuildKit)
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy, shown=pattern)[::-1]


def _go_replace_all(glob: _Glob, src: str, repl: str) -> str:
    """Go's Regexp.ReplaceAllString: empty matches right after a match are
    skipped (Python's re.sub keeps them) and $0/${0}/$$ expand in ``repl``."""
    out: list[str] = []
    last_end = search = 0
    n = len(src)
    while search <= n:
        found = glob.search(src, search)
        if found is None:
            break
        start, end = found
        out.append(src[last_end:start])
        if end > last_end or start == 0:
            out.append(_go_expand(repl, src[start:end]))
        last_end = end
        width = 1 if search < n else 0
        if search + width > end:
            search += width
        elif search + 1 > end:
            search += 1
        else:
            search = end
    out.append(src[last_end:])
    return "".join(out)


def _go_expand(template: str, whole: str) -> str:
    """Go's Regexp.Expand for a regex without groups: only $0 means something."""
    out: list[str] = []
    i, n = 0, len(template)
    while (j := template.find("$", i)) >= 0:
        out.append(template[i:j])
        i = j + 1
        if i < n and template[i] == "$":
            out.append("$")
            i += 1
            continue
        brace = i < n and template[i] == "{"
        k = i + 1 if brace else i
        start = k
        while k < n and (template[k].isalpha() or template[k].isdecimal() or template[k] == "_"):
            k += 1
        name = template[start:k]
        if not name or (brace and (k >= n or template[k] != "}")):
            out.append("$")  # malformed: the $ stays literal
            continue
        i = k + 1 if brace else k
        if name == "0":
            out.append(whole)
    out.append(template[i:])
    return "".join(out)

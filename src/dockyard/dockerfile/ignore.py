""".dockerignore reading and matching, with moby/patternmatcher's semantics.

A pattern is cleaned, syntax-checked like Go's filepath.Match, then compared
exactly, as a prefix (``dir/**``), a suffix (``**/name``) or through the Go
regex patternmatcher builds, translated piece by piece so that odd corners
(``[...]`` classes, ``\\`` escapes) behave as in Go, and run by an automaton
in linear time as Go's RE2 would (Python's ``re`` only where it cannot
backtrack for long).  A path is excluded when it or a parent directory
matches, unless a later ``!`` pattern re-includes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from dockyard.dockerfile._gocompat import GO_SPACES, go_quote
from dockyard.errors import DockerfileError

__all__ = ["Pattern", "PatternMatcher", "find_ignore_file", "load_ignore", "matches"]
__all__ += ["parse_ignore"]

_TRIM = "".join(GO_SPACES)
_EXACT, _PREFIX, _SUFFIX, _REGEXP = "exact", "prefix", "suffix", "regexp"
_REGEX_META = frozenset(".+()|{}$")  # escaped in the Go regex: no meaning in globs
_PATTERN_CHARS = frozenset("*[]?^\\")  # a pattern with these isn't a plain prefix


def _clean(path: str) -> str:
    """Go's path.Clean (posix): lexical, '' -> '.', '/..' -> '/'."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
        else:
            parts.append(seg)
    out = "/".join(parts)
    return ("/" + out) if rooted else (out or ".")


def _dir(path: str) -> str:
    """Go's filepath.Dir."""
    return _clean(path[: path.rfind("/") + 1])


def parse_ignore(text: str | bytes) -> list[str]:
    """The patterns of a .dockerignore file, read as BuildKit's ReadAll does."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    out: list[str] = []
    for lineno, line in enumerate(text.split("\n")):
        if line.endswith("\r"):
            line = line[:-1]
        if lineno == 0 and line.startswith("\ufeff"):
            line = line[1:]
        if line.startswith("#"):  # comments are recognised before trimming
            continue
        line = line.strip(_TRIM)
        if not line:
            continue
        invert = line[0] == "!"
        if invert:
            line = line[1:].strip(_TRIM)
        if line:
            line = _clean(line)
            if len(line) > 1 and line[0] == "/":
                line = line[1:]  # /foo means foo: paths are context-relative
        out.append("!" + line if invert else line)
    return out


# ---- filepath.Match syntax check ---------------------------------------------


def _class_char_end(p: str, i: int) -> int:
    """End of one character of a [...] class at i, or -1 when malformed."""
    n = len(p)
    if i >= n or p[i] in "-]":
        return -1
    if p[i] == "\\":
        i += 1
        if i >= n:
            return -1
    i += 1
    return i if i < n else -1  # the class must still be open


def _glob_syntax_ok(p: str) -> bool:
    """Whether Go's filepath.Match would accept pattern ``p`` (Unix rules)."""
    i, n = 0, len(p)
    while i < n:
        ch = p[i]
        if ch == "\\":
            if i + 1 >= n:
                return False
            i += 2
        elif ch == "[":
            i += 1
            if i < n and p[i] == "^":
                i += 1
            count = 0
            while not (i < n and p[i] == "]" and count > 0):
                i = _class_char_end(p, i)
                if i >= 0 and p[i] == "-":
                    i = _class_char_end(p, i + 1)
                if i < 0:
                    return False
                count += 1
            i += 1
        else:
            i += 1
    return True


# ---- pattern -> Go regex (as patternmatcher builds it) -------------------------


def _go_regex(pattern: str) -> tuple[str, str]:
    """Classify a cleaned pattern; for _REGEXP also return Go's regex source."""
    reg = ["^"]
    kind = _EXACT
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*" and pattern.startswith("*", i):
            first = i == 1
            i += 1 + pattern.startswith("/", i + 1)  # **/ is the same as **
            if i < n:
                reg.append("(.*/)?")
                kind = _REGEXP
            elif kind == _EXACT:
                kind = _PREFIX
            else:
                reg.append(".*")
                kind = _REGEXP
            if first:
                kind = _SUFFIX
        elif ch in "*?[]":
            reg.append({"*": "[^/]*", "?": "[^/]"}.get(ch, ch))
            kind = _REGEXP
        elif ch in _REGEX_META:
            reg.append("\\" + ch)
        elif ch == "\\" and i < n:
            reg.append("\\" + pattern[i])
            i += 1
            kind = _REGEXP
        else:
            reg.append(ch)  # a trailing \ too (filepath.Match rejects it earlier)
    return kind, ("".join(reg) + "$" if kind == _REGEXP else "")


# ---- Go regex -> Python regex ------------------------------------------------
# Only what _go_regex can emit needs handling, but that includes whatever a
# user put after a backslash or inside brackets, so follow Go's syntax rules.


def _ranges(spec: str) -> list[tuple[int, int]]:
    return [(ord(spec[k]), ord(spec[k + 1])) for k in range(0, len(spec), 2)]


_PERL = {"d": _ranges("09"), "s": _ranges("\t\n\f\r  "), "w": _ranges("09AZ__az")}
_POSIX = {
    name: _ranges(spec)
    for name, spec in {
        "alnum": "09AZaz", "alpha": "AZaz", "ascii": "\x00\x7f", "blank": "\t\t  ",
        "cntrl": "\x00\x1f\x7f\x7f", "digit": "09", "graph": "!~", "lower": "az",
        "print": " ~", "punct": "!/:@[`{~", "space": "\t\r  ", "upper": "AZ",
        "word": "09AZ__az", "xdigit": "09AFaf",
    }.items()
}  # fmt: skip
_CONTROL = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
_OCTAL = "01234567"
_MORE_OCTAL = re.compile("[0-7]{0,2}")
_HEX = re.compile(r"\{([0-9A-Fa-f]+)\}|([0-9A-Fa-f]{2})")


def _negate(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, low = [], 0
    for lo, hi in sorted(ranges):
        if lo > low:
            out.append((low, lo - 1))
        low = max(low, hi + 1)
    if low <= 0x10FFFF:
        out.append((low, 0x10FFFF))
    return out


def _py_class(ranges: list[tuple[int, int]], negated: bool = False) -> str:
    body = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges)
    return f"[{'^' if negated else ''}{body}]"


def _escape(s: str, i: int) -> tuple[int, int]:
    """Go's parseEscape at s[i] == '\\': (code point, next index)."""
    i += 1
    if i >= len(s):
        raise ValueError("trailing backslash")
    c = s[i]
    i += 1
    if c < "\x80" and not c.isalnum():
        return ord(c), i
    if c in _OCTAL and (c == "0" or s[i : i + 1] in tuple(_OCTAL)):
        more = _MORE_OCTAL.match(s, i)
        return int(c + more.group(), 8), more.end()  # type: ignore[union-attr]
    if c == "x" and (hexa := _HEX.match(s, i)):
        value = int(hexa.group(1) or hexa.group(2), 16)
        if value <= 0x10FFFF:
            return value, hexa.end()
    if c in _CONTROL:
        return _CONTROL[c], i
    raise ValueError(f"invalid escape \\{c}")


def _class(s: str, i: int) -> tuple[str, int]:
    """A Go [...] class at s[i] == '[' as a Python class, and the next index."""
    i += 1
    negated = s.startswith("^", i)
    i += negated
    ranges: list[tuple[int, int]] = []
    first = True
    while i >= len(s) or s[i] != "]" or first:  # a leading ] is literal
        if i >= len(s):
            raise ValueError("missing closing ]")
        first = False
        if s.startswith("[:", i) and (end := s.find(":]", i + 2)) >= 0:
            name = s[i + 2 : end]
            group = _POSIX.get(name.removeprefix("^"))
            if group is None:
                raise ValueError(f"invalid character class [:{name}:]")
            ranges += _negate(group) if name.startswith("^") else group
            i = end + 2
            continue
        if s.startswith("\\", i) and s[i + 1 : i + 2] in tuple("dDsSwW"):
            group = _PERL[s[i + 1].lower()]
            ranges += _negate(group) if s[i + 1].isupper() else group
            i += 2
            continue
        lo, i = _class_char(s, i)
        hi = lo
        if i + 1 < len(s) and s[i] == "-" and s[i + 1] != "]":
            hi, i = _class_char(s, i + 1)
            if hi < lo:
                raise ValueError("invalid character class range")
        ranges.append((lo, hi))
    return _py_class(ranges, negated), i + 1


def _class_char(s: str, i: int) -> tuple[int, int]:
    if i >= len(s):
        raise ValueError("missing closing ]")
    if s[i] == "\\":
        if s[i + 1 : i + 2] in ("p", "P"):
            raise ValueError("unicode classes are not supported")
        return _escape(s, i)
    return ord(s[i]), i + 1


def _go_tokens(go: str) -> list[tuple[str, str]]:
    """The Go regex ``go`` (RE2, Perl flags) as Python regex pieces:
    ("char", one-character regex), ("assert", zero-width regex) or
    ("op", one of "(?:" ")" "|" "*" "?")."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(go):
        ch = go[i]
        if ch == "\\":
            nxt = go[i + 1 : i + 2]
            if nxt and nxt in "AzbB":
                out.append(("assert", {"A": r"\A", "z": r"\Z", "b": r"(?a:\b)", "B": r"(?a:\B)"}[nxt]))
                i += 2
            elif nxt and nxt in "dDsSwW":
                out.append(("char", _py_class(_PERL[nxt.lower()], nxt.isupper())))
                i += 2
            elif nxt and nxt in "pPQC":
                raise ValueError(f"unsupported escape \\{nxt}")
            else:
                code, i = _escape(go, i)
                out.append(("char", re.escape(chr(code))))
            continue
        if ch == "[":
            src, i = _class(go, i)
            out.append(("char", src))
            continue
        if ch == "(":
            out.append(("op", "(?:"))
        elif ch == "$":
            out.append(("assert", r"\Z"))  # Go's $ (no multi-line) is the very end
        elif ch == "^":
            out.append(("assert", "^"))
        elif ch == ".":
            out.append(("char", "."))
        elif ch in ")|*?":
            out.append(("op", ch))
        else:
            out.append(("char", re.escape(ch)))
        i += 1
    return out


def _to_python(go: str) -> re.Pattern[str]:
    """Compile the Go regex ``go`` (RE2, Perl flags) with Python's re."""
    return re.compile("".join(src for _, src in _go_tokens(go)))


# ---- a linear-time matcher -----------------------------------------------------
# Python's re backtracks: `*a*a*a*a*b` or `**/**/**/x` against a long path
# took exponential time, where Go's RE2 is linear. _Nfa runs the same regex
# as a Thompson automaton over the whole path at once, its state sets cached
# as a lazily built DFA, so a match is one step per character.

_CHAR, _SPLIT, _ASSERT, _MATCH = range(4)
_ASSERTS = {"^": "start", r"\A": "start", r"\Z": "end", r"(?a:\b)": "b", r"(?a:\B)": "B"}
_DFA_CACHE_LIMIT = 10_000


def _literal_run(items: list[tuple]) -> str:
    """The characters the leading ("char") items match, as long as each is one literal."""
    out = []
    for item in items:
        if item[0] != "char" or not item[2]:
            break
        out.append(item[2])
    return "".join(out)


def _quantifiers(tree: tuple, inside_star: bool = False) -> dict[str, int]:
    """How many star, quest and alternation nodes ``tree`` has, and how many
    quantifiers or alternations sit below a star."""
    counts = {"star": 0, "quest": 0, "alt": 0, "nested": 0}
    kind = tree[0]
    if kind in ("star", "quest", "alt"):
        counts[kind] += 1
        counts["nested"] += inside_star
    children = tree[1] if kind in ("cat", "alt") else [tree[1]] if kind in ("star", "quest") else []
    for child in children:
        for key, value in _quantifiers(child, inside_star or kind == "star").items():
            counts[key] += value
    return counts


def _is_word(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


class _Nfa:
    """A regex from _go_tokens (already accepted by Python's re) as an NFA."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.kinds: list[int] = []
        self.args: list[object] = []
        self.outs: list[list[int]] = []
        self._tokens, self._pos = tokens, 0
        tree = self._alternation()
        if self._pos != len(tokens):
            raise ValueError("unbalanced parenthesis")
        self.start = self._build(tree, self._node(_MATCH, None))
        # every patternmatcher regex starts with ^: no new start after position 0
        self.anchored = tree[0] == "cat" and bool(tree[1]) and tree[1][0] == ("assert", "start")
        self._cache: dict[tuple, tuple[bool, frozenset[int]]] = {}
        self._sets: dict[frozenset[int], frozenset[int]] = {}
        self._first = frozenset([self.start])
        self.words = any(arg in ("b", "B") for arg in self.args)  # \b, \B: the context matters
        # With at most one star and one `?`, nothing quantified below the star
        # and no `|`, an anchored regex cannot make Python's re backtrack for
        # long (linear in the path): then Pattern uses re, which is quicker.
        counts = _quantifiers(tree)
        self.backtrack_safe = self.anchored and counts["star"] <= 1 and counts["quest"] <= 1 \
            and counts["nested"] == 0 and counts["alt"] == 0 and not self.words
        # literal text right after ^ or right before $: a quick "no" for most paths
        items = tree[1] if tree[0] == "cat" else []
        self.prefix = _literal_run(items[1:]) if self.anchored else ""
        self.suffix = (_literal_run(items[-2::-1])[::-1]
                       if items and items[-1] == ("assert", "end") else "")

    # -- parsing the tokens ---------------------------------------------------

    def _peek(self) -> tuple[str, str] | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _alternation(self) -> tuple:
        branches = [self._concatenation()]
        while self._peek() == ("op", "|"):
            self._pos += 1
            branches.append(self._concatenation())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def _concatenation(self) -> tuple:
        items = []
        while (tok := self._peek()) is not None and tok not in (("op", "|"), ("op", ")")):
            items.append(self._repeat())
        return ("cat", items)

    def _repeat(self) -> tuple:
        tree = self._atom()
        while (tok := self._peek()) in (("op", "*"), ("op", "?")):
            self._pos += 1
            tree = ("star" if tok[1] == "*" else "quest", tree)
            if self._peek() == ("op", "?"):
                self._pos += 1  # lazy: the same yes/no answer
        return tree

    def _atom(self) -> tuple:
        kind, src = self._tokens[self._pos]
        self._pos += 1
        if kind == "char":
            literal = src[-1:] if src != "." and src == re.escape(src[-1:]) else ""
            return ("char", re.compile(src).fullmatch, literal)
        if kind == "assert":
            return ("assert", _ASSERTS[src])
        if src != "(?:":
            raise ValueError(f"unexpected {src}")
        tree = self._alternation()
        if self._peek() != ("op", ")"):
            raise ValueError("missing )")
        self._pos += 1
        return tree

    # -- the automaton --------------------------------------------------------

    def _node(self, kind: int, arg: object, *outs: int) -> int:
        self.kinds.append(kind)
        self.args.append(arg)
        self.outs.append(list(outs))
        return len(self.kinds) - 1

    def _build(self, tree: tuple, nxt: int) -> int:
        """The start node of ``tree`` followed by node ``nxt``."""
        kind = tree[0]
        if kind == "char":
            return self._node(_CHAR, tree[1], nxt)
        if kind == "assert":
            return self._node(_ASSERT, tree[1], nxt)
        if kind == "cat":
            for item in reversed(tree[1]):
                nxt = self._build(item, nxt)
            return nxt
        if kind == "alt":
            return self._node(_SPLIT, None, *(self._build(b, nxt) for b in tree[1]))
        if kind == "quest":
            return self._node(_SPLIT, None, self._build(tree[1], nxt), nxt)
        loop = self._node(_SPLIT, None)  # star
        self.outs[loop] = [self._build(tree[1], loop), nxt]
        return loop

    def _closure(self, states: frozenset[int], ctx: tuple[bool, bool, bool, bool]) -> set[int]:
        """The character and match nodes reachable without consuming."""
        at_start, at_end, before, after = ctx
        kinds, outs = self.kinds, self.outs
        seen: set[int] = set()
        found: set[int] = set()
        stack = list(states)
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            kind = kinds[node]
            if kind == _SPLIT:
                stack.extend(outs[node])
            elif kind == _ASSERT:
                what = self.args[node]
                if (at_start if what == "start" else at_end if what == "end"
                        else (before != after) if what == "b" else (before == after)):
                    stack.append(outs[node][0])
            else:
                found.add(node)
        return found

    def _advance(self, states: frozenset[int], ctx: tuple[bool, bool, bool, bool],
                 ch: str) -> tuple[bool, frozenset[int]]:
        closed = self._closure(states, ctx)
        matched = any(self.kinds[node] == _MATCH for node in closed)
        nxt: set[int] = set()
        if ch:
            for node in closed:
                if self.kinds[node] == _CHAR and self.args[node](ch):  # type: ignore[operator]
                    nxt.update(self.outs[node])
            if not self.anchored:
                nxt.add(self.start)
        frozen = frozenset(nxt)
        return matched, self._sets.setdefault(frozen, frozen)  # one object per set: cheap keys

    def search(self, text: str) -> bool:
        """Whether the regex matches anywhere in ``text`` (re.search)."""
        if not (text.startswith(self.prefix) and text.endswith(self.suffix)):
            return False
        if self.words:
            return self._search_words(text)
        n = len(text)
        if n == 0:
            return self._advance(self._first, (True, True, False, False), "")[0]
        cache = self._cache
        if len(cache) >= _DFA_CACHE_LIMIT:
            cache.clear()
            self._sets.clear()
        # the first character (^ holds), the middle ones (a plain step), the end ($ holds)
        key: tuple = ("start", text[0])
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = self._advance(self._first, (True, False, False, False), text[0])
        matched, states = hit
        if matched:
            return True
        for i in range(1, n):
            if not states:
                return False
            key = (states, text[i])
            hit = cache.get(key)
            if hit is None:
                hit = cache[key] = self._advance(states, (False, False, False, False), text[i])
            matched, states = hit
            if matched:
                return True
        key = ("end", states)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = self._advance(states, (False, True, False, False), "")
        return hit[0]

    def _search_words(self, text: str) -> bool:
        """search() for a regex with \\b or \\B: the context is part of each step."""
        cache = self._cache
        if len(cache) >= _DFA_CACHE_LIMIT:
            cache.clear()
            self._sets.clear()
        states = self._first
        n = len(text)
        before = False
        for i in range(n + 1):
            ch = text[i] if i < n else ""
            key = (states, i == 0, i == n, before, ch)
            hit = cache.get(key)
            if hit is None:
                after = _is_word(ch) if ch else False
                hit = cache[key] = self._advance(states, (i == 0, i == n, before, after), ch)
            matched, states = hit
            if matched:
                return True
            if not states:
                return False
            before = _is_word(ch)
        return False


# ---- matching -----------------------------------------------------------------


class Pattern:
    """One cleaned pattern; ``exclusion`` for a ``!`` (re-include) pattern."""

    __slots__ = ("_nfa", "_regex", "cleaned", "exclusion", "go_regex", "kind")

    def __init__(self, cleaned: str, exclusion: bool) -> None:
        self.cleaned = cleaned
        self.exclusion = exclusion
        self.kind: str | None = None  # compiled on first use, as in Go
        self.go_regex = ""
        self._nfa: _Nfa | None = None
        self._regex: re.Pattern[str] | None = None  # when backtracking is harmless

    def __str__(self) -> str:
        return self.cleaned

    def compile(self) -> None:
        kind, go = _go_regex(self.cleaned)
        if kind == _REGEXP:
            try:
                regex = _to_python(go)  # Python's re checks the syntax
                self._nfa = _Nfa(_go_tokens(go))  # and this matches, in linear time
            except (ValueError, re.error):
                # patternmatcher fails each match, not at load: keep it that way
                shown = ("!" if self.exclusion else "") + self.cleaned
                raise DockerfileError(
                    f"invalid .dockerignore pattern {go_quote(shown)}: syntax error in pattern"
                ) from None
            if self._nfa.backtrack_safe:
                self._regex = regex
        self.kind, self.go_regex = kind, go

    def match(self, path: str) -> bool:
        """Whether this pattern alone matches ``path`` (no parent logic)."""
        if self.kind is None:
            self.compile()
        if self.kind == _EXACT:
            return path == self.cleaned
        if self.kind == _PREFIX:
            return path.startswith(self.cleaned[:-2])
        if self.kind == _SUFFIX:
            suffix = self.cleaned[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        if self._regex is not None:
            return self._regex.search(path) is not None
        assert self._nfa is not None
        return self._nfa.search(path)


def _parents(path: str) -> list[str]:
    """The parent directories of ``path``, outermost first."""
    parent = _dir(path)
    if parent == ".":
        return []
    dirs = parent.split("/")
    return ["/".join(dirs[: k + 1]) for k in range(len(dirs))]


def _without_trailing_glob(pattern: str) -> str:
    return pattern.removesuffix("/**").removesuffix("/*")


class PatternMatcher:
    """Decides whether context paths are excluded by .dockerignore patterns.

    Paths are relative, '/'-separated and clean (no leading '/', no '.').
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns: list[Pattern] = []
        self.exclusions = False  # any '!' pattern
        for raw in patterns:
            p = raw.strip(_TRIM)
            if not p:
                continue
            p = _clean(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise DockerfileError('illegal exclusion pattern: "!"')
                p = p[1:]
                self.exclusions = True
            if not _glob_syntax_ok(p):
                raise DockerfileError(
                    f"invalid .dockerignore pattern {go_quote(raw.strip(_TRIM))}: "
                    "syntax error in pattern"
                )
            self.patterns.append(Pattern(p, exclusion))
        # with wildcard exceptions any excluded dir may hide a re-included file
        self.only_prefix_exceptions = not any(
            p.exclusion and not _PATTERN_CHARS.isdisjoint(_without_trailing_glob(p.cleaned))
            for p in self.patterns
        )

    def matches(self, path: str) -> bool:
        """Whether ``path`` is excluded: it or a parent dir matches, and no
        later exception pattern re-includes it (MatchesOrParentMatches)."""
        matched = False
        parents: list[str] | None = None
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue  # can't change the outcome
            if not pat.match(path):
                parents = _parents(path) if parents is None else parents
                if not any(pat.match(d) for d in parents):
                    continue
            matched = not pat.exclusion
        return matched

    def matches_using_parent(
        self, path: str, parent: Sequence[bool] = ()
    ) -> tuple[bool, tuple[bool, ...]]:
        """``matches`` for a tree walk: ``parent`` is the info returned for the
        parent directory (empty for top-level entries); returns the verdict and
        the info to pass for this path's children (MatchesUsingParentResults)."""
        if parent and len(parent) != len(self.patterns):
            raise ValueError("wrong number of values in parent match info")
        info = [False] * len(self.patterns)
        matched = False
        for k, pat in enumerate(self.patterns):
            hit = bool(parent) and parent[k]
            if not hit:
                if pat.exclusion != matched:
                    continue
                hit = pat.match(path) or (not parent and any(map(pat.match, _parents(path))))
            info[k] = hit
            if hit:
                matched = not pat.exclusion
        return matched, tuple(info)

    def can_skip_dir(self, path: str) -> bool:
        """For a directory that ``matches``: True when nothing below it can be
        re-included, so a walker may prune it (BuildKit's fsutil rule)."""
        if not self.only_prefix_exceptions:
            return False
        if not self.exclusions:
            return True
        dir_slash = path + "/"
        return not any(
            p.exclusion and (_without_trailing_glob(p.cleaned) + "/").startswith(dir_slash)
            for p in self.patterns
        )


def matches(path: str, patterns: Iterable[str]) -> bool:
    """Like patternmatcher.MatchesOrParentMatches: ``path`` is cleaned first
    and the context root itself is never excluded."""
    matcher = PatternMatcher(patterns)
    path = _clean(path)
    return False if path == "." else matcher.matches(path)


# ---- ignore files -------------------------------------------------------------


def find_ignore_file(context_dir: Path, dockerfile: Path | None) -> Path | None:
    """``<Dockerfile>.dockerignore`` beside the Dockerfile wins over
    ``<context>/.dockerignore``; None when neither exists."""
    if dockerfile is not None:
        specific = Path(dockerfile).with_name(Path(dockerfile).name + ".dockerignore")
        if specific.is_file():
            return specific
    general = Path(context_dir) / ".dockerignore"
    return general if general.is_file() else None


def load_ignore(context_dir: Path, dockerfile: Path | None) -> PatternMatcher:
    """The matcher for a build context (empty when there's no ignore file)."""
    found = find_ignore_file(context_dir, dockerfile)
    if found is None:
        return PatternMatcher()
    try:
        return PatternMatcher(parse_ignore(found.read_bytes()))
    except DockerfileError as exc:
        raise DockerfileError(exc.message, filename=str(found)) from None

""".dockerignore reading and matching, with moby/patternmatcher's semantics.

A pattern is cleaned, syntax-checked like Go's filepath.Match, then compared
exactly, as a prefix (``dir/**``), a suffix (``**/name``) or through the Go
regex patternmatcher builds, translated to Python's ``re`` so that odd corners
(``[...]`` classes, ``\\`` escapes) behave as in Go.  A path is excluded when
it or a parent directory matches, unless a later ``!`` pattern re-includes it.
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


def _to_python(go: str) -> re.Pattern[str]:
    """Compile the Go regex ``go`` (RE2, Perl flags) with Python's re."""
    out: list[str] = []
    i = 0
    while i < len(go):
        ch = go[i]
        if ch == "\\":
            nxt = go[i + 1 : i + 2]
            if nxt and nxt in "AzbB":
                out.append({"A": r"\A", "z": r"\Z", "b": r"(?a:\b)", "B": r"(?a:\B)"}[nxt])
                i += 2
            elif nxt and nxt in "dDsSwW":
                out.append(_py_class(_PERL[nxt.lower()], nxt.isupper()))
                i += 2
            elif nxt and nxt in "pPQC":
                raise ValueError(f"unsupported escape \\{nxt}")
            else:
                code, i = _escape(go, i)
                out.append(re.escape(chr(code)))
            continue
        if ch == "[":
            src, i = _class(go, i)
            out.append(src)
            continue
        if ch == "(":
            out.append("(?:")
        elif ch == "$":
            out.append(r"\Z")  # Go's $ (no multi-line) is the very end
        elif ch in ".^)|*?":
            out.append(ch)
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out))


# ---- matching -----------------------------------------------------------------


class Pattern:
    """One cleaned pattern; ``exclusion`` for a ``!`` (re-include) pattern."""

    __slots__ = ("cleaned", "exclusion", "kind", "go_regex", "_regex")

    def __init__(self, cleaned: str, exclusion: bool) -> None:
        self.cleaned = cleaned
        self.exclusion = exclusion
        self.kind: str | None = None  # compiled on first use, as in Go
        self.go_regex = ""
        self._regex: re.Pattern[str] | None = None

    def __str__(self) -> str:
        return self.cleaned

    def compile(self) -> None:
        kind, go = _go_regex(self.cleaned)
        if kind == _REGEXP:
            try:
                self._regex = _to_python(go)
            except (ValueError, re.error):
                # patternmatcher fails each match, not at load: keep it that way
                shown = ("!" if self.exclusion else "") + self.cleaned
                raise DockerfileError(
                    f"invalid .dockerignore pattern {go_quote(shown)}: syntax error in pattern"
                ) from None
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
        assert self._regex is not None
        return self._regex.search(path) is not None


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

"""License strings from package databases, turned into SPDX license expressions.

Databases say licenses many ways: apk lists them separated by spaces
("MIT BSD-2-Clause") or as an expression ("GPL-2.0-or-later AND MIT"),
Python metadata carries a name ("Apache 2.0") or, newer, an expression.
Identifiers we know are kept; anything else becomes a ``LicenseRef-`` whose
text is recorded, which keeps every expression valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# SPDX license list identifiers commonly met in distribution and PyPI packages.
KNOWN_IDS = frozenset("""
0BSD AGPL-3.0-only AGPL-3.0-or-later Apache-1.1 Apache-2.0 Artistic-1.0-Perl Artistic-2.0
Beerware BlueOak-1.0.0 BSD-1-Clause BSD-2-Clause BSD-3-Clause BSD-4-Clause BSL-1.0 bzip2-1.0.6
CC-BY-4.0 CC-BY-SA-4.0 CC0-1.0 curl EPL-1.0 EPL-2.0 FTL GFDL-1.3-or-later GPL-1.0-or-later
GPL-2.0-only GPL-2.0-or-later GPL-3.0-only GPL-3.0-or-later HPND ISC LGPL-2.0-only
LGPL-2.0-or-later LGPL-2.1-only LGPL-2.1-or-later LGPL-3.0-only LGPL-3.0-or-later MIT MIT-0
MPL-1.1 MPL-2.0 NCSA OFL-1.1 OpenSSL PHP-3.01 PostgreSQL PSF-2.0 Python-2.0 Ruby Sleepycat TCL
Unicode-DFS-2016 Unlicense Vim WTFPL X11 Zlib
""".split())  # noqa: SIM905
_BY_LOWER = {i.lower(): i for i in KNOWN_IDS}
# old identifiers the SPDX list deprecated, and a few spellings seen in the wild
_ALIASES = {
    "gpl-2.0": "GPL-2.0-only", "gpl-2.0+": "GPL-2.0-or-later", "gpl-3.0": "GPL-3.0-only",
    "gpl-3.0+": "GPL-3.0-or-later", "lgpl-2.0": "LGPL-2.0-only", "lgpl-2.0+": "LGPL-2.0-or-later",
    "lgpl-2.1": "LGPL-2.1-only", "lgpl-2.1+": "LGPL-2.1-or-later", "lgpl-3.0": "LGPL-3.0-only",
    "lgpl-3.0+": "LGPL-3.0-or-later", "agpl-3.0": "AGPL-3.0-only", "gpl-1.0+": "GPL-1.0-or-later",
    "apache 2.0": "Apache-2.0", "apache-2": "Apache-2.0", "apache license 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0", "apache license, version 2.0": "Apache-2.0",
    "mit license": "MIT", "bsd-3": "BSD-3-Clause", "bsd-2": "BSD-2-Clause", "psf": "PSF-2.0",
}
_OPERATORS = {"and": "AND", "or": "OR", "with": "WITH"}
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_IDCHARS = re.compile(r"^[A-Za-z0-9.\-]+\+?$")


@dataclass
class License:
    """An SPDX expression ('' when nothing is known) and the LicenseRef texts it uses."""

    expression: str = ""
    refs: dict[str, str] = field(default_factory=dict)  # LicenseRef-x -> text found

    @property
    def single_id(self) -> str | None:
        """The identifier when the expression is one listed license."""
        return self.expression if self.expression in KNOWN_IDS else None


def parse_license(raw: str, *, spaces_separate: bool = False) -> License:
    """``spaces_separate``: 'A B' means A AND B (apk), else it is one name."""
    raw = " ".join(raw.split())
    if not raw:
        return License()
    alias = _ALIASES.get(raw.lower())
    if alias is not None:
        return License(alias)
    tokens = _TOKEN.findall(raw)
    has_ops = any(t.lower() in _OPERATORS for t in tokens)
    if not has_ops and not spaces_separate:
        words = [t for t in tokens if t not in ("(", ")")]
        if len(words) != 1:
            return _single(raw)
        tokens = words
    out: list[str] = []
    refs: dict[str, str] = {}
    depth = 0
    expect_term = True
    for tok in tokens:
        op = _OPERATORS.get(tok.lower())
        if tok == "(":
            if not expect_term:
                out.append("AND")
            out.append(tok)
            depth += 1
            expect_term = True
        elif tok == ")":
            depth -= 1
            if depth < 0 or expect_term:
                return _single(raw)
            out.append(tok)
        elif op is not None:
            if expect_term:
                return _single(raw)
            out.append(op)
            expect_term = True
        else:
            if not expect_term:
                out.append("AND")  # apk's space-separated list
            if out and out[-1] == "WITH":
                if not _IDCHARS.match(tok):
                    return _single(raw)
                out.append(tok)
            else:
                ident = _identifier(tok, refs)
                out.append(ident)
            expect_term = False
    if depth != 0 or expect_term:
        return _single(raw)
    expression = " ".join(out).replace("( ", "(").replace(" )", ")")
    return License(expression, refs)


def _identifier(token: str, refs: dict[str, str]) -> str:
    low = token.lower()
    if low in _BY_LOWER:
        return _BY_LOWER[low]
    if _ALIASES.get(low):
        return _ALIASES[low]
    if low.endswith("+") and low[:-1] in _BY_LOWER:
        return _BY_LOWER[low[:-1]] + "+"
    if token.startswith("LicenseRef-") and _IDCHARS.match(token):
        return token
    ref = license_ref(token)
    refs[ref] = token
    return ref


def _single(raw: str) -> License:
    ref = license_ref(raw)
    return License(ref, {ref: raw})


def license_ref(text: str) -> str:
    """A LicenseRef- identifier made from free text: letters, digits, '.', '-'."""
    body = re.sub(r"[^A-Za-z0-9.]+", "-", text.replace("+", "-plus")).strip("-.")
    return "LicenseRef-" + (body[:64] or "unknown")

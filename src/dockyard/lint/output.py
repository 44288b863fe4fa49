"""Findings as text (one ``file:line:col: severity: message [Rule]`` per
line), JSON (a list of objects) and SARIF 2.1.0 (for code-scanning UIs)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from .. import __version__
from .model import RULES, Finding

__all__ = ["format_json", "format_sarif", "format_text"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def format_text(findings: Iterable[Finding]) -> str:
    lines = [f"{f.filename}:{f.line}:{f.column}: {f.severity}: {f.message} [{f.rule}]" for f in findings]
    return "\n".join(lines) + ("\n" if lines else "")


def format_json(findings: Iterable[Finding]) -> str:
    return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"


def _sarif_rule(name: str) -> dict:
    r = RULES.get(name)
    entry: dict = {"id": name, "name": name,
                   "shortDescription": {"text": r.description if r else name},
                   "defaultConfiguration": {"level": _SARIF_LEVEL.get(r.severity if r else "warning", "warning")},
                   "properties": {"origin": r.origin if r else "dockyard"}}
    if r and r.url:
        entry["helpUri"] = r.url
    return entry


def format_sarif(findings: Iterable[Finding]) -> str:
    findings = list(findings)
    # every rule is listed, so a code-scanning UI can show what was checked
    names = list(RULES) + sorted({f.rule for f in findings} - set(RULES))
    index = {name: i for i, name in enumerate(names)}
    results = []
    for f in findings:
        region = {"startLine": f.line, "startColumn": f.column,
                  "endLine": f.end_line or f.line, "endColumn": f.end_column or f.column}
        results.append({
            "ruleId": f.rule, "ruleIndex": index[f.rule],
            "level": _SARIF_LEVEL.get(f.severity, "warning"),
            "message": {"text": f.message},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": f.filename.replace("\\", "/")},
                "region": region}}],
        })
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "dockyard", "version": __version__,
                                "rules": [_sarif_rule(n) for n in names]}},
            "results": results,
        }],
    }
    return json.dumps(doc, indent=2) + "\n"

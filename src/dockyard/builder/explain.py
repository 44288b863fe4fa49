"""Why a build step missed the cache, in words: which input changed since
the last time the same step ran."""

from __future__ import annotations

import json


def explain(previous: dict, current: dict) -> str:
    """Say which input of a step differs from the last time it ran."""
    reasons = []
    for key in sorted(set(previous) | set(current)):
        a, b = previous.get(key), current.get(key)
        if a == b:
            continue
        if key == "parent":
            reasons.append("the previous step or base image changed")
        elif isinstance(a, dict) and isinstance(b, dict):
            for name in sorted(set(a) | set(b)):
                if name not in a:
                    reasons.append(f"{key} {name} added")
                elif name not in b:
                    reasons.append(f"{key} {name} removed")
                elif a[name] != b[name]:
                    reasons.append(f"{key} {name} changed")
        else:
            reasons.append(f"{key} changed: {short(a)} -> {short(b)}")
    return "; ".join(reasons) if reasons else "no previous result for this step"


def short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."

"""Helpers shared by the CLI's command modules."""

from __future__ import annotations

import click


def _store(ctx: click.Context):
    from ..store import Store

    obj = ctx.ensure_object(dict)
    if "store" not in obj:
        obj["store"] = Store(obj.get("root"))
    return obj["store"]

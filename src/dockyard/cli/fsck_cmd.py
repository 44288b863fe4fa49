"""`dockyard fsck`; the main CLI registers ``COMMANDS``."""

from __future__ import annotations

import sys

import click

__all__ = ["COMMANDS", "fsck"]


@click.command()
@click.option("--repair/--no-repair", default=True, show_default=True,
              help="Remove leftovers of interrupted commands (stray ingest files, orphaned "
                   "snapshots, leftover mounts, dangling tags and cache entries).")
@click.pass_context
def fsck(ctx, repair):
    """Verify the store: every blob digest, every image reference, every snapshot.

    Prints one line per finding. Exits 1 when something an image needs is
    missing or corrupt (load, pull or build it again).
    """
    from ..store import Store
    from ..store.fsck import check

    obj = ctx.find_root().obj or {}
    store = obj.get("store") or Store(obj.get("root"))
    report = check(store, repair=repair)
    for line in report.lines():
        click.echo(line)
    click.echo(report.summary(), err=True)
    if not report.ok:
        sys.exit(1)


COMMANDS = [fsck]

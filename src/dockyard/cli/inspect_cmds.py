"""`dockyard layers`, `dockyard diff` and `dockyard sbom`; the main CLI registers ``COMMANDS``."""

from __future__ import annotations

import json
import sys

import click

__all__ = ["COMMANDS", "diff", "layers", "sbom"]


def _store(ctx: click.Context):
    from ..store import Store

    obj = ctx.find_root().ensure_object(dict)
    if "store" not in obj:
        obj["store"] = Store(obj.get("root"))
    return obj["store"]


def _image(ctx: click.Context, name: str):
    from .. import api

    return api.get_image(_store(ctx), name)


def _echo_json(obj: object) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


@click.command()
@click.argument("image")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="Output a table (default) or JSON.")
@click.option("--html", "html_path", metavar="FILE",
              help="Also write a self-contained HTML report with a treemap of the filesystem.")
@click.option("--top", type=int, default=None,
              help="List at most this many wasted files (table default 20, JSON all).")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the instructions.")
@click.pass_context
def layers(ctx, image, fmt, html_path, top, no_trunc):
    """Show each layer's size, instruction, changes and wasted space."""
    from ..analysis import format_layers, layers_report, scan_image, write_html

    store = _store(ctx)
    img = _image(ctx, image)
    with store.lock():
        scan = scan_image(store, img)
    report = layers_report(store, img, name=image, scan=scan)
    if html_path:
        write_html(scan, report, html_path)
    if fmt == "json":
        if top is not None:
            report["wasted_files"] = report["wasted_files"][:top]
        _echo_json(report)
    else:
        click.echo(format_layers(report, width=0 if no_trunc else 60, top=20 if top is None else top))
    if html_path:
        click.echo(f"wrote {html_path}", err=True)


@click.command()
@click.argument("image1")
@click.argument("image2")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="Output a summary (default) or JSON.")
@click.option("--limit", type=int, default=50, show_default=True,
              help="Files listed in the summary.")
@click.pass_context
def diff(ctx, image1, image2, fmt, limit):
    """Show the files, sizes, config and packages that differ between two images."""
    from ..analysis import diff_images, format_diff

    store = _store(ctx)
    a, b = _image(ctx, image1), _image(ctx, image2)
    with store.lock():
        result = diff_images(store, a, b, names=(image1, image2))
    if fmt == "json":
        _echo_json(result)
    else:
        click.echo(format_diff(result, limit=limit))


@click.command()
@click.argument("image")
@click.option("--format", "fmt", type=click.Choice(["spdx-json", "cyclonedx-json", "spdx", "cyclonedx"]),
              default="spdx-json", show_default=True, help="Document format.")
@click.option("-o", "--output", help="Write to this file instead of standard output.")
@click.pass_context
def sbom(ctx, image, fmt, output):
    """Write a software bill of materials of the packages found in an image."""
    from ..analysis import document_bytes, sbom_document

    store = _store(ctx)
    img = _image(ctx, image)
    with store.lock():
        doc = sbom_document(store, img, fmt, name=image)
    data = document_bytes(doc)
    if output:
        with open(output, "wb") as f:
            f.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


COMMANDS = [layers, diff, sbom]

"""The self-contained HTML page of `dockyard layers --html`: a zoomable treemap
of the image's filesystem, coloured by the layer that wrote each file, with
one view per layer where the bytes later overwritten or deleted are marked.

Everything is inline (CSS, JS, data); the page fetches nothing. File names
are data: the script puts them in the page with textContent only.
"""

from __future__ import annotations

import html
import json

from .. import __version__
from ._html_assets import CSS, JS
from .report import human_size
from .scan import Entry, ImageScan


def _tree(entries: list[Entry]) -> dict:
    """Nested {n, s, l, c, w} nodes (name, bytes, layer, children, wasted) from
    a flat list; directories sum their children; the biggest come first."""
    root: dict = {"n": "", "s": 0, "l": 0, "c": {}}
    for e in entries:
        node = root
        parts = e.path.split("/")
        for part in parts[:-1]:
            child = node["c"].get(part)
            if child is None or "c" not in child:
                child = node["c"][part] = {"n": part, "s": 0, "l": e.layer, "c": {}}
            node = child
        leaf = node["c"].get(parts[-1])
        if e.kind == "dir":
            if leaf is None or "c" not in leaf:
                node["c"][parts[-1]] = {"n": parts[-1], "s": 0, "l": e.layer, "c": {}}
            else:
                leaf["l"] = e.layer
            continue
        item = {"n": parts[-1], "s": e.size, "l": e.layer}
        if e.gone is not None:
            item["w"] = 1
        node["c"][parts[-1]] = item
    return _finish(root)


def _finish(node: dict) -> dict:
    if "c" not in node:
        return node
    kids = [_finish(k) for k in node["c"].values()]
    kids.sort(key=lambda k: (-k["s"], k["n"]))
    node["c"] = kids
    node["s"] = sum(k["s"] for k in kids)
    return node


def report_data(scan: ImageScan, report: dict) -> dict:
    final = [e for e in scan.files.values() if not e.implicit]
    return {
        "image": report["image"],
        "size": report["size"],
        "content": report["content_size"],
        "wasted": report["wasted"],
        "efficiency": report["efficiency"],
        "layers": [{k: layer[k] for k in ("index", "digest", "size", "instruction", "added",
                                           "changed", "removed", "wasted")}
                   for layer in report["layers"]],
        "tree": _tree(sorted(final, key=lambda e: e.path)),
        "layerTrees": [_tree(layer.entries) for layer in scan.layers],
        "wastedFiles": report["wasted_files"][:200],
    }


def _script_json(obj: object) -> str:
    """JSON that cannot end the <script> element it sits in."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(scan: ImageScan, report: dict) -> str:
    data = report_data(scan, report)
    name = html.escape(report["image"]["name"])
    e = html.escape
    rows = []
    for layer in report["layers"]:
        rows.append(
            f'<tr data-layer="{layer["index"]}"><td><span class="swatch" data-layer="{layer["index"]}">'
            f'</span>{layer["index"]}</td><td class="num">{human_size(layer["size"])}</td>'
            f'<td class="num">{layer["added"]}</td><td class="num">{layer["changed"]}</td>'
            f'<td class="num">{layer["removed"]}</td><td class="num">{human_size(layer["wasted"])}</td>'
            f'<td class="cmd" title="{e(layer["created_by"])}">{e(layer["instruction"])}</td></tr>')
    wasted_rows = [
        f'<tr><td class="num">{human_size(w["size"])}</td><td class="num">{w["layer"]}</td>'
        f'<td>{e(w["how"])} in layer {w["by"]}</td><td class="path">{e(w["path"])}</td></tr>'
        for w in report["wasted_files"][:50]]
    wasted_table = (
        '<table id="wasted"><thead><tr><th>Size</th><th>Layer</th><th>Fate</th><th>Path</th></tr>'
        f'</thead><tbody>{"".join(wasted_rows)}</tbody></table>' if wasted_rows
        else '<p class="none">No file is overwritten or deleted by a later layer.</p>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="dockyard {e(__version__)}">
<title>Layers of {name}</title>
<style>{CSS}</style></head>
<body>
<header><h1>{name}</h1><div class="id">{e(report["image"]["id"])}</div></header>
<section class="cards">
<div class="card"><div class="k">Image size</div><div class="v" id="total-size">{human_size(report["size"])}</div></div>
<div class="card"><div class="k">Layers</div><div class="v">{len(report["layers"])}</div></div>
<div class="card"><div class="k">Wasted</div><div class="v" id="wasted-size">{human_size(report["wasted"])}</div></div>
<div class="card"><div class="k">Efficiency</div><div class="v" id="efficiency">{report["efficiency"] * 100:.1f} %</div></div>
</section>
<section class="controls">
<label>View <select id="view"></select></label>
<nav id="crumbs" aria-label="path"></nav>
<span class="hint">click a directory to zoom in; right-click, Backspace or a path segment to zoom out</span>
</section>
<div id="treemap" role="img" aria-label="treemap of the filesystem"></div>
<div id="legend"></div>
<h2>Layers</h2>
<table id="layers"><thead><tr><th>Layer</th><th>Size</th><th>Added</th><th>Changed</th>
<th>Removed</th><th>Wasted</th><th>Created by</th></tr></thead><tbody>{"".join(rows)}</tbody></table>
<h2>Wasted space</h2>
{wasted_table}
<div id="tip" hidden></div>
<script id="report-data" type="application/json">{_script_json(data)}</script>
<script>{JS}</script>
</body></html>
"""


def write_html(scan: ImageScan, report: dict, path: str) -> None:
    text = render_html(scan, report)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)

"""`dockyard layers`: what each layer holds, what it wastes, and the image's
efficiency score, as a JSON-ready dict and as a readable table."""

from __future__ import annotations

from ..store import Image, Store
from .scan import ImageScan, scan_image


def human_size(n: float) -> str:
    """Docker's decimal units: 512B, 2.13MB."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{int(n)}B" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    return str(n)


def image_name(image: Image, name: str | None = None) -> str:
    """What to call an image: the name given, its first tag (familiar), or its short id."""
    if name:
        return name
    if image.tags:
        from ..reference import Reference

        return Reference.parse(image.tags[0]).familiar
    return image.id.removeprefix("sha256:")[:12]


def layers_report(store: Store, image: Image, *, name: str | None = None,
                  top: int | None = None, scan: ImageScan | None = None) -> dict:
    """Per layer: size, instruction, paths added/changed/removed, wasted bytes;
    then the image's totals, efficiency and the largest wasted files."""
    scan = scan or scan_image(store, image)
    wasted = scan.wasted_entries()
    if top is not None:
        wasted = wasted[:top]
    return {
        "image": {"name": image_name(image, name), "id": image.id,
                  "manifest_digest": image.manifest_digest, "tags": list(image.tags)},
        "layers": [{
            "index": layer.index,
            "digest": layer.digest,
            "diff_id": layer.diff_id,
            "size": layer.size,
            "content_size": layer.content,
            "created_by": layer.created_by,
            "created": layer.created,
            "instruction": layer.instruction,
            "added": layer.added,
            "changed": layer.changed,
            "removed": layer.removed,
            "wasted": layer.wasted,
        } for layer in scan.layers],
        "size": scan.size,
        "content_size": scan.content,
        "wasted": scan.wasted,
        "efficiency": round(scan.efficiency, 6),
        "wasted_files": [{"path": "/" + e.path, "size": e.size, "layer": e.layer,
                          "by": e.gone, "how": e.how} for e in wasted],
    }


def format_layers(report: dict, *, width: int = 60, top: int = 20) -> str:
    """The report as text: a layer table, the totals, the largest wasted files."""
    rows: list[tuple[str, ...]] = [("LAYER", "SIZE", "ADDED", "CHANGED", "REMOVED", "WASTED",
                                    "CREATED BY")]
    for layer in report["layers"]:
        by = " ".join(layer["instruction"].split())
        if width and len(by) > width:
            by = by[: width - 3] + "..."
        rows.append((str(layer["index"]), human_size(layer["size"]), str(layer["added"]),
                     str(layer["changed"]), str(layer["removed"]), human_size(layer["wasted"]), by))
    lines = [f"Image: {report['image']['name']} ({report['image']['id'][:19]})", ""]
    lines += _table(rows, right=(1, 2, 3, 4, 5))
    lines += [
        "",
        f"Total image size:       {human_size(report['size'])}",
        f"File contents:          {human_size(report['content_size'])}",
        f"Wasted space:           {human_size(report['wasted'])}",
        f"Image efficiency score: {report['efficiency'] * 100:.1f} %",
    ]
    wasted = report["wasted_files"][:top]
    if wasted:
        lines += ["", "Largest wasted files:"]
        rows = [("SIZE", "LAYER", "FATE", "PATH")]  # a new table
        for w in wasted:
            rows.append((human_size(w["size"]), str(w["layer"]), f"{w['how']} in {w['by']}", w["path"]))
        lines += _table(rows, right=(0, 1))
        more = len(report["wasted_files"]) - len(wasted)
        if more > 0:
            lines.append(f"... and {more} more")
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]], right: tuple[int, ...] = ()) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))]
        out.append("  ".join(cells).rstrip())
    return out

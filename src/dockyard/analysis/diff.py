"""`dockyard diff IMAGE1 IMAGE2`: files, sizes, config and packages that differ.

Both images are scanned once without hashing. Two entries that came from
the same layer blob are the same bytes; only regular files of equal size
that came from different blobs are hashed, in a second read of just the
layers that hold them.
"""

from __future__ import annotations

import json

from ..store import Image, Store
from .packages import diff_packages, find_packages, is_package_db
from .report import human_size, image_name
from .scan import Entry, ImageScan, read_layer, scan_image

# config keys compared one by one (maps per key, Env per variable)
_CONFIG_KEYS = ("User", "Env", "Entrypoint", "Cmd", "WorkingDir", "ExposedPorts", "Volumes",
                "Labels", "StopSignal", "Healthcheck", "Shell", "OnBuild", "ArgsEscaped")
_TOP_KEYS = ("architecture", "os", "variant", "os.version")


def diff_images(store: Store, a: Image, b: Image, *, names: tuple[str, str] | None = None) -> dict:
    sa = scan_image(store, a, capture=is_package_db)
    sb = scan_image(store, b, capture=is_package_db)
    names = names or (image_name(a), image_name(b))
    files = diff_files(store, sa, sb)
    shared = len(set(a.diff_ids) & set(b.diff_ids))
    return {
        "images": [_summary(names[0], sa), _summary(names[1], sb)],
        "size_delta": sb.size - sa.size,
        "layers": {"shared": shared, "only_first": len(set(a.diff_ids)) - shared,
                   "only_second": len(set(b.diff_ids)) - shared},
        "files": files,
        "config": diff_config(a.config, b.config),
        "packages": diff_packages(find_packages(sa.files), find_packages(sb.files)),
    }


def _summary(name: str, scan: ImageScan) -> dict:
    return {"name": name, "id": scan.image.id, "size": scan.size, "content_size": scan.content,
            "layers": len(scan.layers), "files": len(scan.files)}


def _file(e: Entry) -> dict:
    out = {"path": "/" + e.path, "kind": e.kind, "size": e.size}
    if e.kind in ("symlink", "hardlink"):
        out["target"] = e.link
    return out


def diff_files(store: Store, sa: ImageScan, sb: ImageScan) -> dict:
    fa, fb = sa.files, sb.files
    added = [_file(fb[p]) for p in sorted(fb.keys() - fa.keys())]
    removed = [_file(fa[p]) for p in sorted(fa.keys() - fb.keys())]
    changed: list[dict] = []
    pending: list[tuple[str, Entry, Entry]] = []
    for path in sorted(fa.keys() & fb.keys()):
        ea, eb = fa[path], fb[path]
        what = []
        if ea.kind != eb.kind:
            what.append("type")
        elif ea.kind == "file" and ea.size != eb.size:
            what.append("content")
        if ea.kind == eb.kind and ea.link != eb.link:
            what.append("target")
        if (ea.mode & 0o7777) != (eb.mode & 0o7777):
            what.append("mode")
        if (ea.uid, ea.gid) != (eb.uid, eb.gid):
            what.append("owner")
        same_blob = sa.layers[ea.layer].diff_id == sb.layers[eb.layer].diff_id
        if set(what) <= {"mode", "owner"} and ea.kind == "file" and ea.size and not same_blob:
            pending.append((path, ea, eb))
        if what:
            changed.append(_changed(ea, eb, what))
    if pending:
        ha = _hashes(store, sa, [(p, ea) for p, ea, _ in pending])
        hb = _hashes(store, sb, [(p, eb) for p, _, eb in pending])
        by_path = {c["path"]: c for c in changed}
        for path, ea, eb in pending:
            if ha.get(path) != hb.get(path):
                row = by_path.get("/" + path)
                if row is None:
                    row = _changed(ea, eb, [])
                    changed.append(row)
                row["changes"].insert(0, "content")
        changed.sort(key=lambda c: c["path"])
    return {
        "added": added, "removed": removed, "changed": changed,
        "summary": {"added": len(added), "removed": len(removed), "changed": len(changed),
                    "bytes_added": sum(f["size"] for f in added),
                    "bytes_removed": sum(f["size"] for f in removed)},
    }


def _changed(ea: Entry, eb: Entry, what: list[str]) -> dict:
    row = {"path": "/" + ea.path, "kind": eb.kind, "size_first": ea.size, "size_second": eb.size,
           "changes": list(what)}
    if "mode" in what:
        row["mode"] = [oct(ea.mode & 0o7777), oct(eb.mode & 0o7777)]
    if "owner" in what:
        row["owner"] = [f"{ea.uid}:{ea.gid}", f"{eb.uid}:{eb.gid}"]
    if "target" in what or "type" in what:
        row["target"] = [ea.link, eb.link]
    return row


def _hashes(store: Store, scan: ImageScan, wanted: list[tuple[str, Entry]]) -> dict[str, str]:
    """sha256 of the given final entries, reading only the layers that wrote them."""
    by_layer: dict[int, set[str]] = {}
    for path, entry in wanted:
        by_layer.setdefault(entry.layer, set()).add(path)
    out: dict[str, str] = {}
    for index, paths in sorted(by_layer.items()):
        with store.blobs.open(scan.layers[index].digest) as blob:
            for e in read_layer(blob, index=index, hashing=True, only=paths):
                if e.digest is not None:
                    out[e.path] = e.digest  # the last one in the tar wins, as when applied
    return out


def _env(values) -> dict[str, str]:
    out = {}
    for item in values or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def diff_config(ca: dict, cb: dict) -> list[dict]:
    """Config differences as [{key, first, second}], None where a side lacks the key."""
    out: list[dict] = []
    for key in _TOP_KEYS:
        if ca.get(key) != cb.get(key):
            out.append({"key": key, "first": ca.get(key), "second": cb.get(key)})
    a, b = ca.get("config") or {}, cb.get("config") or {}
    for key in _CONFIG_KEYS:
        va, vb = a.get(key), b.get(key)
        if key == "Env":
            va, vb = _env(va), _env(vb)
        if isinstance(va, dict) or isinstance(vb, dict):
            va, vb = va or {}, vb or {}
            for sub in sorted(va.keys() | vb.keys()):
                if va.get(sub) != vb.get(sub):
                    out.append({"key": f"{key}.{sub}", "first": va.get(sub), "second": vb.get(sub)})
        elif (va or None) != (vb or None):
            out.append({"key": key, "first": va, "second": vb})
    return out


def format_diff(d: dict, *, limit: int = 50) -> str:
    ia, ib = d["images"]
    lines = [f"--- {ia['name']} ({ia['id'][:19]})", f"+++ {ib['name']} ({ib['id'][:19]})", ""]
    sign = "+" if d["size_delta"] >= 0 else "-"
    lines.append(f"Size: {human_size(ia['size'])} -> {human_size(ib['size'])} "
                 f"({sign}{human_size(abs(d['size_delta']))})")
    lay = d["layers"]
    lines.append(f"Layers: {ia['layers']} -> {ib['layers']} ({lay['shared']} shared)")
    s = d["files"]["summary"]
    lines += ["", (f"Files: {s['added']} added (+{human_size(s['bytes_added'])}), "
                   f"{s['removed']} removed (-{human_size(s['bytes_removed'])}), "
                   f"{s['changed']} changed")]
    rows = ([("A", f["path"], _what(f)) for f in d["files"]["added"]]
            + [("D", f["path"], _what(f)) for f in d["files"]["removed"]]
            + [("C", c["path"], _sizes(c)) for c in d["files"]["changed"]])
    rows.sort(key=lambda r: r[1])
    for flag, path, extra in rows[:limit]:
        lines.append(f"  {flag} {path}  {extra}")
    if len(rows) > limit:
        lines.append(f"  ... and {len(rows) - limit} more (use --format json for all)")
    if d["config"]:
        lines += ["", "Config:"]
        for c in d["config"]:
            lines.append(f"  {c['key']}: {_show(c['first'])} -> {_show(c['second'])}")
    p = d["packages"]
    if p["added"] or p["removed"] or p["changed"]:
        lines += ["", "Packages:"]
        lines += [f"  + {r['name']} {r['version']} ({r['type']})" for r in p["added"]]
        lines += [f"  - {r['name']} {r['version']} ({r['type']})" for r in p["removed"]]
        lines += [f"  ~ {r['name']} {r['from']} -> {r['to']} ({r['type']})" for r in p["changed"]]
    return "\n".join(lines)


def _sizes(c: dict) -> str:
    return (f"{human_size(c['size_first'])} -> {human_size(c['size_second'])} "
            f"[{', '.join(c['changes'])}]")


def _what(f: dict) -> str:
    if f["kind"] == "file":
        return human_size(f["size"])
    return f"-> {f['target']}" if "target" in f else f"({f['kind']})"


def _show(value) -> str:
    return "(none)" if value is None else json.dumps(value) if not isinstance(value, str) else value

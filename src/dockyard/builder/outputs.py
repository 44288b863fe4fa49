"""Where a finished build goes besides the store: `--output` exporters and
the `--metadata-file` record, with the same names BuildKit uses."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..errors import BuildError
from ..store import Image, Store
from ..store.store import remove_tree

TYPES = ("local", "tar", "oci", "docker", "registry", "image")


def parse_output(spec: str) -> dict[str, str]:
    """`type=local,dest=out` or a bare path (meaning type=local)."""
    if "=" not in spec.split(",", 1)[0]:
        return {"type": "local", "dest": spec}
    fields: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise BuildError(f"invalid --output {spec!r}: {part!r} is not key=value")
        fields[key.strip()] = value.strip()
    kind = fields.get("type")
    if kind not in TYPES:
        raise BuildError(f"invalid --output {spec!r}: type must be one of {', '.join(TYPES)}")
    if kind in ("local", "tar", "oci", "docker") and not fields.get("dest"):
        if kind == "local":
            raise BuildError(f"invalid --output {spec!r}: dest= is required")
    return fields


def parse_annotations(values) -> dict[str, str]:
    """--annotation [manifest:|index:]KEY=VALUE; index ones come back with
    their `index:` prefix kept, for the multi-platform index."""
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise BuildError(f"invalid --annotation {value!r}: expected KEY=VALUE")
        kind, colon, name = key.partition(":")
        if colon and kind in ("manifest", "index", "manifest-descriptor", "index-descriptor"):
            if kind in ("manifest-descriptor", "index-descriptor"):
                raise BuildError(f"--annotation {value!r}: {kind} annotations are not supported")
            key = name if kind == "manifest" else f"index:{name}"
        out[key] = val
    return out


def split_annotations(annotations: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(manifest annotations, index annotations)."""
    manifest = {k: v for k, v in annotations.items() if not k.startswith("index:")}
    index = {k[6:]: v for k, v in annotations.items() if k.startswith("index:")}
    return manifest, index


def unpack(store: Store, image: Image, dest: Path) -> None:
    from ..layer import apply_layer

    dest.mkdir(parents=True, exist_ok=True)
    for digest in image.layer_digests:
        with store.blobs.open(digest) as f:
            apply_layer(f, dest)


def export(store: Store, image: Image, output: dict[str, str], tags: list[str]) -> None:
    kind = output["type"]
    dest = output.get("dest", "")
    if kind == "local":
        unpack(store, image, Path(dest))
    elif kind == "tar":
        from ..layer import write_tree

        tmp = Path(tempfile.mkdtemp(dir=store.tmp_dir))
        try:
            unpack(store, image, tmp / "root")
            _write(dest, lambda f: write_tree(tmp / "root", f))
        finally:
            remove_tree(tmp)
    elif kind in ("oci", "docker"):
        from ..archive import docker as docker_archive, oci as oci_archive

        names = [n for n in output.get("name", "").split(";") if n] or None
        if names:
            from ..reference import Reference

            names = [str(Reference.parse(n)) for n in names]
        writer = oci_archive.save if kind == "oci" else docker_archive.save
        _write(dest, lambda f: writer(store, [(image, names or list(tags))], f))
    elif kind in ("registry", "image"):
        if kind == "image" and output.get("push", "false") != "true":
            return
        from ..registry import push

        names = [n for n in output.get("name", "").split(",") if n] or list(tags)
        if not names:
            raise BuildError("--output type=registry needs a name: use -t or name=")
        for name in names:
            if name not in image.tags:
                store.tag(image.id, name)
            push(store, name)


def _write(dest: str, fill) -> None:
    if dest in ("", "-"):
        import sys

        fill(sys.stdout.buffer)
        return
    tmp = dest + ".tmp"
    with open(tmp, "wb") as f:
        fill(f)
    os.replace(tmp, dest)


def metadata(store: Store, image: Image, tags: list[str]) -> dict:
    return {
        "containerimage.config.digest": image.id,
        "containerimage.digest": image.manifest_digest,
        "containerimage.descriptor": {
            "mediaType": image.manifest.get("mediaType"),
            "digest": image.manifest_digest,
            "size": store.blobs.size(image.manifest_digest),
        },
        "image.name": ",".join(tags),
    }


def write_metadata(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)

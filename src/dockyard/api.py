"""The Python API: every CLI command is one call here, taking plain strings.

    from dockyard import api
    image = api.build(".", tags=["app:1"])
    api.save(["app:1"], "app.tar")
"""

from __future__ import annotations

import datetime as _dt
import time
from pathlib import Path
from typing import BinaryIO, Iterable

from .errors import DockyardError, ImageNotFound, StoreError
from .reference import Reference, shown_name
from .store import Image, Store

__all__ = ["build", "get_image", "history", "images", "import_image", "inspect", "load", "login",
           "logout", "normalize", "open_store", "prune", "pull", "push", "rmi", "save", "tag"]


def open_store(root: str | Path | None = None) -> Store:
    return root if isinstance(root, Store) else Store(root)


def normalize(name: str) -> str:
    return str(Reference.parse(name))


def familiar(name: str) -> str:
    return Reference.parse(name).familiar


def get_image(store: Store, name: str) -> Image:
    canonical = None
    try:
        canonical = normalize(name)
    except DockyardError:
        pass
    try:
        return store.lookup(name, canonical)
    except ImageNotFound:
        raise ImageNotFound(f"no such image: {shown_name(name)}") from None


def build(context: str | Path, *, dockerfile: str | Path | None = None, tags: Iterable[str] = (),
          build_args: dict[str, str] | None = None, target: str | None = None,
          no_cache: bool = False, labels: dict[str, str] | None = None, progress=None,
          network: str = "host", secrets: dict[str, dict[str, str]] | None = None,
          ssh: dict[str, str] | None = None, allow: Iterable[str] = (),
          outputs: Iterable[str | dict] = (), metadata_file: str | None = None,
          annotations: dict[str, str] | None = None, rewrite_timestamp: bool = False,
          push: bool = False, platforms: Iterable[str] = (), pull: bool = False,
          sbom: str | None = None, cache_to: Iterable[str] = (), cache_from: Iterable[str] = (),
          store: Store | str | None = None) -> Image:
    """Build a Dockerfile into the store; then export it to each of `outputs`
    (BuildKit's --output specs) and push it when `push` is true."""
    from .builder.executor import BuildOptions, Builder
    from .builder.progress import null_listener

    st = open_store(store)
    opts = BuildOptions(context=Path(context), dockerfile=Path(dockerfile) if dockerfile else None,
                        tags=[normalize(t) for t in tags], build_args=dict(build_args or {}),
                        target=target, no_cache=no_cache, labels=dict(labels or {}),
                        network=network, progress=null_listener if progress is None else progress,
                        secrets=dict(secrets or {}), ssh=dict(ssh or {}), allow=set(allow),
                        annotations=dict(annotations or {}), rewrite_timestamp=rewrite_timestamp,
                        pull=pull)
    from .builder import outputs as out

    from .builder import cache_io

    opts.annotations, index_annotations = out.split_annotations(opts.annotations)
    if index_annotations and len([p for item in platforms for p in item.split(",") if p.strip()]) < 2:
        raise DockyardError("index annotations need a multi-platform build (--platform a,b)")

    cache_to_specs = [cache_io.parse_spec(c, "--cache-to") for c in cache_to]
    opts.cache_from = [cache_io.import_cache(cache_io.parse_spec(c, "--cache-from")) for c in cache_from]
    specs = [o if isinstance(o, dict) else out.parse_output(o) for o in outputs]
    if push:
        specs.append({"type": "registry"})
    if sbom and not any(s["type"] == "registry" or s.get("push") == "true" for s in specs):
        raise DockyardError("--sbom attaches the SBOM to the pushed image: add --push "
                            "(or --output type=registry)")
    wanted = [p.strip() for item in platforms for p in item.split(",") if p.strip()]
    if len(wanted) > 1:
        return _build_multi(st, opts, wanted, specs, metadata_file, index_annotations)
    if wanted:
        opts.platform = wanted[0]
    builder = Builder(st)
    image = builder.build(opts)
    for spec in cache_to_specs:
        cache_io.export_cache(st, spec, builder.cache_records, image, builder.fetch_layer)
    for spec in specs:
        out.export(st, image, spec, opts.tags)
        if sbom and spec["type"] in ("registry", "image"):
            for name in [n for n in spec.get("name", "").split(",") if n] or opts.tags:
                attach_sbom(name, sbom, store=st)
    if metadata_file:
        out.write_metadata(metadata_file, out.metadata(st, image, opts.tags))
    return image


def _build_multi(st: Store, opts, platforms: list[str], specs: list[dict], metadata_file,
                 index_annotations: dict[str, str] | None = None) -> Image:
    """One build per platform, joined in an OCI index that the tags name."""
    import copy as _copy

    from .builder.executor import Builder

    results = []
    for plat in platforms:
        one = _copy.copy(opts)
        one.platform = plat
        one.tags = []
        results.append(Builder(st).build(one))
    digest = st.put_index(results, tags=opts.tags, annotations=index_annotations or None)
    for spec in specs:
        if spec["type"] in ("registry", "image"):
            from .builder.outputs import export

            export(st, results[0], spec, opts.tags)
        else:
            raise DockyardError(f"--output type={spec['type']} is not supported for multi-platform builds yet")
    if metadata_file:
        from .builder.outputs import write_metadata

        write_metadata(metadata_file, {"containerimage.digest": digest,
                                       "containerimage.descriptor": {
                                           "mediaType": "application/vnd.oci.image.index.v1+json",
                                           "digest": digest, "size": st.blobs.size(digest)},
                                       "image.name": ",".join(opts.tags)})
    return st.image_for_platform(digest)


def pull(name: str, *, platform: str | None = None, progress=None,
         store: Store | str | None = None) -> Image:
    from .registry import pull as registry_pull

    return registry_pull(open_store(store), name, platform=platform, progress=progress)


def attach_sbom(name: str, fmt: str = "spdx-json", store: Store | str | None = None) -> str:
    """Push an SBOM of the local image `name` as an OCI artifact whose subject
    is the image as pushed (push it first). Returns the artifact's digest."""
    from .analysis import sbom_artifact
    from .registry import repo_digests
    from .registry.referrers import attach, subject_of

    st = open_store(store)
    image = get_image(st, name)
    canonical = normalize(name)
    repository = Reference.parse(name).repository
    known = [d.split("@", 1)[1] for d in repo_digests(st, image.id) if d.split("@", 1)[0] == repository]
    digest = known[-1] if known else None
    if digest is None:
        raise DockyardError(f"{name} has not been pushed: push it before attaching an SBOM")
    subject = subject_of(canonical, digest)
    manifest, blobs = sbom_artifact(st, image, "spdx-json" if fmt in ("true", "spdx", "") else fmt,
                                    subject=subject)
    return attach(canonical, digest, manifest, blobs)


def push(name: str, *, progress=None, store: Store | str | None = None) -> str:
    """Push a local image (or multi-platform index); returns the manifest digest."""
    from .registry import push as registry_push

    return registry_push(open_store(store), name, progress=progress)


def login(server: str, username: str, password: str) -> None:
    from .registry import login as registry_login

    registry_login(server, username, password)


def logout(server: str) -> bool:
    from .registry import logout as registry_logout

    return registry_logout(server)


def images(store: Store | str | None = None) -> list[Image]:
    return open_store(store).images()


def tag(source: str, target: str, store: Store | str | None = None) -> None:
    st = open_store(store)
    image = get_image(st, source)
    st.tag(image.id, normalize(target))


def rmi(names: Iterable[str], force: bool = False, store: Store | str | None = None) -> list[str]:
    """Untag, and delete images left with no tag. Returns lines like Docker's."""
    st = open_store(store)
    out: list[str] = []
    from .container.ops import images_in_use

    in_use = images_in_use(st.root)
    for name in names:
        image = get_image(st, name)
        canonical = None
        try:
            canonical = normalize(name)
        except DockyardError:
            pass
        if canonical in image.tags and (len(image.tags) > 1 and not force):
            st.untag(canonical)
            out.append(f"Untagged: {familiar(canonical)}")
            continue
        if canonical not in image.tags and len(image.tags) > 1 and not force:
            raise StoreError(f"conflict: unable to delete {name} (must be forced) - "
                             "image is referenced in multiple repositories")
        if image.id in in_use and not force:
            if canonical in image.tags:
                st.untag(canonical)
                out.append(f"Untagged: {familiar(canonical)}")
                continue
            raise StoreError(f"conflict: unable to delete {image.id[7:19]} (must be forced) - "
                             "image is being used by a container")
        for t in image.tags:
            out.append(f"Untagged: {familiar(t)}")
        st.delete_image(image.id)
        out.append(f"Deleted: {image.id}")
    return out


def prune(all_cache: bool = True, store: Store | str | None = None) -> tuple[int, int]:
    """Drop unreferenced blobs and snapshots (and, with all_cache, the build
    cache). Images that containers use keep their content."""
    from .container.ops import images_in_use

    st = open_store(store)
    if all_cache:
        st.cache_clear()
    return st.gc(keep_images=images_in_use(st.root))


def _docker_config(cfg: dict) -> dict:
    """The `Config` of docker inspect: Docker's container-config shape."""
    c = cfg.get("config") or {}
    return {
        "Hostname": "", "Domainname": "", "User": c.get("User", ""),
        "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
        **({"ExposedPorts": c["ExposedPorts"]} if c.get("ExposedPorts") else {}),
        "Tty": False, "OpenStdin": False, "StdinOnce": False,
        "Env": c.get("Env"), "Cmd": c.get("Cmd"),
        **({"Healthcheck": c["Healthcheck"]} if c.get("Healthcheck") else {}),
        **({"ArgsEscaped": True} if c.get("ArgsEscaped") else {}),
        "Image": "", "Volumes": c.get("Volumes"), "WorkingDir": c.get("WorkingDir", ""),
        "Entrypoint": c.get("Entrypoint"), "OnBuild": c.get("OnBuild"), "Labels": c.get("Labels"),
        **({"StopSignal": c["StopSignal"]} if c.get("StopSignal") else {}),
        **({"Shell": c["Shell"]} if c.get("Shell") else {}),
    }


def inspect(name: str, store: Store | str | None = None) -> dict:
    st = open_store(store)
    image = get_image(st, name)
    cfg = image.config
    return {
        "Id": image.id,
        "RepoTags": [familiar(t) for t in image.tags],
        "RepoDigests": _repo_digests(st, image.id),
        "Parent": "",
        "Comment": "",
        "Created": cfg.get("created", ""),
        "DockerVersion": "",
        "Author": cfg.get("author", ""),
        "Config": _docker_config(cfg),
        "Architecture": cfg.get("architecture", ""),
        **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),
        "Os": cfg.get("os", ""),
        "Size": image.size,
        "RootFS": {"Type": "layers", "Layers": image.diff_ids},
        "Metadata": {"LastTagTime": ""},
        "Descriptor": {"mediaType": image.manifest.get("mediaType"), "digest": image.manifest_digest},
    }


def _repo_digests(st: Store, image_id: str) -> list[str]:
    from .registry import repo_digests

    try:
        return [familiar(d) if "@" in d else d for d in repo_digests(st, image_id)]
    except DockyardError:
        return []


def history(name: str, store: Store | str | None = None) -> list[dict]:
    """Newest first, as `docker history` lists them."""
    st = open_store(store)
    image = get_image(st, name)
    entries = image.config.get("history") or []
    layers = list(image.manifest.get("layers", []))
    rows = []
    for h in entries:
        size = 0
        if not h.get("empty_layer") and layers:
            size = layers.pop(0)["size"]
        rows.append({"created": h.get("created", ""), "created_by": h.get("created_by", ""),
                     "size": size, "comment": h.get("comment", "")})
    return list(reversed(rows))


def save(names: Iterable[str], out: str | Path | BinaryIO, *, format: str = "docker",
         store: Store | str | None = None) -> None:
    from .archive import docker as docker_archive, oci as oci_archive

    st = open_store(store)
    items = []
    for name in names:
        image = get_image(st, name)
        tags = []
        try:
            canonical = normalize(name)
            if canonical in image.tags:
                tags = [canonical]
        except DockyardError:
            pass
        items.append((image, tags))
    writer = {"docker": docker_archive.save, "oci": oci_archive.save}.get(format)
    if writer is None:
        raise DockyardError(f"unknown format {format!r}: use docker or oci")
    if isinstance(out, (str, Path)):
        tmp = Path(str(out) + ".tmp")
        with open(tmp, "wb") as f:
            writer(st, items, f)
        tmp.rename(out)
    else:
        writer(st, items, out)


def load(source: str | Path | BinaryIO, store: Store | str | None = None):
    from .archive import load as load_archive

    st = open_store(store)
    if isinstance(source, (str, Path)):
        with open(source, "rb") as f:
            return load_archive(st, f)
    return load_archive(st, source)


def import_image(source: str | Path | BinaryIO, name: str | None = None, *, changes: Iterable[str] = (),
                 message: str = "", store: Store | str | None = None) -> Image:
    from .archive.importer import import_rootfs

    st = open_store(store)
    tag_name = normalize(name) if name else None
    if isinstance(source, (str, Path)):
        with open(source, "rb") as f:
            return import_rootfs(st, f, tag=tag_name, changes=list(changes), message=message)
    return import_rootfs(st, source, tag=tag_name, changes=list(changes), message=message)


def age(created: str) -> str:
    """Docker's 'About an hour ago' style."""
    import re

    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", created or "")
    if not m:
        return ""
    ts = _dt.datetime.fromisoformat(m.group(1)).replace(tzinfo=_dt.timezone.utc)
    secs = time.time() - ts.timestamp()
    for unit, size in (("year", 31536000), ("month", 2592000), ("week", 604800), ("day", 86400),
                       ("hour", 3600), ("minute", 60)):
        if secs >= size:
            n = int(secs // size)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "Less than a minute ago" if secs >= 1 else "Less than a second ago"

"""The build executor: Dockerfile stages in, an image in the store out.

Metadata instructions edit the image config; RUN, COPY, ADD and WORKDIR make
layers. A layer step is keyed by everything that can change its result (the
parent chain, the expanded instruction, env, user, workdir, source content)
and a hit reuses the stored layer without running anything. What a key was
made of is kept, so a miss can say what changed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..dockerfile import instructions as ins
from ..dockerfile.parser import parse
from ..dockerfile.shell import Lexer
from ..errors import BuildError, DockerfileError, DockyardError, ImageNotFound
from ..runtime.container import default_run_limits
from ..runtime.spec import Limits
from ..snapshots import Snapshotter, chain_ids, drop_untouched_parents
from ..store import Image, Store
from ..store.store import remove_tree
from . import config as cfgmod
from .context import SourceTree
from .explain import explain
from .progress import Event, Listener, null_listener


@dataclass
class BuildOptions:
    context: Path
    dockerfile: Path | None = None
    tags: list[str] = field(default_factory=list)          # canonical references
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network: str = "host"
    progress: Listener = null_listener
    resolve_image: object = None   # callable(name) -> Image; defaults to a store lookup
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> {"src": path} | {"env": name}
    ssh: dict[str, str] = field(default_factory=dict)                 # id -> agent socket path
    allow: set[str] = field(default_factory=set)                      # entitlements, e.g. security.insecure
    annotations: dict[str, str] = field(default_factory=dict)         # manifest annotations
    rewrite_timestamp: bool = False    # clamp file times in new layers to SOURCE_DATE_EPOCH
    platform: str | None = None        # target platform, e.g. linux/arm64 (default: this machine)
    pull: bool = False                 # always re-resolve base images from their registry
    cache_from: list = field(default_factory=list)   # ImportedCache objects (--cache-from)
    run_limits: Limits | None = field(default_factory=default_run_limits)  # cgroup limits of every RUN


@dataclass
class StageState:
    image: dict                     # the whole image config being built
    diff_ids: list[str]
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False
    name: str = ""
    proxy: dict[str, str] = field(default_factory=dict)   # proxy build args, passed to RUN only

    @property
    def config(self) -> dict:
        return self.image.setdefault("config", {})

    @property
    def env(self) -> list[str]:
        return self.config.setdefault("Env", [])

    def expansion_env(self) -> dict[str, str]:
        out = {k: v for k, v in self.args.items() if v is not None}
        out.update(cfgmod.env_map(self.env))
        return out

    def run_env(self) -> list[str]:
        env = list(self.env)
        names = {e.partition("=")[0] for e in env}
        for k, v in self.args.items():
            if v is not None and k not in names:
                env.append(f"{k}={v}")
                names.add(k)
        for k, v in self.proxy.items():
            if k not in names:
                env.append(f"{k}={v}")
        return env

    def key_env(self) -> dict[str, str]:
        """The RUN environment as a cache key sees it: undeclared proxy args
        are left out, as BuildKit does, so a proxy change keeps the cache."""
        env = cfgmod.env_map(self.run_env())
        for k in self.proxy:
            if k not in self.args and cfgmod.get_env(self.env, k) is None:
                env.pop(k, None)
        return env


def _key(inputs: dict) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


class Builder:
    def __init__(self, store: Store):
        self.store = store
        self.snapshots = Snapshotter(store, fetch=self.fetch_layer)
        self.cache_records: list[dict] = []   # every layer step of this build, for --cache-to
        self._remote: dict[str, object] = {}  # diff id -> ImportedCache that can fetch it
        self._step = 0
        self._lock = threading.Lock()

    # -- entry point ---------------------------------------------------------

    def build(self, opts: BuildOptions) -> Image:
        context = Path(opts.context).resolve()
        if not context.is_dir():
            raise BuildError(f"build context {opts.context} is not a directory")
        dockerfile = Path(opts.dockerfile) if opts.dockerfile else context / "Dockerfile"
        if not dockerfile.is_absolute() and not dockerfile.exists():
            dockerfile = context / dockerfile
        try:
            text = dockerfile.read_bytes()
        except OSError as e:
            raise BuildError(f"cannot read Dockerfile {dockerfile}: {e.strerror}") from None
        self.filename = str(dockerfile)
        self.display = dockerfile.name
        self.opts = opts
        self.emit = opts.progress
        result = parse(text, filename=self.display)
        self.lexer = Lexer(result.escape)
        df = ins.parse_dockerfile(result, filename=self.display)
        from .. import dockerfile as _df  # noqa: F401  (package import for ignore)
        from ..dockerfile.ignore import load_ignore

        self.context = SourceTree(context, load_ignore(context, dockerfile))
        self.context.remember_hashes(self.store.db)
        self.used_args: set[str] = set()
        self._pulled: dict[str, Image] = {}
        self.platform_args = cfgmod.platform_args(opts.platform)
        epoch = opts.build_args.get("SOURCE_DATE_EPOCH", os.environ.get("SOURCE_DATE_EPOCH"))
        try:
            self.epoch = int(epoch) if epoch not in (None, "") else None
        except ValueError:
            raise BuildError(f"invalid SOURCE_DATE_EPOCH {epoch!r}: must be a number of seconds") from None
        if "SOURCE_DATE_EPOCH" in opts.build_args:
            self.used_args.add("SOURCE_DATE_EPOCH")
        with self.store.lock():
            try:
                final = self._build_stages(df)
                image = self._commit_image(final)
            finally:
                self.context.flush_hashes()
        unused = sorted(set(opts.build_args) - self.used_args - _PREDEFINED_ARGS)
        if unused:
            self.emit(Event("info", 0, f"[Warning] One or more build-args {unused} were not consumed"))
        return image

    # -- stages --------------------------------------------------------------

    def _build_stages(self, df) -> StageState:
        self.meta = {}
        for arg in df.meta_args:
            for name, default in arg.args:
                if name in self.opts.build_args:
                    value = self.opts.build_args[name]
                    self.used_args.add(name)
                elif default is not None:
                    value = self._expand_with(default, {k: v for k, v in self.meta.items() if v is not None})
                else:
                    value = None
                self.meta[name] = value
        self.stages = df.stages
        names = {}
        for i, st in enumerate(df.stages):
            if st.name:
                if st.name in names:
                    raise self._error(st, f"duplicate stage name {st.name!r}")
                names[st.name] = i
        self.stage_names = names
        if self.opts.target:
            target = self.opts.target.lower()
            if target not in names:
                raise BuildError(f"failed to reach build target {self.opts.target} in Dockerfile")
            target_index = names[target]
        else:
            target_index = len(df.stages) - 1
        self.results: dict[int, StageState] = {}
        needed = self._needed(target_index)
        for i in sorted(needed):
            self.results[i] = self._build_stage(df.stages[i], i)
        return self.results[target_index]

    def _stage_ref(self, name: str, before: int) -> int | None:
        if name.lower() in self.stage_names and self.stage_names[name.lower()] < before:
            return self.stage_names[name.lower()]
        if name.isdigit() and int(name) < before:
            return int(name)
        return None

    def _meta_env(self) -> dict[str, str]:
        env = dict(self.platform_args)
        env.update({k: v for k, v in self.meta.items() if v is not None})
        return env

    def _base_name(self, stage) -> str:
        return self._expand_with(stage.base_name, self._meta_env())

    def _needed(self, index: int) -> set[int]:
        seen: set[int] = set()
        todo = [index]
        while todo:
            i = todo.pop()
            if i in seen:
                continue
            seen.add(i)
            st = self.stages[i]
            ref = self._stage_ref(self._base_name(st), i)
            if ref is not None:
                todo.append(ref)
            for cmd in st.commands:
                sources = [getattr(cmd, "from_", None)] + _mount_sources(cmd)
                for src in filter(None, sources):
                    ref = self._stage_ref(self._expand_with(src, self._meta_env()), i)
                    if ref is not None:
                        todo.append(ref)
        return seen

    def _build_stage(self, stage, index: int) -> StageState:
        base = self._base_name(stage)
        label = stage.name or f"stage-{index}"
        total = len(stage.commands) + 1
        step = self._start(f"[{label} 1/{total}] FROM {base}")
        ref = self._stage_ref(base, index)
        if ref is not None:
            state = copy.deepcopy(self.results[ref])
            state.args = {}
            state.cmd_set = False
        elif base.lower() == "scratch":
            state = StageState(image=cfgmod.empty_image(), diff_ids=[])
            state.image["architecture"] = self.platform_args["TARGETARCH"]
            if self.platform_args["TARGETVARIANT"]:
                state.image["variant"] = self.platform_args["TARGETVARIANT"]
        else:
            try:
                image = self._resolve(base)
            except DockyardError as e:
                self.emit(Event("error", step, str(e)))
                raise self._error(stage, str(e)) from None
            state = StageState(image=json.loads(image.config_bytes), diff_ids=image.diff_ids)
            state.image.setdefault("history", [])
        state.name = label
        state.proxy = {k: v for k, v in self.opts.build_args.items() if k in _PREDEFINED_ARGS}
        self.used_args.update(state.proxy)
        if cfgmod.get_env(state.env, "PATH") is None:
            state.config["Env"] = [cfgmod.DEFAULT_PATH] + state.env
        state.image.pop("container", None)
        state.image.pop("container_config", None)
        self._done(step)
        triggers = state.config.get("OnBuild") or []
        state.config["OnBuild"] = None
        for trig in triggers:
            cmd = ins.parse_instruction_text(trig, escape=self.lexer_escape)
            self._dispatch(stage, state, cmd, f"[{label}] ONBUILD {trig}")
        for n, cmd in enumerate(stage.commands, start=2):
            title = f"[{label} {n}/{total}] {_show(cmd)}"
            self._dispatch(stage, state, cmd, title)
        return state

    @property
    def lexer_escape(self) -> str:
        return getattr(self.lexer, "escape", "\\")

    def _resolve(self, name: str) -> Image:
        if self.opts.resolve_image is not None:
            return self.opts.resolve_image(name)
        from ..reference import Reference

        ref = Reference.parse(name)
        pulled = self._pulled.get(name)
        if pulled is not None:
            return pulled
        try:
            if self.opts.pull:
                raise ImageNotFound(name)
            image = self.store.lookup(name, str(ref), platform=self.opts.platform)
        except ImageNotFound:
            image = self._pull(name)
        want = self.platform_args["TARGETARCH"]
        have = image.config.get("architecture")
        if self.opts.platform and have and have != want:
            raise ImageNotFound(f"image {name} is for {image.config.get('os', 'linux')}/{have}, "
                                f"not {self.platform_args['TARGETPLATFORM']}")
        return image

    def _pull(self, name: str) -> Image:
        """FROM an image that is not here (or `--pull`): fetch it."""
        from ..registry import pull

        step = self._start(f"[internal] load metadata for {name}")
        try:
            image = pull(self.store, name, platform=self.opts.platform)
        except DockyardError as e:
            self.emit(Event("error", step, str(e)))
            raise ImageNotFound(f"image {name} is not in the local store and could not be pulled: {e}") from None
        self._done(step)
        self._pulled[name] = image
        return image

    # -- dispatch ------------------------------------------------------------

    def _dispatch(self, stage, state: StageState, cmd, title: str) -> None:
        handler = _HANDLERS.get(type(cmd).__name__)
        if handler is None:
            raise self._error(cmd, f"{type(cmd).__name__} is not supported")
        try:
            handler(self, stage, state, cmd, title)
        except DockerfileError as e:
            if e.line is None:
                raise self._error(cmd, e.message) from None
            raise
        except DockyardError as e:
            if getattr(e, "located", False):
                raise
            raise self._error(cmd, str(e)) from None

    def _error(self, node, message: str) -> BuildError:
        loc = getattr(node, "location", None)
        line = loc[0] if isinstance(loc, tuple) else getattr(loc, "start_line", None) or getattr(loc, "start", None)
        original = getattr(node, "original", "") or ""
        where = f"{self.display}:{line}" if line else self.display
        what = f" {_show(node)}:" if original else ""
        err = BuildError(f"{where}:{what} {message}")
        err.located = True
        return err

    def _expand_with(self, word: str, env: dict[str, str]) -> str:
        return self.lexer.process_word(word, env)

    def _expander(self, state: StageState):
        env = state.expansion_env()
        return lambda word: self.lexer.process_word(word, env)

    def _history(self, state: StageState, created_by: str, empty: bool, created: str | None = None) -> None:
        # Metadata entries get their time when the image is committed (see
        # config.fill_times), so a fully cached rebuild gives the same image id.
        entry = {"created": created, "created_by": created_by, "comment": cfgmod.HISTORY_COMMENT}
        if empty:
            entry["empty_layer"] = True
        state.image.setdefault("history", []).append(entry)

    def _meta_step(self, title: str) -> None:
        step = self._start(title)
        self._done(step)

    # -- progress ------------------------------------------------------------

    def _start(self, title: str) -> int:
        with self._lock:
            self._step += 1
            step = self._step
        self.emit(Event("start", step, title))
        self._t0 = time.monotonic()
        return step

    def _done(self, step: int, started: float | None = None) -> None:
        self.emit(Event("done", step, seconds=time.monotonic() - (started or self._t0)))

    # -- layer steps ---------------------------------------------------------

    def _layer_step(self, state: StageState, cmd, title: str, inputs: dict, run, created_by: str,
                    independent: bool = False, alt_inputs=None) -> None:
        """`independent` (COPY --link): `run` gets an empty directory instead of
        the parent's merged view, and the cache key leaves the parent out.
        `alt_inputs` (COPY --from) gives a second key, by content, tried when
        the first misses: a rebuilt source stage with the same files still hits."""
        step = self._start(title)
        started = time.monotonic()
        parent = chain_ids(state.diff_ids)[-1] if state.diff_ids and not independent else ""
        inputs = {"parent": parent, **inputs}
        if self.epoch is not None and self.opts.rewrite_timestamp:
            inputs["epoch"] = self.epoch
        key = _key(inputs)
        slot = f"{self.filename}|{state.name}|{getattr(cmd, 'location', '')}"
        keys = [key]
        if not self.opts.no_cache:
            hit = self._lookup(key)
            if not hit and alt_inputs is not None:
                keys.append(_key({"parent": parent, **alt_inputs()}))
                hit = self._lookup(keys[-1])
                if hit:
                    self.store.cache_put(key, {**hit, "blobs": [hit["diff_id"]]}, slot, inputs)
            if hit:
                state.diff_ids.append(hit["diff_id"])
                created = hit.get("created") or cfgmod.now()
                self._history(state, created_by, False, created)
                for k in keys:
                    self.cache_records.append({"key": k, "diff_id": hit["diff_id"], "created": created})
                self.emit(Event("cached", step))
                return
            previous = self.store.cache_previous(slot)
            if previous is not None:
                self.emit(Event("miss", step, explain(previous, inputs)))
        snap = self.snapshots.new_upper()
        try:
            if independent:
                stubs = run(snap / "fs", step) or []
            else:
                lowers = self.snapshots.lowers(state.diff_ids)
                with self.snapshots.mounted(lowers, snap) as root:
                    stubs = run(root, step) or []
            if stubs:
                from ..runtime.container import remove_mount_stubs

                remove_mount_stubs(snap / "fs", stubs)
                if not independent:
                    drop_untouched_parents(snap / "fs", stubs, lowers)
            diff_id = self._write_diff(snap / "fs")
            self.snapshots.commit(snap, state.diff_ids, diff_id)
        except BaseException as e:
            remove_tree(snap)
            if isinstance(e, DockyardError):
                self.emit(Event("error", step, str(e)))
            raise
        created = cfgmod.now()
        if alt_inputs is not None and len(keys) == 1 and not independent:
            keys.append(_key({"parent": parent, **alt_inputs()}))
        for k in keys:
            self.store.cache_put(k, {"diff_id": diff_id, "blobs": [diff_id], "created": created}, slot, inputs)
            self.cache_records.append({"key": k, "diff_id": diff_id, "created": created})
        state.diff_ids.append(diff_id)
        self._history(state, created_by, False, created)
        self._done(step, started)

    def _lookup(self, key: str) -> dict | None:
        hit = self.store.cache_get(key)
        if hit and self.store.blobs.has(hit["diff_id"]):
            return hit
        return self._imported_hit(key)

    def _imported_hit(self, key: str) -> dict | None:
        for imported in self.opts.cache_from:
            entry = imported.entries.get(key)
            if entry and (self.store.blobs.has(entry["diff_id"]) or imported.has_layer(entry["diff_id"])):
                self._remote[entry["diff_id"]] = imported
                return entry
        return None

    def fetch_layer(self, diff_id: str) -> None:
        """Bring in a layer known only from an imported cache."""
        if self.store.blobs.has(diff_id):
            return
        source = self._remote.get(diff_id)
        if source is None:
            raise BuildError(f"layer {diff_id} is missing from the store")
        step = self._start(f"[cache] fetching layer {diff_id[7:19]} from {source.where}")
        source.fetch(self.store, diff_id)
        self._done(step)

    def _write_diff(self, upper: Path) -> str:
        from ..layer import write_upper_diff

        with self.store.blobs.writer() as w:
            clamp = self.epoch if self.opts.rewrite_timestamp else None
            write_upper_diff(upper, w, source_date_epoch=clamp)
            return w.commit()

    def _commit_image(self, state: StageState) -> Image:
        for diff_id in state.diff_ids:
            self.fetch_layer(diff_id)
        image = state.image
        if self.opts.labels:
            labels = dict(image["config"].get("Labels") or {})
            labels.update(self.opts.labels)
            image["config"]["Labels"] = labels
        if self.epoch is not None:
            stamp = cfgmod.from_epoch(self.epoch)
            for h in image.get("history", []):
                if h.get("created") is None or h.get("comment") == cfgmod.HISTORY_COMMENT:
                    h["created"] = stamp
            image["created"] = stamp
        else:
            image["created"] = cfgmod.fill_times(image.get("history", []), image.get("created"))
        image["rootfs"] = {"type": "layers", "diff_ids": list(state.diff_ids)}
        for key in ("id", "parent", "container", "container_config", "docker_version"):
            image.pop(key, None)
        data = cfgmod.serialize(image)
        return self.store.put_image(data, tags=list(self.opts.tags),
                                    annotations=dict(self.opts.annotations) or None)


_PREDEFINED_ARGS = {"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY",
                    "http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"}


def _show(cmd) -> str:
    text = (getattr(cmd, "original", "") or type(cmd).__name__).strip()
    return " ".join(text.split())[:200]


def _mount_sources(cmd) -> list[str]:
    """`from=` values of RUN --mount flags: stages a RUN depends on."""
    out = []
    for spec in getattr(cmd, "mounts", None) or []:
        for part in spec.split(","):
            key, _, value = part.partition("=")
            if key.strip().lower() == "from" and value:
                out.append(value.strip())
    return out


from .handlers import HANDLERS as _HANDLERS  # noqa: E402

"""One function per Dockerfile instruction: how it changes the stage.

Each takes (builder, stage, state, command, title). Metadata instructions
edit the config and add a history entry with BuildKit's wording; the layer
instructions hand a `run(root, step)` callback to Builder._layer_step.
"""

from __future__ import annotations

import os
import posixpath
import re
import threading

from ..errors import BuildError
from . import config as cfg
from .context import SourceTree
from .copy import CopyOptions, RootFS, absolute_dest, copy_sources, dest_is_dir
from .progress import Event


def _expanded(b, state, cmd):
    expand = getattr(cmd, "expand", None)
    return expand(b._expander(state)) if expand else cmd


def _shell(state) -> list[str]:
    return list(state.config.get("Shell") or ["/bin/sh", "-c"])


def _argv(state, cmd) -> list[str]:
    if cmd.prepend_shell:
        return _shell(state) + [" ".join(cmd.cmd) if isinstance(cmd.cmd, list) else cmd.cmd]
    return list(cmd.cmd)


# -- metadata ------------------------------------------------------------------

def do_env(b, stage, state, cmd, title):
    cmd = _expanded(b, state, cmd)
    env = state.env
    for key, value in cmd.pairs:
        env = cfg.set_env(env, key, value)
    state.config["Env"] = env
    b._history(state, "ENV " + " ".join(f"{k}={v}" for k, v in cmd.pairs), True)
    b._meta_step(title)


def do_label(b, stage, state, cmd, title):
    cmd = _expanded(b, state, cmd)
    labels = dict(state.config.get("Labels") or {})
    for key, value in cmd.pairs:
        labels[key] = value
    state.config["Labels"] = labels
    b._history(state, "LABEL " + " ".join(f"{k}={v}" for k, v in cmd.pairs), True)
    b._meta_step(title)


def do_maintainer(b, stage, state, cmd, title):
    name = getattr(cmd, "maintainer", None) or getattr(cmd, "name", "")
    state.image["author"] = name
    b._history(state, "MAINTAINER " + name, True)
    b._meta_step(title)


def do_arg(b, stage, state, cmd, title):
    parts = []
    for name, default in cmd.args:
        if default is not None:
            default = b._expand_with(default, state.expansion_env())
        if name in b.opts.build_args:
            value = b.opts.build_args[name]
            b.used_args.add(name)
        elif default is not None:
            value = default
        elif name in b.meta:
            value = b.meta[name]
        else:
            value = b.platform_args.get(name)
        state.args[name] = value
        parts.append(f"{name}={default}" if default is not None else name)
    b._history(state, "ARG " + " ".join(parts), True)
    b._meta_step(title)


_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/(\w+))?$")


def do_expose(b, stage, state, cmd, title):
    cmd = _expanded(b, state, cmd)
    ports = dict(state.config.get("ExposedPorts") or {})
    new: dict[str, dict] = {}
    for raw in cmd.ports:
        for word in raw.split():
            m = _PORT.match(word)
            if not m:
                raise BuildError(f"invalid containerPort: {word}")
            lo, hi, proto = int(m.group(1)), int(m.group(2) or m.group(1)), (m.group(3) or "tcp").lower()
            for port in range(lo, hi + 1):
                new[f"{port}/{proto}"] = {}
    ports.update(new)
    state.config["ExposedPorts"] = ports
    b._history(state, "EXPOSE map[" + " ".join(f"{k}:{{}}" for k in sorted(new)) + "]", True)
    b._meta_step(title)


def do_volume(b, stage, state, cmd, title):
    cmd = _expanded(b, state, cmd)
    vols = dict(state.config.get("Volumes") or {})
    for v in cmd.volumes:
        if not v.strip():
            raise BuildError("VOLUME specified can not be an empty string")
        vols[v] = {}
    state.config["Volumes"] = vols
    b._history(state, "VOLUME " + cfg.go_list(list(cmd.volumes)), True)
    b._meta_step(title)


def do_user(b, stage, state, cmd, title):
    cmd = _expanded(b, state, cmd)
    state.config["User"] = cmd.user
    b._history(state, "USER " + cmd.user, True)
    b._meta_step(title)


def do_stopsignal(b, stage, state, cmd, title):
    cmd = _expanded(b, state, cmd)
    sig = cmd.signal
    if not re.match(r"^(SIG[A-Z0-9+-]+|[A-Z0-9+-]+|\d+)$", sig):
        raise BuildError(f"invalid signal: {sig}")
    state.config["StopSignal"] = sig
    b._history(state, "STOPSIGNAL " + sig, True)
    b._meta_step(title)


def do_shell(b, stage, state, cmd, title):
    state.config["Shell"] = list(cmd.shell)
    b._history(state, "SHELL " + cfg.go_list(list(cmd.shell)), True)
    b._meta_step(title)


def do_cmd(b, stage, state, cmd, title):
    argv = _argv(state, cmd)
    state.config["Cmd"] = argv
    state.config["ArgsEscaped"] = True
    state.cmd_set = True
    b._history(state, "CMD " + cfg.go_quote_list(argv), True)
    b._meta_step(title)


def do_entrypoint(b, stage, state, cmd, title):
    argv = _argv(state, cmd)
    state.config["Entrypoint"] = argv
    state.config["ArgsEscaped"] = True
    if not state.cmd_set:
        state.config["Cmd"] = None
    b._history(state, "ENTRYPOINT " + cfg.go_quote_list(argv), True)
    b._meta_step(title)


def do_healthcheck(b, stage, state, cmd, title):
    test = list(cmd.test)
    hc: dict = {"Test": test}
    for field, key in (("interval", "Interval"), ("timeout", "Timeout"),
                       ("start_period", "StartPeriod"), ("start_interval", "StartInterval")):
        value = getattr(cmd, field, 0) or 0
        if value:
            hc[key] = value
    if getattr(cmd, "retries", 0):
        hc["Retries"] = cmd.retries
    state.config["Healthcheck"] = hc
    b._history(state, "HEALTHCHECK &{" + cfg.go_quote_list(test) + " "
               + " ".join(cfg.go_quote(cfg.go_duration(getattr(cmd, f, 0) or 0))
                          for f in ("interval", "timeout", "start_period"))
               + " " + cfg.go_rune(getattr(cmd, "retries", 0) or 0) + "}", True)
    b._meta_step(title)


def do_onbuild(b, stage, state, cmd, title):
    triggers = list(state.config.get("OnBuild") or [])
    triggers.append(cmd.expression)
    state.config["OnBuild"] = triggers
    # BuildKit records no history entry for ONBUILD.
    b._meta_step(title)


# -- layer instructions ------------------------------------------------------------

def _workdir(state) -> str:
    return state.config.get("WorkingDir") or "/"


def do_workdir(b, stage, state, cmd, title):
    cmd = _expanded(b, state, cmd)
    path = posixpath.normpath(posixpath.join(_workdir(state), cmd.path))
    if path.startswith("//"):
        path = path[1:]
    state.config["WorkingDir"] = path
    user = state.config.get("User") or ""

    def run(root, step):
        uid, gid = (0, 0)
        if user:
            from ..runtime.users import resolve_user

            uid, gid, _ = resolve_user(root, user)
        RootFS(root).mkdirs(path, uid=uid, gid=gid)

    inputs = {"op": "mkdir", "path": path, "user": user}
    b._layer_step(state, cmd, title, inputs, run, "WORKDIR " + path)


def do_run(b, stage, state, cmd, title):
    argv = _argv(state, cmd)
    env = state.run_env()
    user = state.config.get("User") or ""
    cwd = _workdir(state)
    declared = [(k, v) for k, v in state.args.items()]
    prefix = ""
    if declared:
        prefix = f"|{len(declared)} " + " ".join(f"{k}={v or ''}" for k, v in declared) + " "
    created_by = "RUN " + prefix + " ".join(argv) + " # buildkit"
    inputs = {"op": "run", "argv": argv, "env": state.key_env(), "user": user, "cwd": cwd,
              "network": b.opts.network}

    def run(root, step):
        from ..runtime.container import missing_mount_points, run_process

        stubs = missing_mount_points(root)
        read_fd, write_fd = os.pipe()
        tail: list[str] = []

        def pump():
            with os.fdopen(read_fd, "rb") as r:
                for line in r:
                    text = line.decode(errors="replace").rstrip("\n")
                    tail.append(text)
                    del tail[:-20]
                    b.emit(Event("output", step, text))

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            with os.fdopen(write_fd, "wb", buffering=0) as w:
                code = run_process(root, argv, env=env, cwd=cwd, user=user, network=b.opts.network,
                                   stdout=w, stderr=w, stdin=None,
                                   state_dir=b.store.root / "tmp" / "runc")
        finally:
            reader.join(timeout=30)
        code = getattr(code, "exit_code", code)
        if code != 0:
            shown = cfg.go_quote(" ".join(argv))
            out = ("\n" + "\n".join(tail)) if tail else ""
            raise BuildError(f"process {shown} did not complete successfully: exit code: {code}{out}")
        return stubs

    b._layer_step(state, cmd, title, inputs, run, created_by)


def _parse_chmod(value: str | None) -> int | None:
    if not value:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        raise BuildError(f"invalid chmod parameter {value!r}: must be an octal mode") from None
    if mode > 0o7777:
        raise BuildError(f"invalid chmod parameter {value!r}")
    return mode


def _copy(b, stage, state, cmd, title, name: str):
    cmd = _expanded(b, state, cmd)
    if getattr(cmd, "heredocs", None):
        raise BuildError(f"{name} with a heredoc is not supported yet")
    sources = list(cmd.sources)
    for src in sources:
        if "://" in src:
            raise BuildError(f"{name} from a URL is not supported yet: {src}")
    dest = absolute_dest(cmd.dest, _workdir(state))
    chmod = _parse_chmod(getattr(cmd, "chmod", None))
    chown = getattr(cmd, "chown", None) or ""
    from_ = getattr(cmd, "from_", None) or ""
    inputs: dict = {"op": name.lower(), "dest": dest, "chown": chown, "chmod": chmod}
    index = b.stages.index(stage) if stage in b.stages else len(b.stages)
    src_state = None
    if from_:
        ref = b._stage_ref(from_, index)
        if ref is not None:
            src_state = b.results[ref]
            src_diff = src_state.diff_ids
        else:
            image = b._resolve(from_)
            src_diff = image.diff_ids
        from ..snapshots import chain_ids

        inputs["from"] = chain_ids(src_diff)[-1] if src_diff else "scratch"
        inputs["sources"] = sources
    else:
        matches = []
        hashes = {}
        for src in sources:
            found = b.context.match(src)
            if not found:
                raise BuildError(f'"{src}" not found in the build context or excluded by .dockerignore')
            for m in found:
                hashes[m.rel or "."] = b.context.digest(m)
            matches.extend(found)
        inputs["files"] = hashes
    multiple = len(sources) > 1 or (not from_ and len(inputs["files"]) > 1 and any(
        c in s for s in sources for c in "*?["))
    if multiple and not dest_is_dir(cmd.dest):
        raise BuildError(f"When using {name} with more than one source file, "
                         "the destination must be a directory and end with a /")
    created_by = f"{name} " + " ".join(sources) + f" {cmd.dest} # buildkit"

    def run(root, step):
        owner = None
        if chown:
            from ..runtime.users import resolve_chown

            owner = resolve_chown(root, chown)
        opts = CopyOptions(chown=owner, chmod=chmod, keep_owner=bool(from_), unpack=(name == "ADD" and not from_))
        if not from_:
            copy_sources(b.context, matches, root, dest, opts, force_dir=multiple)
            return []
        snap = b.snapshots.new_upper()
        try:
            with b.snapshots.mounted(b.snapshots.lowers(src_diff), snap) as src_root:
                tree = SourceTree(src_root, is_context=False)
                found = []
                for src in sources:
                    got = tree.match(src)
                    if not got:
                        raise BuildError(f'"{src}" not found in {from_}')
                    found.extend(got)
                copy_sources(tree, found, root, dest, opts, force_dir=multiple or len(found) > 1)
        finally:
            from ..store.store import remove_tree

            remove_tree(snap)
        return []

    b._layer_step(state, cmd, title, inputs, run, created_by)


def do_copy(b, stage, state, cmd, title):
    _copy(b, stage, state, cmd, title, "COPY")


def do_add(b, stage, state, cmd, title):
    _copy(b, stage, state, cmd, title, "ADD")


HANDLERS = {
    "EnvCommand": do_env, "LabelCommand": do_label, "MaintainerCommand": do_maintainer,
    "ArgCommand": do_arg, "ExposeCommand": do_expose, "VolumeCommand": do_volume,
    "UserCommand": do_user, "StopsignalCommand": do_stopsignal, "ShellCommand": do_shell,
    "CmdCommand": do_cmd, "EntrypointCommand": do_entrypoint, "HealthcheckCommand": do_healthcheck,
    "OnbuildCommand": do_onbuild, "WorkdirCommand": do_workdir, "RunCommand": do_run,
    "CopyCommand": do_copy, "AddCommand": do_add,
}

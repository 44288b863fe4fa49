"""One function per Dockerfile instruction: how it changes the stage.

Each takes (builder, stage, state, command, title). Metadata instructions
edit the config and add a history entry with BuildKit's wording; the layer
instructions hand a `run(root, step)` callback to Builder._layer_step.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import threading
from pathlib import Path

from ..errors import BuildError
from . import config as cfg
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


_HEREDOC_ONLY = re.compile(r"""^\s*<<-?\s*(["']?)([^\s"']+)\1\s*$""")


def _heredoc_run(state, cmd) -> tuple[list[str], dict[str, str]]:
    """BuildKit's RUN heredocs. A RUN that is only `<<EOF` runs the body as a
    script file (so a `#!` line picks the interpreter); any other command gets
    the bodies appended so the shell reads them as ordinary heredocs.
    Returns (argv, {name: script} for files to mount at /dev/pipes/)."""
    line = " ".join(cmd.cmd)
    docs = list(cmd.heredocs)
    only = _HEREDOC_ONLY.match(line)
    if len(docs) == 1 and only and only.group(2) == docs[0].name:
        body = docs[0].content
        if docs[0].chomp:
            from ..dockerfile.heredoc import chomp_heredoc_content

            body = chomp_heredoc_content(body)
        return _shell(state) + [f"/dev/pipes/{docs[0].name}"], {docs[0].name: body}
    script = line
    for doc in docs:
        body = doc.content if doc.content.endswith("\n") or not doc.content else doc.content + "\n"
        script += "\n" + body + doc.name
    return _shell(state) + [script], {}


def do_run(b, stage, state, cmd, title):
    from . import mounts as mnt

    pipes: dict[str, str] = {}
    if getattr(cmd, "heredocs", None) and cmd.prepend_shell:
        argv, pipes = _heredoc_run(state, cmd)
    else:
        argv = _argv(state, cmd)
    env = state.run_env()
    user = state.config.get("User") or ""
    cwd = _workdir(state)
    declared = [(k, v) for k, v in state.args.items()]
    prefix = ""
    if declared:
        prefix = f"|{len(declared)} " + " ".join(f"{k}={v or ''}" for k, v in declared) + " "
    created_by = "RUN " + prefix + " ".join(argv) + " # buildkit"
    network = mnt.network_mode(b, cmd)
    caps = mnt.capabilities(b, cmd)
    mounts = mnt.plan(b, stage, state, cmd, cwd)
    inputs = {"op": "run", "argv": argv, "env": state.key_env(), "user": user, "cwd": cwd,
              "network": network}
    if mounts:
        inputs["mounts"] = [mnt.key_of(m) for m in mounts]
    if caps is not None:
        inputs["security"] = "insecure"
    if pipes:
        inputs["heredocs"] = pipes

    def run(root, step):
        from ..runtime.container import missing_mount_points, run_process

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
            with contextlib.ExitStack() as stack, os.fdopen(write_fd, "wb", buffering=0) as w, \
                    mnt.prepared(b, mounts, lambda text: b.emit(Event("info", step, text))) as (extra, extra_env):
                stubs = missing_mount_points(root, [m["destination"] for m in extra])
                extra = extra + _pipe_mounts(b, pipes, stack)
                names = {e.partition("=")[0] for e in extra_env}
                run_env = [e for e in env if e.partition("=")[0] not in names] + extra_env
                code = run_process(root, argv, env=run_env, cwd=cwd, user=user, network=network,
                                   stdout=w, stderr=w, stdin=None, extra_mounts=extra,
                                   capabilities=caps, state_dir=b.store.root / "tmp" / "runc",
                                   limits=b.opts.run_limits, **mnt.security_options(caps))
                del run_env, extra_env
        finally:
            reader.join(timeout=30)
        stubs = list(dict.fromkeys([*stubs, *getattr(code, "stubs", ())]))
        code = getattr(code, "exit_code", code)
        if code != 0:
            shown = cfg.go_quote(" ".join(argv))
            out = ("\n" + "\n".join(tail)) if tail else ""
            raise BuildError(f"process {shown} did not complete successfully: exit code: {code}{out}")
        return stubs

    b._layer_step(state, cmd, title, inputs, run, created_by)


def _pipe_mounts(b, pipes: dict[str, str], stack) -> list[dict]:
    """Heredoc scripts as read-only files under /dev/pipes (a tmpfs in the
    container, so nothing reaches the layer)."""
    if not pipes:
        return []
    import tempfile

    from ..store.store import remove_tree

    tmp = Path(tempfile.mkdtemp(dir=b.store.tmp_dir, prefix="pipes-"))
    stack.callback(remove_tree, tmp)
    out = []
    for name, body in pipes.items():
        path = tmp / name
        path.write_text(body)
        os.chmod(path, 0o755)
        out.append({"destination": f"/dev/pipes/{name}", "type": "bind", "source": str(path),
                    "options": ["rbind", "ro", "nosuid", "nodev"]})
    return out


def _copy(b, stage, state, cmd, title, name: str):
    """COPY and ADD. Sources are copied in order (paths, URLs and git refs,
    then heredocs), each keyed by content: context files by digest, a URL by
    the bytes downloaded (or by --checksum, before any download), git by the
    commit its ref resolves to."""
    from ..dockerfile.ignore import PatternMatcher
    from ..dockerfile.shell import Lexer
    from ..snapshots import chain_ids
    from ..store.store import remove_tree
    from . import fetch
    from .context import find_sources
    from .copy import copy_from_image, parse_chmod

    cmd = _expanded(b, state, cmd)
    if cmd.heredocs:  # unquoted delimiters: expanded like BuildKit, quotes kept
        env, lex = state.expansion_env(), Lexer("\\", skip_process_quotes=True)
        cmd = cmd.expand_raw(lambda word: lex.process_word(word, env))
    sources, docs, from_ = list(cmd.sources), list(cmd.heredocs), getattr(cmd, "from_", None) or ""
    parents, unpack = getattr(cmd, "parents", False), getattr(cmd, "unpack", None)
    checksum, keep_git = getattr(cmd, "checksum", None) or "", getattr(cmd, "keep_git_dir", False)
    chmod, chown = parse_chmod(cmd.chmod), cmd.chown or ""
    exclude = PatternMatcher(cmd.excludes) if cmd.excludes else None
    dest = absolute_dest(cmd.dest, _workdir(state))
    kinds = [fetch.source_kind(s, name) if not from_ else "path" for s in sources]
    if checksum and (len(sources) != 1 or kinds[0] == "path"):
        raise BuildError("checksum can't be specified for multiple sources" if len(sources) > 1
                         else "checksum requires HTTP(S) or Git sources")
    link = cmd.link and chmod is None  # like BuildKit: with --chmod, --link makes a plain copy
    inputs: dict = {"op": name.lower(), "dest": dest, "chown": chown, "chmod": chmod, "sources": sources}
    for flag, value in (("parents", parents), ("excludes", cmd.excludes), ("unpack", unpack),
                        ("link", link), ("keep_git_dir", keep_git)):
        if value not in (None, False, []):
            inputs[flag] = value
    multiple = len(sources) + len(docs) > 1
    work = b.store.tmp_dir / f"copy-{os.getpid()}-{threading.get_ident()}"
    jobs: list = []   # (produce -> (tree, matches), pivot, unpack): copied in this order

    try:
        for src, kind in zip(sources, kinds):
            if from_:
                break
            if kind == "url" and checksum:
                inputs["url"] = {src: checksum}
                jobs.append((lambda src=src: _one(fetch.download(src, work, checksum)), None, unpack))
            elif kind == "url":
                got = fetch.download(src, work)
                inputs.setdefault("url", {})[src] = {"sha256": got.sha256, "mtime": got.mtime}
                jobs.append((lambda got=got: _one(got), None, unpack))
            elif kind == "git":
                ref = fetch.parse_git_ref(src)
                commit = fetch.resolve_commit(ref)
                if checksum and not (commit.startswith(checksum) or checksum.startswith(commit)):
                    raise BuildError(f"checksum mismatch: {src} is at commit {commit}, not {checksum}")
                inputs.setdefault("git", {})[src] = commit
                jobs.append((lambda ref=ref, commit=commit: _one(fetch.checkout(ref, commit, work, keep_git)),
                             None, False))
            else:
                pivot, found = find_sources(b.context, src, parents, exclude,
                                            "in the build context or excluded by .dockerignore")
                for m in found:
                    inputs.setdefault("files", {})[m.rel or "."] = b.context.digest(m, exclude, pivot)
                multiple = multiple or (len(found) > 1 and any(c in src for c in "*?["))
                local_unpack = name == "ADD" and unpack is not False
                jobs.append((lambda found=found: (b.context, found), pivot, local_unpack))
        if from_:
            src_diff = _source_diff_ids(b, stage, from_)
            inputs["from"] = chain_ids(src_diff)[-1] if src_diff else "scratch"
        for doc in docs:
            inputs.setdefault("heredocs", []).append(fetch.heredoc_key(doc.path, doc.data))
            jobs.append((lambda doc=doc: _one(fetch.write_heredoc(work, doc.path, doc.data)), None, False))
        if multiple and not dest_is_dir(cmd.dest) and not parents:
            raise BuildError(f"When using {name} with more than one source file, "
                             "the destination must be a directory and end with a /")
        shown = " ".join(sources + [f"<<{d.path}" for d in docs])
        created_by = f"{name}{' --parents' if parents else ''} {shown} {cmd.dest} # buildkit"

        def run(root, step):
            owner = None
            if chown:
                from ..runtime.users import resolve_chown

                owner = resolve_chown(root, chown)

            def options(keep_owner, unpack_it):
                return CopyOptions(chown=owner, chmod=chmod, keep_owner=keep_owner, unpack=unpack_it is True,
                                   exclude=exclude)
            if from_:
                copy_from_image(b.snapshots, src_diff, f"in {from_}", sources, parents, root, dest,
                                options(True, False), multiple)
            for produce, pivot, unpack_it in jobs:
                tree, found = produce()
                copy_sources(tree, found, root, dest, options(False, unpack_it), force_dir=multiple, pivot=pivot)
            return []

        extra = {"independent": True} if link else {}
        if from_:
            from .copy import source_digests

            def by_content():
                alt = {k: v for k, v in inputs.items() if k != "from"}
                alt["from_content"] = source_digests(b.snapshots, src_diff, f"in {from_}", sources,
                                                     parents, exclude)
                return alt
            extra["alt_inputs"] = by_content
        b._layer_step(state, cmd, title, inputs, run, created_by, **extra)
    finally:
        remove_tree(work)


def _one(got):
    """(tree, [match]) of a fetched heredoc, download or git checkout."""
    return got.tree, [got.match]


def _source_diff_ids(b, stage, from_: str) -> list[str]:
    index = b.stages.index(stage) if stage in b.stages else len(b.stages)
    ref = b._stage_ref(from_, index)
    return b.results[ref].diff_ids if ref is not None else b._resolve(from_).diff_ids


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

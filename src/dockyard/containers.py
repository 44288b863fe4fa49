"""Running an image as a container: Docker's rules for the process, on runc."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ContainerRuntimeError
from .snapshots import Snapshotter
from .store import Image, Store
from .store.store import remove_tree


@dataclass
class RunOptions:
    command: list[str] = field(default_factory=list)
    entrypoint: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    network: str = "host"
    rm: bool = True


def process_args(image_config: dict, command: list[str], entrypoint: str | None) -> list[str]:
    """ENTRYPOINT + CMD with Docker's overrides."""
    cfg = image_config.get("config") or {}
    if entrypoint is not None:
        ep = [entrypoint] if entrypoint else []
        cmd = list(command)
    else:
        ep = list(cfg.get("Entrypoint") or [])
        cmd = list(command) if command else list(cfg.get("Cmd") or [])
    argv = ep + cmd
    if not argv:
        raise ContainerRuntimeError("no command specified")
    return argv


def process_env(image_config: dict, overrides: dict[str, str], hostname: str) -> list[str]:
    env: dict[str, str] = {}
    for item in (image_config.get("config") or {}).get("Env") or []:
        k, _, v = item.partition("=")
        env[k] = v
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env["HOSTNAME"] = hostname
    env.update(overrides)
    return [f"{k}={v}" for k, v in env.items()]


def run(store: Store, image: Image, opts: RunOptions, *, stdin=None, stdout=None, stderr=None) -> int:
    from .runtime.container import run_process
    from .runtime.users import lookup_home, resolve_user

    container_id = secrets.token_hex(32)
    hostname = opts.hostname or container_id[:12]
    argv = process_args(image.config, opts.command, opts.entrypoint)
    cfg = image.config.get("config") or {}
    user = opts.user if opts.user is not None else (cfg.get("User") or "")
    cwd = opts.workdir or cfg.get("WorkingDir") or "/"
    snaps = Snapshotter(store)
    with store.lock():
        snap = snaps.new_upper()
        try:
            with snaps.mounted(snaps.lowers(image.diff_ids), snap) as root:
                env = process_env(image.config, opts.env, hostname)
                if not any(e.startswith("HOME=") for e in env):
                    uid = resolve_user(root, user)[0] if user else 0
                    env.append(f"HOME={lookup_home(root, uid) or '/'}")
                result = run_process(root, argv, env=env, cwd=cwd, user=user, hostname=hostname,
                                     network=opts.network,
                                     stdin=stdin, stdout=stdout or sys.stdout.buffer,
                                     stderr=stderr or sys.stderr.buffer,
                                     state_dir=store.root / "tmp" / "runc")
                return getattr(result, "exit_code", result)
        finally:
            if opts.rm:
                remove_tree(snap)

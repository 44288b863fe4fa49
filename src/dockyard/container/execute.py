"""Processes started in a running container: `exec` and health probes.

A new process inherits the container's own process settings (environment,
user, capabilities, seccomp, no-new-privileges, working directory) from the
bundle's config.json; `-e`, `-u`, `-w` and `-t` change them as `docker exec`
does. The working directory gets the same CVE-2024-21626 check as `run`.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dockyard.container.errors import ContainerConflict, InvalidOption
from dockyard.container.mounts import check_workdir
from dockyard.container.records import Container
from dockyard.runtime.runc import ContainerStartError, Runtime
from dockyard.runtime.users import lookup_home, resolve_user

__all__ = ["exec_process", "probe", "run_exec"]


def exec_process(ctr: Container, args: list[str], *, env: Sequence[str] = (), user: str | None = None,
                 workdir: str | None = None, tty: bool = False) -> dict[str, Any]:
    """The OCI process object for a new process in `ctr`."""
    with open(ctr.path("bundle") / "config.json", encoding="utf-8") as fh:
        process: dict[str, Any] = json.load(fh)["process"]
    rootfs = ctr.path("merged")
    process["args"] = list(args)
    process["terminal"] = tty
    merged = {k: v for k, _, v in (e.partition("=") for e in process.get("env") or [])}
    for item in env:
        key, _, value = item.partition("=")
        merged[key] = value
    if tty:
        merged.setdefault("TERM", "xterm")
    if user is not None:
        uid, gid, groups = resolve_user(rootfs, user)
        process["user"] = {"uid": uid, "gid": gid, "additionalGids": list(dict.fromkeys([gid, *groups]))}
        if not any(e.partition("=")[0] == "HOME" for e in env):
            merged["HOME"] = lookup_home(rootfs, uid)
    process["env"] = [f"{k}={v}" for k, v in merged.items()]
    if workdir is not None:
        sources = ctr.private.get("mount_sources") or {}
        # Not created: like `docker exec -w`, a missing directory is an error (from runc).
        process["cwd"] = check_workdir(rootfs, workdir, sources, create=False)
    return process


def _write_process(ctr: Container, process: dict[str, Any]) -> Path:
    path = ctr.path(f"exec-{secrets.token_hex(6)}.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(process))
    return path


def _require_running(ctr: Container) -> None:
    if not ctr.running:
        raise ContainerConflict(f"container {ctr.id[:12]} is not running")


def run_exec(ctr: Container, runtime: Runtime, args: list[str], *, env: Sequence[str] = (),
             user: str | None = None, workdir: str | None = None, tty: bool = False,
             interactive: bool = False, detach: bool = False) -> int:
    """`docker exec`: run `args` in `ctr`; the exit code (0 at once with `detach`)."""
    from dockyard.runtime.supervise import PtyRelay, fd_sink, wait_forwarding

    _require_running(ctr)
    if tty and interactive and not detach and not os.isatty(sys.stdin.fileno()):
        raise InvalidOption("the input device is not a TTY")
    process = exec_process(ctr, args, env=env, user=user, workdir=workdir, tty=tty and not detach)
    path = _write_process(ctr, process)
    log = runtime.new_log(ctr.id)
    relay = None
    try:
        stdin = sys.stdin.fileno() if interactive else None
        shares = stdin is not None and os.isatty(stdin) and _has_terminal()
        if detach:
            proc = runtime.start_exec(ctr.id, path, log, detach=True, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            try:
                return runtime.finish(proc.wait(), log)
            except ContainerStartError as exc:
                exc.exit_code = 126
                raise
        if tty and not shares:
            relay = PtyRelay(fd_sink(sys.stdout.fileno()), stdin)
            proc = runtime.start_exec(ctr.id, path, log, **relay.stdio)  # type: ignore[arg-type]
            relay.start()
        else:
            proc = runtime.start_exec(ctr.id, path, log, stdin=stdin, new_group=not shares)
        code = wait_forwarding(proc, shares_terminal=shares)
        if relay is not None:
            relay.close()
            relay = None
        try:
            return runtime.finish(code, log)
        except ContainerStartError as exc:
            exc.shown = True  # runc printed it on the stderr we share
            exc.exit_code = 126  # docker exec reports every start failure as 126
            raise
    finally:
        if relay is not None:
            relay.close(0)
        path.unlink(missing_ok=True)
        log.unlink(missing_ok=True)


def _has_terminal() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDONLY | os.O_CLOEXEC))
    except OSError:
        return False
    return True


def probe(ctr: Container, runtime: Runtime, args: list[str], timeout: float,
          limit: int = 4096) -> tuple[int, str]:
    """Run a health probe: (exit code, first `limit` bytes of its output); -1 on timeout."""
    path = _write_process(ctr, exec_process(ctr, args))
    log = runtime.new_log(ctr.id)
    try:
        proc = runtime.start_exec(ctr.id, path, log, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()  # runc exec passes it on to the probe
            deadline = time.monotonic() + 1
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
            return -1, f"Health check exceeded timeout ({timeout:g}s)"
        text = out[:limit].decode("utf-8", "replace")
        try:
            return runtime.finish(proc.returncode, log), text
        except Exception as exc:  # noqa: BLE001 - a probe that cannot start counts as failing
            return 1, str(exc)
    finally:
        path.unlink(missing_ok=True)
        log.unlink(missing_ok=True)

"""Operations on existing containers: ps, inspect, logs, stop, kill, wait, rm, exec.

Every read goes through `refresh`: a container recorded as running whose
lock nobody holds has lost its supervisor (the monitor or the foreground
`run` died), so it is killed, its resources freed, and it is marked exited
(255, as its real status is unknown). Nothing can show as running forever.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dockyard.container import records
from dockyard.container.errors import ContainerConflict, ContainerNotFound
from dockyard.container.launch import (
    container_runtime,
    release,
    remove,
    removed_exit_code,
    sweep_trash,
)
from dockyard.container.process import parse_signal
from dockyard.container.records import Container, container_root, now, try_lock
from dockyard.errors import ContainerRuntimeError

__all__ = ["container_logs", "exec_in", "get", "images_in_use", "inspect", "kill", "list_containers",
           "refresh", "remove_container",
           "stop", "wait"]

_DEFAULT_STOP_TIMEOUT = 10


def _supervised(ctr: Container) -> bool:
    fd = try_lock(ctr.path("lock"), exclusive=False)
    if fd is None:
        return True
    os.close(fd)
    return False


def refresh(store_root: Path, ctr: Container) -> Container:
    """Re-read the state; reap the container if its supervisor is gone."""
    try:
        ctr.reload()
    except (OSError, ValueError):
        return ctr
    if ctr.state.get("Status") != "running" or _supervised(ctr):
        return ctr
    fd = try_lock(ctr.path("lock"))
    if fd is None:
        return ctr  # a supervisor (or another reaper) has it now
    try:
        ctr.reload()
        if ctr.state.get("Status") == "running":
            runtime = container_runtime(store_root)
            try:
                runtime.kill(ctr.id, "KILL")
            except ContainerRuntimeError:
                pass  # already gone
            release(ctr, runtime)
            ctr.save_state(Status="exited", ExitCode=255, Pid=0, FinishedAt=now(),
                           Error="the container's monitor exited; the container was stopped")
            if ctr.private.get("rm"):
                remove(store_root, ctr, volumes=True)
    finally:
        os.close(fd)
    return ctr


def get(store_root: Path, ref: str) -> Container:
    ctr = refresh(store_root, records.load(container_root(store_root), ref))
    if not ctr.dir.exists():
        raise ContainerNotFound(f"no such container: {ref}")
    return ctr


def list_containers(store_root: Path, *, all_: bool = False) -> list[Container]:
    """Running containers (every one with `all_`), newest first."""
    sweep_trash(store_root)
    out = []
    for ctr in records.iter_containers(container_root(store_root)):
        refresh(store_root, ctr)
        if ctr.dir.exists() and (all_ or ctr.running):
            out.append(ctr)
    return sorted(out, key=lambda c: c.doc.get("Created", ""), reverse=True)


def inspect(store_root: Path, ref: str) -> dict[str, Any]:
    """Docker's inspect document for a container."""
    ctr = get(store_root, ref)
    doc = {k: v for k, v in ctr.doc.items() if k != "Dockyard"}
    state = ctr.public_state()
    if ctr.running and not state.get("Pid"):
        try:
            state["Pid"] = int(ctr.path("pid").read_text().strip())
        except (OSError, ValueError):
            pass
    doc["State"] = state
    return doc


def _wait_unsupervised(ctr: Container, timeout: float | None) -> bool:
    """Wait until nobody supervises `ctr` (it has exited and been recorded)."""
    if timeout is None:
        fd = os.open(ctr.path("lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # blocks while the supervisor holds LOCK_EX
        finally:
            os.close(fd)
        return True
    deadline = time.monotonic() + timeout
    while _supervised(ctr):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def wait(store_root: Path, ref: str) -> int:
    """Block until the container stops; its exit code (also of one --rm just removed)."""
    try:
        ctr = get(store_root, ref)
    except ContainerNotFound:
        code = removed_exit_code(store_root, ref) if len(ref) == 64 else None
        if code is None:
            raise
        return code
    if ctr.running:
        _wait_unsupervised(ctr, None)
    if ctr.dir.exists():
        refresh(store_root, ctr)
    if not ctr.dir.exists():  # --rm removed it meanwhile
        code = removed_exit_code(store_root, ctr.id)
        return int(ctr.state.get("ExitCode", 0)) if code is None else code
    return int(ctr.state.get("ExitCode", 0))


def kill(store_root: Path, ref: str, sig: str | int = "KILL") -> Container:
    ctr = get(store_root, ref)
    if not ctr.running:
        raise ContainerConflict(f"container {ctr.id[:12]} is not running")
    try:
        container_runtime(store_root).kill(ctr.id, parse_signal(sig))
    except ContainerRuntimeError as exc:
        if refresh(store_root, ctr).running:
            raise ContainerConflict(f"cannot kill container {ctr.id[:12]}: {exc}") from exc
    return ctr


def stop(store_root: Path, ref: str, timeout: float | None = None) -> Container:
    """The stop signal, then SIGKILL after `timeout` seconds (the container's, else 10)."""
    ctr = get(store_root, ref)
    if not ctr.running:
        return ctr
    if timeout is None:
        configured = ctr.doc.get("Config", {}).get("StopTimeout")
        timeout = _DEFAULT_STOP_TIMEOUT if configured is None else configured
    runtime = container_runtime(store_root)
    signo = int(ctr.private.get("stop_signal") or 15)
    try:
        runtime.kill(ctr.id, signo)
    except ContainerRuntimeError:
        pass  # exiting already
    if not _wait_unsupervised(ctr, max(0.0, float(timeout))):
        try:
            runtime.kill(ctr.id, "KILL")
        except ContainerRuntimeError:
            pass
        _wait_unsupervised(ctr, 30)
    return refresh(store_root, ctr)


def remove_container(store_root: Path, ref: str, *, force: bool = False, volumes: bool = False) -> str:
    """`rm`: refuse a running container unless `force` (then kill it first)."""
    ctr = get(store_root, ref)
    if ctr.running:
        if not force:
            raise ContainerConflict(f"you cannot remove a running container {ctr.id[:12]}: stop it "
                                    "first or use --force")
        try:
            container_runtime(store_root).kill(ctr.id, "KILL")
        except ContainerRuntimeError:
            pass
        _wait_unsupervised(ctr, 30)
    try:
        fd = try_lock(ctr.path("lock"))
    except FileNotFoundError:
        return ctr.id  # removed by its own --rm meanwhile
    if fd is None:
        raise ContainerConflict(f"container {ctr.id[:12]} is still being supervised: try again")
    try:
        if not ctr.dir.exists():
            return ctr.id  # removed by its own --rm meanwhile
        release(ctr, container_runtime(store_root))
        remove(store_root, ctr, volumes=volumes)
    finally:
        os.close(fd)
    return ctr.id


def exec_in(store_root: Path, ref: str, args: list[str], **options: Any) -> int:
    """`docker exec`; options as execute.run_exec (env, user, workdir, tty, interactive, detach)."""
    from dockyard.container.execute import run_exec

    ctr = get(store_root, ref)
    return run_exec(ctr, container_runtime(store_root), args, **options)


def container_logs(store_root: Path, ref: str, *, follow: bool = False,
                   tail: int | None = None) -> Iterator[tuple[str, bytes, str]]:
    """(stream, data, time) entries of a detached container's log."""
    from dockyard.container.logs import read_log

    ctr = get(store_root, ref)

    def alive() -> bool:
        return ctr.dir.exists() and _supervised(ctr)

    return read_log(ctr.path("container.log"), tail=tail, follow=follow, alive=alive)


def images_in_use(store_root: Path) -> set[str]:
    """Ids of the images that containers (running or not) are made from."""
    return {str(c.doc.get("Image")) for c in records.iter_containers(container_root(store_root))}

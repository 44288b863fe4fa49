"""Supervising a container's run: in the foreground, or from a detached monitor.

Foreground: the container's stdio is ours (nothing is copied unless `-t`
needs a pty of ours), signals we receive are forwarded (runtime.supervise),
and the exit code is returned.

Detached: we fork a monitor (double fork + setsid: it survives us, and it
keeps no descriptor of ours but a status pipe and the container's lock). It
starts runc, reports "started" or the start error back through the pipe,
copies the output into container.log, runs the HEALTHCHECK and records the
exit. Both supervisors hold the container's lock while they watch it (see
records.py), and take it before the state says "running".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from dockyard.container.errors import InvalidOption
from dockyard.container.launch import Launch, release, remove, sweep_trash
from dockyard.container.oom import OomWatch
from dockyard.container.records import now, try_lock
from dockyard.runtime.runc import ContainerStartError

__all__ = ["run_foreground", "start_detached"]


def _finish(launch: Launch, code: int | None, error: BaseException | None,
            defer: bool = False, watch: OomWatch | None = None) -> None:
    """Record how the run ended and free (or remove) the container.

    `error`: the process never started; the container stays "created", as
    Docker leaves it, with the reason in State.Error.
    """
    ctr = launch.ctr
    oom_killed = watch is not None and watch.result()
    if error is not None:
        exit_code = error.exit_code if isinstance(error, ContainerStartError) else 125
        ctr.save_state(Status="created", ExitCode=exit_code, Error=str(error), Pid=0)
    else:
        ctr.save_state(Status="exited", ExitCode=code if code is not None else 255, Pid=0,
                       FinishedAt=now(), OOMKilled=oom_killed)
    release(ctr, launch.runtime, launch.slirp)
    if launch.opts.rm:
        # A detached --rm container may be waited for: keep its exit code a while.
        remove(launch.store_root, ctr, volumes=True, defer=defer, keep_exit_code=not defer)


def _has_terminal() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDONLY | os.O_CLOEXEC))
    except OSError:
        return False
    return True


def run_foreground(launch: Launch, *, stdin: int | None = None, stdout: int | None = None,
                   stderr: int | None = None) -> int:
    """Start the container, wait for it, return its exit code (or raise ContainerStartError).

    stdin is used only with `-i` (else /dev/null); stdout/stderr default to ours.
    """
    from dockyard.runtime.supervise import PtyRelay, fd_sink, wait_forwarding

    ctr, rt, opts = launch.ctr, launch.runtime, launch.opts
    lock = try_lock(ctr.path("lock"))
    code: int | None = None
    error: BaseException | None = None
    relay = None
    watch = None
    log = rt.new_log(ctr.id)
    try:
        in_fd = (sys.stdin.fileno() if stdin is None else stdin) if opts.interactive else None
        out_fd = sys.stdout.fileno() if stdout is None else stdout
        try:
            if opts.tty and in_fd is not None and not os.isatty(in_fd):
                raise InvalidOption("the input device is not a TTY")
            launch.network_ready()
        except BaseException as exc:
            error = exc
            raise
        # Reading a terminal needs runc in our (foreground) process group; otherwise
        # it gets a group of its own and only the signals we forward.
        shares = in_fd is not None and os.isatty(in_fd)
        ctr.save_state(Status="running", StartedAt=now(), MonitorPid=os.getpid())
        watch = _oom_watch(launch)
        if opts.tty and not (shares and _has_terminal()):
            # runc drives a terminal only from a controlling tty: give it a pty of ours.
            relay = PtyRelay(fd_sink(out_fd), in_fd)
            shares = False
            proc = rt.start_run(ctr.path("bundle"), ctr.id, log, pid_file=ctr.path("pid"),
                                **relay.stdio)  # type: ignore[arg-type]
            relay.start()
        else:
            proc = rt.start_run(ctr.path("bundle"), ctr.id, log, stdin=in_fd, stdout=stdout,
                                stderr=stderr, pid_file=ctr.path("pid"), new_group=not shares)
        sweep = _sweep_in_background(launch.store_root)
        try:
            status = wait_forwarding(proc, shares_terminal=shares, meanwhile=sweep)
        except BaseException:
            rt.stop_process(ctr.id, proc)
            raise
        if relay is not None:
            relay.close()
            relay = None
        code = rt.finish(status, log)
        return code
    except ContainerStartError as exc:
        error = exc
        exc.shown = True  # runc printed it on the stderr we share
        raise
    finally:
        if relay is not None:
            relay.close(0)
        log.unlink(missing_ok=True)
        _finish(launch, code, error, defer=True, watch=watch)
        if lock is not None:
            os.close(lock)


def _oom_watch(launch: Launch) -> OomWatch | None:
    # Only a memory limit makes the OOM killer pick from the container's cgroup.
    return OomWatch(launch.ctr.id, launch.ctr.path("pid")) if launch.opts.memory else None


def _sweep_in_background(store_root: Any) -> Callable[[], None]:
    # Earlier `run --rm`s left their directories in the trash; deleting them
    # while our container runs costs the user no time.
    def start() -> None:
        threading.Thread(target=sweep_trash, args=(store_root,), name="sweep", daemon=True).start()
    return start


def start_detached(launch: Launch) -> None:
    """Fork the monitor; return once the container runs (or raise its start error)."""
    try:
        launch.network_ready()
    except BaseException as exc:
        _finish(launch, None, exc)
        raise
    ctr = launch.ctr
    lock = try_lock(ctr.path("lock"))
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the intermediate child: a new session, then the monitor
        try:
            os.close(read_end)
            os.setsid()
            if os.fork() == 0:
                keep = {write_end, lock} | ({launch.slirp.exit_fd} if launch.slirp else set())
                _detach_stdio(keep)
                _monitor(launch, write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    if lock is not None:
        os.close(lock)
    if launch.slirp is not None:  # the monitor holds slirp's exit fd from now on
        os.close(launch.slirp.exit_fd)
        launch.slirp.exit_fd = -1
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as fh:
        data = fh.read()
    try:
        report: dict[str, Any] = json.loads(data or b"{}")
    except ValueError:
        report = {}
    if not report.get("ok"):
        message = report.get("error") or "the container monitor exited before the container started"
        raise ContainerStartError(message, int(report.get("code", 125)))


def _detach_stdio(keep: set[int | None]) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    wanted = sorted(fd for fd in keep if fd is not None and fd > 2)
    start = 3
    for fd in wanted + [os.sysconf("SC_OPEN_MAX")]:
        os.closerange(start, fd)
        start = fd + 1


def _report(fd: int, **message: Any) -> None:
    try:
        os.write(fd, json.dumps(message).encode())
    finally:
        os.close(fd)


def _monitor(launch: Launch, status_fd: int) -> None:
    from dockyard.container.health import HealthChecker
    from dockyard.container.logs import LogWriter
    from dockyard.runtime.supervise import PtyRelay

    ctr, rt, opts = launch.ctr, launch.runtime, launch.opts
    writer = LogWriter(ctr.path("container.log"))
    runc_log = rt.new_log(ctr.id)
    pid_file = ctr.path("pid")
    threads: list[threading.Thread] = []
    relay = None
    stdin_keep = None
    code: int | None = None
    error: ContainerStartError | None = None
    status = [status_fd]  # emptied once the report is sent
    watch = None

    def report(**message: Any) -> None:
        if status:
            _report(status.pop(), **message)

    try:
        stdin = None
        if opts.interactive:  # an open pipe nobody writes: `-di sh` waits instead of seeing EOF
            stdin, stdin_keep = os.pipe()
        watch = _oom_watch(launch)
        if opts.tty:
            relay = PtyRelay(lambda data: writer.write("stdout", data))
            proc = rt.start_run(ctr.path("bundle"), ctr.id, runc_log, pid_file=pid_file,
                                **relay.stdio)  # type: ignore[arg-type]
            relay.start()
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            proc = rt.start_run(ctr.path("bundle"), ctr.id, runc_log, stdin=stdin, stdout=out_w,
                                stderr=err_w, pid_file=pid_file, new_group=True)
            os.close(out_w)
            os.close(err_w)
            for fd, name in ((out_r, "stdout"), (err_r, "stderr")):
                thread = threading.Thread(target=writer.pump, args=(fd, name), daemon=True)
                thread.start()
                threads.append(thread)
        if stdin is not None:
            os.close(stdin)
        while not pid_file.exists() and proc.poll() is None:
            time.sleep(0.002)
        if proc.poll() is not None and not pid_file.exists():
            try:
                rt.finish(proc.returncode, runc_log)
            except ContainerStartError as exc:
                error = exc
                report(ok=False, error=str(exc), code=exc.exit_code)
                return
        pid = _read_pid(pid_file)
        ctr.save_state(Status="running", Pid=pid, StartedAt=now(), MonitorPid=os.getpid())
        report(ok=True, pid=pid)
        check = ctr.private.get("healthcheck")
        checker = HealthChecker(ctr, rt, check) if check else None
        while True:
            timeout = None if checker is None else max(0.0, checker.due - time.monotonic())
            try:
                proc.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                assert checker is not None
                checker.run_probe()
        code = proc.returncode
    except BaseException as exc:  # noqa: BLE001 - the monitor must always record an end
        try:
            report(ok=False, error=f"container monitor: {exc}", code=125)
        except OSError:
            pass
    finally:
        for thread in threads:
            thread.join(5)
        if relay is not None:
            relay.close()
        writer.close()
        if stdin_keep is not None:
            os.close(stdin_keep)
        runc_log.unlink(missing_ok=True)
        _finish(launch, code, error, watch=watch)


def _read_pid(path: os.PathLike[str]) -> int:
    try:
        with open(path, encoding="ascii") as fh:
            return int(fh.read().strip() or 0)
    except (OSError, ValueError):
        return 0

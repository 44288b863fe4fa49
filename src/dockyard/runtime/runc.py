"""Driving an OCI runtime binary (runc, or crun as a fallback).

runc keeps per-container state under `--root`; dockyard passes a directory
it owns, never /run/runc, so its containers do not mix with anyone else's.
`runc --log` (JSON) receives runc's own errors: a non-zero exit with an error
entry there means the container never started (bad config, missing
executable), which `run` raises instead of returning, since it is not the
container's exit code. A missing executable maps to Docker's 127, an
unrunnable one to 126 (`ContainerStartError.exit_code`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeAlias

from dockyard.errors import ContainerRuntimeError
from dockyard.runtime.spec import bind_mount, make_spec, write_config

__all__ = ["DEFAULT_STATE_ROOT", "ContainerStartError", "Runtime", "find_runtime"]

Stdio: TypeAlias = int | IO[Any] | None

# runc's rule for container ids.
_VALID_ID = re.compile(r"[\w+.-]+")

# How long a killed container may take to be reaped before we give up on it.
_KILL_GRACE = 10.0


class ContainerStartError(ContainerRuntimeError):
    """The runtime could not start the container's process.

    `exit_code` is what Docker reports for the same failure: 127 when the
    command is not found, 126 when it cannot be executed, 125 otherwise.
    """

    def __init__(self, message: str, exit_code: int = 125):
        super().__init__(message)
        self.exit_code = exit_code
        self.shown = False  # True when runc already printed it on the user's stderr


def _start_error(message: str) -> ContainerStartError:
    lower = message.lower()
    if "exec:" in lower or "executable file not found" in lower:
        if "not found" in lower or "no such file or directory" in lower:
            return ContainerStartError(message, 127)
        return ContainerStartError(message, 126)
    return ContainerStartError(message, 125)


def _runtime_errors(log_path: Path) -> list[str]:
    try:
        text = log_path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    errors = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("error", "fatal", "panic") and entry.get("msg"):
            errors.append(str(entry["msg"]))
    return errors


class Runtime:
    """One OCI runtime binary with its own state directory."""

    # A plain class, not a dataclass: building one costs ~3M instructions at every start.
    __slots__ = ("binary", "name", "state_root")

    def __init__(self, binary: str, state_root: Path, name: str = "runc"):
        self.binary = binary
        self.state_root = state_root
        self.name = name

    def __repr__(self) -> str:
        return f"Runtime({self.binary!r}, {str(self.state_root)!r}, {self.name!r})"

    def _base(self, log: Path | None = None) -> list[str]:
        cmd = [self.binary, "--root", str(self.state_root)]
        if log is not None:
            cmd += ["--log", str(log), "--log-format", "json"]
        return cmd

    def _call(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self._base() + list(args), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, close_fds=True, check=False)
        if check and proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            detail = msg[-1] if msg else f"exit status {proc.returncode}"
            raise ContainerRuntimeError(f"{self.name} {args[0]}: {detail}")
        return proc

    def _check_id(self, container_id: str) -> None:
        if not _VALID_ID.fullmatch(container_id):
            raise ContainerRuntimeError(f"invalid container id: {container_id!r}")

    def new_log(self, container_id: str) -> Path:
        """A fresh file for runc's JSON log of one call (the caller unlinks it)."""
        self.state_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, name = tempfile.mkstemp(prefix=f"{container_id}.", suffix=".log", dir=self.state_root)
        os.close(fd)
        return Path(name)

    def _spawn(self, cmd: list[str], *, stdin: Stdio, stdout: Stdio, stderr: Stdio,
               new_group: bool, preexec_fn: Callable[[], None] | None) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL if stdin is None else stdin, stdout=stdout,
                stderr=stderr, close_fds=True, process_group=0 if new_group and not preexec_fn else None,
                start_new_session=preexec_fn is not None,
                preexec_fn=preexec_fn)  # noqa: PLW1509 - only PtyRelay's ioctl, before its threads start
        except OSError as exc:
            raise ContainerRuntimeError(f"starting {self.binary}: {exc.strerror}") from exc

    def start_run(self, bundle: Path, container_id: str, log: Path, *, stdin: Stdio = None,
                  stdout: Stdio = None, stderr: Stdio = None, pid_file: Path | None = None,
                  new_group: bool = False,
                  preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen[bytes]:
        """Start `runc run` for the bundle and return at once (see `finish`).

        new_group: put runc in a process group of its own, so a terminal's
        Ctrl-C reaches it only through whoever forwards signals.
        preexec_fn runs in a new session (used to give runc a controlling pty).
        """
        self._check_id(container_id)
        cmd = self._base(log) + ["run", "--bundle", str(bundle)]
        if pid_file is not None:
            cmd += ["--pid-file", str(pid_file)]
        return self._spawn(cmd + [container_id], stdin=stdin, stdout=stdout, stderr=stderr,
                           new_group=new_group, preexec_fn=preexec_fn)

    def start_exec(self, container_id: str, process_file: Path, log: Path, *, detach: bool = False,
                   stdin: Stdio = None, stdout: Stdio = None, stderr: Stdio = None,
                   pid_file: Path | None = None, new_group: bool = False,
                   preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen[bytes]:
        """Start `runc exec --process FILE` in a running container."""
        self._check_id(container_id)
        cmd = self._base(log) + ["exec", "--process", str(process_file)]
        if detach:
            cmd.append("--detach")
        if pid_file is not None:
            cmd += ["--pid-file", str(pid_file)]
        return self._spawn(cmd + [container_id], stdin=stdin, stdout=stdout, stderr=stderr,
                           new_group=new_group, preexec_fn=preexec_fn)

    @staticmethod
    def finish(code: int, log: Path) -> int:
        """The exit code of a finished run/exec, or ContainerStartError when runc
        itself failed (its log then carries an error: the process never ran)."""
        if code != 0:
            errors = _runtime_errors(log)
            if errors:
                raise _start_error(errors[-1])
        return code

    def run(self, bundle: Path, container_id: str, *, stdin: Stdio = None,
            stdout: Stdio = None, stderr: Stdio = None) -> int:
        """Run the bundle's process in the foreground; return its exit code.

        A process killed by a signal gives 128+signal, as in Docker. stdin
        defaults to /dev/null; stdout/stderr default to this process's.
        Only these three descriptors reach the container. The container's
        state is removed afterwards, also on errors and KeyboardInterrupt.
        """
        self._check_id(container_id)
        log = self.new_log(container_id)
        proc = None
        try:
            proc = self.start_run(bundle, container_id, log, stdin=stdin, stdout=stdout, stderr=stderr)
            return self.finish(proc.wait(), log)
        except BaseException:
            if proc is not None and proc.poll() is None:
                self._stop(container_id, proc)
            raise
        finally:
            log.unlink(missing_ok=True)
            self.cleanup(container_id)

    def _stop(self, container_id: str, proc: subprocess.Popen[bytes]) -> None:
        # Interrupted while the container runs: kill it, then let runc reap it.
        # The kill is repeated because runc may still be creating the container.
        deadline = time.monotonic() + _KILL_GRACE
        while True:
            self._call("kill", container_id, "KILL", check=False)
            try:
                proc.wait(timeout=0.2)
                return
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    break
        proc.send_signal(signal.SIGKILL)  # runc is stuck; `delete --force` finishes the job
        proc.wait()

    def stop_process(self, container_id: str, proc: subprocess.Popen[bytes]) -> None:
        """Kill a container whose runc we started and wait for runc to go."""
        self._stop(container_id, proc)

    def cleanup(self, container_id: str) -> None:
        # `runc run` deletes its container on a normal exit; only a failure
        # or an interruption leaves state behind. Checking first saves a spawn.
        if (self.state_root / container_id).exists():
            self._call("delete", "--force", container_id, check=False)

    def state(self, container_id: str) -> dict[str, Any] | None:
        """The runtime's state JSON for a container, or None when it does not exist."""
        if not (self.state_root / container_id).exists():
            return None
        proc = self._call("state", container_id, check=False)
        if proc.returncode != 0:
            return None
        try:
            state: dict[str, Any] = json.loads(proc.stdout)
            return state
        except ValueError as exc:
            raise ContainerRuntimeError(f"{self.name} state {container_id}: unreadable output") from exc

    def kill(self, container_id: str, sig: str | int = "KILL", *, all_processes: bool = False) -> None:
        """Send a signal to the container's init (or every process with all_processes)."""
        args = ["kill"] + (["--all"] if all_processes else []) + [container_id, str(sig)]
        self._call(*args)

    def delete(self, container_id: str, *, force: bool = False) -> None:
        """Remove a stopped container's state (force: kill it first if running)."""
        self._call("delete", *(["--force"] if force else []), container_id)


_probed: dict[str, bool] = {}


def _probe_runc(binary: str) -> bool:
    try:
        proc = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _probe_by_running(binary: str, name: str) -> bool:
    # crun builds fail at run time on some hosts (hybrid cgroups), so only a
    # real container run tells: /bin/true with the host's /usr and libs bound in.
    with tempfile.TemporaryDirectory(prefix="dockyard-probe-") as tmp:
        base = Path(tmp)
        rootfs = base / "rootfs"
        rootfs.mkdir()
        mounts = [bind_mount(p, p, readonly=True)
                  for p in ("/bin", "/usr", "/lib", "/lib64", "/sbin") if os.path.isdir(p)]
        spec = make_spec(rootfs=rootfs, args=["/bin/true"], env=["PATH=/usr/bin:/bin"],
                         mounts=mounts, network="host")
        write_config(base, spec)
        runtime = Runtime(binary, base / "state", name)
        try:
            return runtime.run(base, "probe", stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) == 0
        except (ContainerRuntimeError, OSError):
            return False


DEFAULT_STATE_ROOT = Path("/run/dockyard/runtime")


def find_runtime(state_root: Path | None = None, *,
                 candidates: tuple[str, ...] = ("runc", "crun")) -> Runtime:
    """The first working runtime among `candidates`, with state under `state_root`
    (default /run/dockyard/runtime: never runc's own /run/runc).

    runc is trusted once `runc --version` works; any other runtime must pass a
    real tiny run first. Probe results are cached per binary for the process.
    """
    for name in candidates:
        binary = shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")
        if binary is None:
            continue
        if binary not in _probed:
            _probed[binary] = _probe_runc(binary) if name == "runc" else _probe_by_running(binary, name)
        if _probed[binary]:
            return Runtime(binary, Path(state_root or DEFAULT_STATE_ROOT), name)
    raise ContainerRuntimeError("no working OCI runtime found: install runc")

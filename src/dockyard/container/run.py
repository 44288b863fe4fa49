"""`dockyard run`: create a container from an image and start it."""

from __future__ import annotations

import os
import sys
from typing import Any

from dockyard.container.errors import InvalidOption
from dockyard.container.launch import create
from dockyard.container.options import RunOptions

__all__ = ["NOT_A_TTY", "check_tty", "run"]

NOT_A_TTY = "the input device is not a TTY"


def _isatty(stdin: int | None) -> bool:
    try:
        return os.isatty(sys.stdin.fileno() if stdin is None else stdin)
    except (AttributeError, ValueError, OSError):
        return False


def check_tty(opts: RunOptions, stdin: int | None) -> None:
    """`-it` needs a terminal on stdin; refused before anything is created, as Docker does."""
    if opts.tty and opts.interactive and not opts.detach and not _isatty(stdin):
        raise InvalidOption(NOT_A_TTY)


def run(store: Any, image: Any, opts: RunOptions, *, stdin: int | None = None,
        stdout: int | None = None, stderr: int | None = None,
        image_name: str | None = None) -> tuple[str, int | None]:
    """Run `image` (a store Image) with `opts`: (container id, exit code).

    Foreground: waits and returns the container's exit code; the streams
    default to ours (stdin is used only with `interactive`), and without `rm`
    the output is also kept in the container's log. Detached: returns once
    the container runs, with None for the code. A process that cannot start
    raises `ContainerStartError` (exit_code 125/126/127); when detached, the
    error carries the created container's id as `container_id`.
    `image_name` is the reference the user gave, for ps and inspect.
    """
    from dockyard.container.monitor import run_foreground, start_detached

    check_tty(opts, stdin)
    if opts.detach:
        with store.lock():
            launch = create(store, image, opts, image_name)
        try:
            start_detached(launch)
        except Exception as exc:
            exc.container_id = launch.ctr.id  # type: ignore[attr-defined]
            raise
        return launch.ctr.id, None
    # Held for the whole run: the store's GC must not take our layers away.
    with store.lock():
        launch = create(store, image, opts, image_name)
        if opts.rm:  # nobody could read its log
            return launch.ctr.id, run_foreground(launch, stdin=stdin, stdout=stdout, stderr=stderr)
        return launch.ctr.id, _run_logged(launch, stdin, stdout, stderr)


def _run_logged(launch: Any, stdin: int | None, stdout: int | None, stderr: int | None) -> int:
    from dockyard.container.logs import LogTee
    from dockyard.container.monitor import _has_terminal, run_foreground
    from dockyard.runtime.runc import ContainerStartError

    opts = launch.opts
    out = sys.stdout.fileno() if stdout is None else stdout
    err = sys.stderr.fileno() if stderr is None else stderr
    # -it on the user's terminal: runc relays the container's terminal itself, without ONLCR.
    relayed_by_runc = opts.tty and opts.interactive and _isatty(stdin) and _has_terminal()
    tee = LogTee(launch.ctr.path("container.log"), out, err, tty=opts.tty, onlcr=relayed_by_runc)
    try:
        return run_foreground(launch, stdin=stdin, stdout=tee.stdout,
                              stderr=err if opts.tty else tee.stderr)
    except ContainerStartError:
        tee.close()
        tee.discard()  # runc's error, not the container's output
        raise
    finally:
        tee.close()

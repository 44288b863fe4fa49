"""`dockyard run`: create a container from an image and start it."""

from __future__ import annotations

from typing import Any

from dockyard.container.launch import create
from dockyard.container.options import RunOptions

__all__ = ["run"]


def run(store: Any, image: Any, opts: RunOptions, *, stdin: int | None = None,
        stdout: int | None = None, stderr: int | None = None,
        image_name: str | None = None) -> tuple[str, int | None]:
    """Run `image` (a store Image) with `opts`: (container id, exit code).

    Foreground: waits and returns the container's exit code; the streams
    default to ours (stdin is used only with `interactive`). Detached:
    returns once the container runs, with None for the code. A process that
    cannot start raises `ContainerStartError` (exit_code 125/126/127).
    `image_name` is the reference the user gave, for ps and inspect.
    """
    from dockyard.container.monitor import run_foreground, start_detached

    if opts.detach:
        with store.lock():
            launch = create(store, image, opts, image_name)
        start_detached(launch)
        return launch.ctr.id, None
    # Held for the whole run: the store's GC must not take our layers away.
    with store.lock():
        launch = create(store, image, opts, image_name)
        return launch.ctr.id, run_foreground(launch, stdin=stdin, stdout=stdout, stderr=stderr)

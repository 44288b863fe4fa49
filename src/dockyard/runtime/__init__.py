"""Running processes in containers: overlay mounts, OCI specs, runc.

Modules: `overlay` (mount the layers), `users` (USER and --chown against the
image's own passwd/group), `spec` (config.json with Docker's defaults),
`runc` (the runtime binary) and `container` (`run_process`, the one call a
RUN step needs, plus mount-stub clean-up).
"""

from __future__ import annotations

from dockyard.runtime.container import RunResult, missing_mount_points, remove_mount_stubs, run_process
from dockyard.runtime.overlay import mount_overlay, mounted, unmount
from dockyard.runtime.runc import ContainerStartError, Runtime, find_runtime
from dockyard.runtime.spec import make_spec
from dockyard.runtime.users import lookup_home, resolve_chown, resolve_user

__all__ = [
    "ContainerStartError",
    "RunResult",
    "Runtime",
    "find_runtime",
    "lookup_home",
    "make_spec",
    "missing_mount_points",
    "mount_overlay",
    "mounted",
    "remove_mount_stubs",
    "resolve_chown",
    "resolve_user",
    "run_process",
    "unmount",
]

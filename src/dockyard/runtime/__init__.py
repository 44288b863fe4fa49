"""Running processes in containers: overlay mounts, OCI specs, runc.

Modules: `overlay` (mount the layers), `users` (USER and --chown against the
image's own passwd/group), `spec` (config.json with Docker's defaults),
`runc` (the runtime binary), `container` (`run_process`, the one call a
RUN step needs, plus mount-stub clean-up) and `supervise` (signal
forwarding and a pty for runc).

The names below are loaded on first use: `dockyard run` imports only the
submodules it needs, which keeps its start-up short.
"""

from __future__ import annotations

from dockyard._lazy import lazy_exports

_EXPORTS = {
    "ContainerStartError": "runc", "Runtime": "runc", "find_runtime": "runc",
    "RunResult": "container", "missing_mount_points": "container", "remove_mount_stubs": "container",
    "run_process": "container",
    "mount_overlay": "overlay", "mounted": "overlay", "unmount": "overlay",
    "make_spec": "spec",
    "lookup_home": "users", "resolve_chown": "users", "resolve_user": "users",
}

__all__ = [
    "ContainerStartError", "RunResult", "Runtime", "find_runtime", "lookup_home", "make_spec",
    "missing_mount_points", "mount_overlay", "mounted", "remove_mount_stubs", "resolve_chown",
    "resolve_user", "run_process", "unmount",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

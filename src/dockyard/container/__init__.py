"""Containers from images, the way `docker run` makes them, on runc without a daemon.

Layers: `options` (flags as values) and `process` (Docker's ENTRYPOINT/CMD/
ENV rules) are pure; `records` and `volumes` keep state on disk under the
store root; `mounts`, `network` and `security` turn options into runtime
settings; `launch` creates a container; `monitor` supervises it (foreground
or detached); `ops` works on existing ones; `execute` and `health` start
processes inside running ones.
"""

from __future__ import annotations

from dockyard._lazy import lazy_exports

from dockyard.container.errors import (
                                       ContainerConflict,
                                       ContainerError,
                                       ContainerNotFound,
                                       InvalidOption,
                                       NetworkError,
                                       VolumeError,
                                       VolumeNotFound,
)
from dockyard.container.options import (
                                       MountSpec,
                                       PortSpec,
                                       RunOptions,
                                       parse_env_file,
                                       parse_mount,
                                       parse_publish,
                                       parse_security_opts,
                                       parse_tmpfs,
                                       parse_volume,
                                       resolve_env_items,
)
from dockyard.container.run import run
from dockyard.container.volumes import Volume, VolumeStore

__all__ = [
    "ContainerConflict", "ContainerError", "ContainerNotFound", "InvalidOption", "MountSpec",
    "NetworkError", "PortSpec", "RunOptions", "Volume", "VolumeError", "VolumeNotFound",
    "VolumeStore", "container_logs", "exec_in", "get", "images_in_use", "inspect", "kill",
    "list_containers", "parse_env_file", "parse_mount", "parse_publish", "parse_security_opts",
    "parse_tmpfs", "parse_volume", "remove_container", "resolve_env_items", "run", "stop", "wait",
]

# Work on existing containers, loaded on first use (`run` does not need it).
_OPS = frozenset({"container_logs", "exec_in", "get", "images_in_use", "inspect", "kill",
                  "list_containers", "remove_container", "stop", "wait"})


__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(_OPS, "ops"))

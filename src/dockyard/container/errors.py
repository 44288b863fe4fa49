"""Errors of `dockyard run` and the container commands.

ContainerRuntimeError            (dockyard.errors)
 └── ContainerError              a container operation failed
      ├── InvalidOption          a flag value Docker would refuse (exit 125)
      ├── ContainerNotFound      no container by that name or id
      ├── ContainerConflict      name in use, container running, ...
      ├── VolumeError            volume store problems
      │    └── VolumeNotFound
      └── NetworkError           network namespace, slirp4netns, ports

`exit_code` is what `docker run` exits with for the same failure.
"""

from __future__ import annotations

from dockyard.errors import ContainerRuntimeError

__all__ = ["ContainerConflict", "ContainerError", "ContainerNotFound", "InvalidOption",
           "NetworkError", "VolumeError", "VolumeNotFound"]


class ContainerError(ContainerRuntimeError):
    exit_code = 125


class InvalidOption(ContainerError):
    pass


class ContainerNotFound(ContainerError):
    pass


class ContainerConflict(ContainerError):
    pass


class VolumeError(ContainerError):
    pass


class VolumeNotFound(VolumeError):
    pass


class NetworkError(ContainerError):
    pass

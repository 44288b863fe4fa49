"""dockyard: build, run and ship OCI/Docker images without a daemon."""

__version__ = "0.1.0"

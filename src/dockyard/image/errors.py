"""The one error the image model raises.

DockyardError
 └── ImageFormatError   a digest, platform, media type, descriptor, manifest,
                        index or config that breaks the OCI/Docker image format

Messages say which document and which field is wrong, e.g.
``manifest: layers[2].size: must be a non-negative integer, got "12"``.
"""

from __future__ import annotations

from dockyard.errors import DockyardError

__all__ = ["ImageFormatError"]


class ImageFormatError(DockyardError):
    """Image JSON or an image value (digest, platform…) is malformed."""

"""Image analysis: what each layer holds and wastes (`dockyard layers`, with an
HTML treemap), differences between two images (`dockyard diff`) and software
bills of materials (`dockyard sbom`, SPDX 2.3 / CycloneDX 1.5 JSON, and the
OCI artifact that attaches one to a pushed image).

All of it reads the layer tars of the store as streams, once, bottom to top.
"""

from __future__ import annotations

from .artifact import referrers_index, referrers_tag, sbom_artifact
from .diff import diff_images, format_diff
from .html_report import render_html, write_html
from .packages import Package, find_packages
from .report import format_layers, human_size, image_name, layers_report
from .sbom import (
    CYCLONEDX_JSON,
    FORMATS,
    MEDIA_TYPES,
    SPDX_JSON,
    document_bytes,
    sbom_document,
    sbom_format,
)
from .scan import Entry, ImageScan, LayerScan, scan_image

__all__ = [
    "CYCLONEDX_JSON", "FORMATS", "MEDIA_TYPES", "SPDX_JSON", "Entry", "ImageScan", "LayerScan",
    "Package", "diff_images", "document_bytes", "find_packages", "format_diff", "format_layers",
    "human_size", "image_name", "layers_report", "referrers_index", "referrers_tag", "render_html",
    "sbom_artifact", "sbom_document",
    "sbom_format", "scan_image", "write_html",
]

"""Layer tars: deterministic writing, overlay upper-dir diffs, safe application."""

from __future__ import annotations

from dockyard.layer.apply import apply_layer
from dockyard.layer.compress import open_layer
from dockyard.layer.digest import HashingWriter, chain_id, chain_ids
from dockyard.layer.write import write_tree, write_upper_diff

__all__ = [
    "HashingWriter",
    "apply_layer",
    "chain_id",
    "chain_ids",
    "open_layer",
    "write_tree",
    "write_upper_diff",
]

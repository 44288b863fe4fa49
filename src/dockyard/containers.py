"""Moved: containers live in the `dockyard.container` package.

This module only re-exports its entry points for older imports.
"""

from __future__ import annotations

from dockyard.container import RunOptions, run

__all__ = ["RunOptions", "run"]

"""The package's public surface and its place at the bottom of dockyard's layers."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType

import pytest

import dockyard.image
import dockyard.reference

MODULES = ["config", "descriptor", "digest", "errors", "manifest", "platform"]
IMAGE_DIR = Path(dockyard.image.__file__ or "").parent


@pytest.mark.parametrize("name", MODULES)
def test_module_exports_are_reexported(name: str) -> None:
    module = importlib.import_module(f"dockyard.image.{name}")
    assert set(module.__all__) <= set(dockyard.image.__all__)


@pytest.mark.parametrize(
    "module",
    [dockyard.image, dockyard.reference, dockyard.image.mediatypes],
    ids=lambda m: m.__name__,
)
def test_all_names_exist(module: ModuleType) -> None:
    for name in module.__all__:
        assert hasattr(module, name), name


@pytest.mark.parametrize(
    "path",
    [*sorted(IMAGE_DIR.glob("*.py")), Path(dockyard.reference.__file__ or "")],
    ids=lambda p: p.name,
)
def test_imports_point_downward_only(path: Path) -> None:
    # reference and image depend on nothing in dockyard but the error tree
    allowed = ("dockyard.errors", "dockyard.image")
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name.startswith("dockyard"):
                assert name.startswith(allowed), f"{path.name} imports {name}"

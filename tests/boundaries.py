"""What a module imports, read from its source: for the packages' dependency-direction tests."""

from __future__ import annotations

import ast
from pathlib import Path


def imported_modules(path: Path) -> set[str]:
    """Dotted names a module imports (absolute imports, at any depth of the code);
    `from glam import trace` counts as `glam.trace`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "glam":
                names |= {f"glam.{alias.name}" for alias in node.names}
            else:
                names.add(node.module)
    return names


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports."""
    return {name.split(".")[0] for name in imported_modules(path)}

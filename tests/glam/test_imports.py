"""The model stands alone: `glam` imports nothing from storage, the service or the dashboard."""

from __future__ import annotations

import ast
from pathlib import Path

GLAM = Path(__file__).resolve().parents[2] / "glam"
FORBIDDEN = {"backend", "storage", "ui", "bench", "tests"}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports (absolute imports, at any depth of the code)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_glam_imports_nothing_from_the_other_packages():
    files = sorted(GLAM.rglob("*.py"))
    assert len(files) > 20  # the walk found the package, subpackages included
    assert any(f.parent.name == "gather" for f in files)
    offenders = {
        str(f.relative_to(GLAM)): found
        for f in files
        if (found := imported_packages(f) & FORBIDDEN)
    }
    assert offenders == {}

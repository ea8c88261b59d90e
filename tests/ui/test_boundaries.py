"""The dashboard reaches the data over HTTP only: no import of the model, storage or backend."""

from __future__ import annotations

import ast
from pathlib import Path

UI = Path(__file__).resolve().parents[2] / "ui"
FORBIDDEN = {"glam", "storage", "backend"}


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_ui_imports_nothing_from_the_other_packages():
    files = sorted(UI.rglob("*.py"))
    assert len(files) > 10  # the walk found the package
    offenders = {
        str(f.relative_to(UI)): found for f in files if (found := imported_packages(f) & FORBIDDEN)
    }
    assert offenders == {}

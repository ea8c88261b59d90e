"""The dashboard reaches the data over HTTP only: no import of the model, storage or backend."""

from __future__ import annotations

from pathlib import Path

from tests.boundaries import imported_packages

UI = Path(__file__).resolve().parents[2] / "ui"
FORBIDDEN = {"glam", "storage", "backend"}


def test_ui_imports_nothing_from_the_other_packages():
    files = sorted(UI.rglob("*.py"))
    assert len(files) > 10  # the walk found the package
    offenders = {
        str(f.relative_to(UI)): found for f in files if (found := imported_packages(f) & FORBIDDEN)
    }
    assert offenders == {}

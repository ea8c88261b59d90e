"""The model stands alone: `glam` imports nothing from storage, the service or the dashboard."""

from __future__ import annotations

from pathlib import Path

from tests.boundaries import imported_packages

GLAM = Path(__file__).resolve().parents[2] / "glam"
FORBIDDEN = {"backend", "storage", "ui", "bench", "tests"}


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

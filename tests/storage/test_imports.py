"""Storage depends on the model only through its data contract: of `glam`, it imports
`glam.trace` alone, and nothing of the service or the dashboard."""

from __future__ import annotations

from pathlib import Path

from tests.boundaries import imported_modules

STORAGE = Path(__file__).resolve().parents[2] / "storage"
FORBIDDEN = {"backend", "ui", "bench", "tests"}
ALLOWED_GLAM = {"glam.trace"}


def offences(names: set[str]) -> set[str]:
    return {
        name
        for name in names
        if name.split(".")[0] in FORBIDDEN
        or (name.split(".")[0] == "glam" and name not in ALLOWED_GLAM)
    }


def test_the_rule_tells_the_contract_from_the_rest_of_the_model():
    assert offences({"glam.trace", "sqlalchemy", "storage.schema"}) == set()
    assert offences({"glam", "glam.model", "glam.tracer", "backend.jobs", "ui"}) == {
        "glam", "glam.model", "glam.tracer", "backend.jobs", "ui",
    }  # fmt: skip


def test_storage_imports_only_the_trace_contract_of_glam_and_nothing_else():
    files = sorted(STORAGE.rglob("*.py"))
    assert len(files) > 15  # the walk found the package, migrations included
    assert any("migrations" in f.parts for f in files)
    offenders = {
        str(f.relative_to(STORAGE)): found
        for f in files
        if (found := offences(imported_modules(f)))
    }
    assert offenders == {}
    # What storage does use of glam today: the trace, in the modules that write it.
    users = {f.name for f in files if "glam.trace" in imported_modules(f)}
    assert {"ingest.py", "aggregates.py"} <= users

"""What each reliability test tried and what it observed, for docs/RELIABILITY.md.

Every test in this package calls `record(...)` with the figures it measured (counts,
latencies, rows before and after). The records go to one JSON-lines file, where each test's
latest record replaces its earlier one, so a partial run updates what it ran and keeps the
rest; `python -m tests.reliability.report` renders them into the figures section of
docs/RELIABILITY.md, so the document always shows what the suite itself measured.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
OBSERVATIONS = Path(
    os.environ.get("GLAMLAB_RELIABILITY_OBSERVATIONS", REPO / "build" / "reliability.jsonl")
)


def record(test: str, tried: str, observed: dict[str, Any]) -> None:
    """Record one observation: `test` names it (replacing its last record), `tried` says what
    was done, in a sentence. The file is rewritten whole (a rename), never left half-written."""
    OBSERVATIONS.parent.mkdir(parents=True, exist_ok=True)
    kept = [item for item in load() if item["test"] != test]
    kept.append({"test": test, "tried": tried, "observed": observed, "at": time.time()})
    partial = OBSERVATIONS.with_suffix(".partial")
    partial.write_text(
        "".join(json.dumps(i, ensure_ascii=False, default=str) + "\n" for i in kept),
        encoding="utf-8",
    )
    partial.replace(OBSERVATIONS)


def load(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or OBSERVATIONS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

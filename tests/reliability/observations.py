"""What each reliability test tried and what it observed, for docs/RELIABILITY.md.

Every test in this package calls `record(...)` with the figures it measured (counts,
latencies, rows before and after). The records go to one JSON-lines file per pytest run;
`python -m tests.reliability.report` renders them into the figures section of
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


def reset() -> None:
    """Start a fresh observations file (called once per pytest session)."""
    OBSERVATIONS.parent.mkdir(parents=True, exist_ok=True)
    OBSERVATIONS.write_text("")


def record(test: str, tried: str, observed: dict[str, Any]) -> None:
    """Append one observation: `test` names it, `tried` says what was done, in a sentence."""
    OBSERVATIONS.parent.mkdir(parents=True, exist_ok=True)
    line = {"test": test, "tried": tried, "observed": observed, "at": time.time()}
    with OBSERVATIONS.open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")


def load(path: Path = OBSERVATIONS) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

"""Result rows to numpy, fast: the statistics fetch up to ~10^5 rows of small integers."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np


def int_matrix(rows: Sequence[Any], width: int) -> np.ndarray:
    """[len(rows), width] int64 from fetched rows (e.g. `session.execute(...).all()`).

    Streams the values: `np.array(rows)` reads SQLAlchemy Row objects one item at a time
    through the sequence protocol, and building a tuple per row first costs about as much
    as the query.
    """
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=len(rows) * width)
    return flat.reshape(len(rows), width)


def ratio(num: float, den: float) -> float | None:
    """num / den as a float, None where the denominator is 0 (nothing was counted)."""
    return float(num) / float(den) if den else None

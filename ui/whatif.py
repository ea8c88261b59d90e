"""Capacity-factor what-if: drop rates and loss of the same texts under several capacities.

Pure arithmetic over /v1/analyze results (analysed with store=false): the service reports
every token's kept flags and nll, and this module summarises them per capacity and layer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from ui.schemas import AnalyzeResult

MODEL_DEFAULT = "model default"  # capacity_factor=None: the served model's own factor
NO_DROPS = "no-drops"  # the API's value for unlimited capacity
Capacity = float | str | None  # a factor, NO_DROPS or None (the model's own)


@dataclasses.dataclass(frozen=True)
class CapacityOutcome:
    """One capacity factor at one MoE layer, over all tokens of all texts."""

    capacity: str  # the factor as a label ("0.5", "2", "model default")
    layer: int
    tokens: int
    drop_rate: float  # share of the assignments (all k choices) dropped
    drop_rate_top1: float  # share of the tokens whose top-1 choice was dropped
    mean_nll: float | None  # over tokens with a next token; the same for every layer


def capacity_label(factor: Capacity) -> str:
    if factor is None:
        return MODEL_DEFAULT
    return "no drops" if factor == NO_DROPS else f"{factor:g}"


def capacity_outcomes(results: Mapping[str, AnalyzeResult]) -> list[CapacityOutcome]:
    """Per capacity label and layer: share of assignments dropped, and of top-1 choices."""
    outcomes = []
    for label, result in results.items():
        tokens = [t for doc in result.documents for t in doc.tokens]
        scored = [t.nll for t in tokens if t.nll is not None and math.isfinite(t.nll)]
        mean_nll = sum(scored) / len(scored) if scored else None
        for index, layer in enumerate(result.moe_layers):
            routes = [t.routes[index] for t in tokens]
            n = max(len(routes), 1)
            assignments = max(sum(len(r.kept) for r in routes), 1)
            outcomes.append(
                CapacityOutcome(
                    capacity=label,
                    layer=layer,
                    tokens=len(routes),
                    drop_rate=sum(not kept for r in routes for kept in r.kept) / assignments,
                    drop_rate_top1=sum(not r.kept[0] for r in routes) / n,
                    mean_nll=mean_nll,
                )
            )
    return outcomes

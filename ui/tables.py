"""Pure table builders: API results -> pandas DataFrames for st.dataframe.

Text cells are plain strings; st.dataframe renders them as text, never as HTML, so token
pieces need no escaping here.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ui import schemas as s
from ui.tokens import display_piece, pieces_text

BASELINE_ROW = "uniform baseline"


def balance_table(stats: s.BalanceStats) -> pd.DataFrame:
    """One row per MoE layer with every balance metric, and a last row of their baselines."""
    routing = {r.layer: r for r in stats.routing}
    rows, baseline = [], {}
    for b in stats.balance:
        r = routing.get(b.layer)
        metrics = {
            "CV": b.cv,
            "MaxVio": b.max_violation,
            "dead experts": b.dead_experts,
            "load entropy": b.load_entropy,
        }
        if r is not None:
            metrics |= {
                "drop (all choices)": r.drop_rate,
                "drop top-1": r.drop_rate_by_rank[0],
                "router entropy": r.router_entropy,
                "aux loss": r.aux_loss,
                "z loss": r.z_loss,
            }
        rows.append({"layer": str(b.layer)} | {k: m.value for k, m in metrics.items()})
        baseline |= {k: m.baseline for k, m in metrics.items()}
    if rows:
        rows.append({"layer": BASELINE_ROW} | baseline)
    return pd.DataFrame(rows)


def token_details(token: s.Token) -> pd.DataFrame:
    """Both choices of one token at every MoE layer."""
    return pd.DataFrame(
        [
            {
                "layer": route.layer,
                "choice": f"top-{rank + 1}",
                "expert": route.experts[rank],
                "gate": route.gates[rank],
                "probability": route.probs[rank],
                "kept": route.kept[rank],
                "router entropy": route.entropy,
            }
            for route in token.routes
            for rank in range(2)
        ]
    )


def tokens_table(tokens: Sequence[s.Token]) -> pd.DataFrame:
    """Every token with its top-1 expert per layer, nll and prediction."""
    rows = []
    for token in tokens:
        row: dict[str, object] = {
            "position": token.position,
            "token": display_piece(token.piece),
            "nll": token.nll,
            "predicted": display_piece(token.predicted_piece),
        }
        for route in token.routes:
            dropped = "" if route.kept[0] else " (dropped)"
            row[f"layer {route.layer}"] = f"e{route.experts[0]}/e{route.experts[1]}{dropped}"
        rows.append(row)
    return pd.DataFrame(rows)


def examples_table(examples: Sequence[s.ExpertExample]) -> pd.DataFrame:
    """An expert's example contexts: the routed token between its neighbours."""
    return pd.DataFrame(
        [
            {
                "domain": x.domain,
                "before": pieces_text(x.before),
                "token": display_piece(x.piece),
                "after": pieces_text(x.after),
                "rank": f"top-{x.rank}",
                "gate": x.gate,
                "document": x.document_id,
            }
            for x in examples
        ],
        columns=["domain", "before", "token", "after", "rank", "gate", "document"],
    )


def jobs_table(jobs: Sequence[s.Job]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "job": j.job_id,
                "status": j.status,
                "progress": j.done / j.total if j.total else 0.0,
                "documents": f"{j.done}/{j.total}",
                "corpus": j.corpus,
                "run": j.run_id,
                "error": j.error or "",
            }
            for j in jobs
        ],
        columns=["job", "status", "progress", "documents", "corpus", "run", "error"],
    )


def runs_table(runs: Sequence[s.Run]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "run": r.id,
                "source": r.source,
                "pooled": r.pooled,
                "documents": r.n_documents,
                "tokens": r.n_tokens,
                "domains": ", ".join(r.domains),
                "parameters": ", ".join(f"{k}={v}" for k, v in r.parameters.items()),
                "created": r.created_at,
            }
            for r in runs
        ],
        columns=[
            "run",
            "source",
            "pooled",
            "documents",
            "tokens",
            "domains",
            "parameters",
            "created",
        ],
    )

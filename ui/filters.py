"""Sidebar pickers shared by the statistics pages: which runs and domains to count.

Keys are shared between pages, so a selection made on one page holds on the next.
"""

from __future__ import annotations

import streamlit as st

from ui import data, feedback
from ui import schemas as s
from ui.client import Scope


def run_label(run: s.Run) -> str:
    pooled = "" if run.pooled else " · intervention"
    return f"#{run.id} {run.source} · {run.n_documents} docs{pooled}"


def scope_picker(*, layers: tuple[int, ...] = ()) -> Scope:
    """Sidebar run and domain filters; nothing picked means the model's pooled runs."""
    runs, more = feedback.need("Listing runs", data.runs)
    domains = feedback.need("Listing domains", data.domain_names)
    by_id = {run.id: run for run in runs}
    with st.sidebar:
        st.subheader("Filters")
        picked_runs = st.multiselect(
            "Runs",
            list(by_id),
            format_func=lambda run_id: run_label(by_id[run_id]),
            key="filter_runs",
            placeholder="all pooled runs",
            help="Empty: every run without interventions (ablations and capacity overrides "
            "are kept apart). Pick runs to see only them.",
        )
        if more:
            st.caption(f"Only the newest {len(runs)} runs are listed.")
        picked_domains = st.multiselect(
            "Domains", domains, key="filter_domains", placeholder="all domains"
        )
    return Scope(layers=layers, run_ids=tuple(picked_runs), domains=tuple(picked_domains))


def layer_picker(card: s.ModelCard, *, key: str, where=st) -> int:
    """One MoE layer of the served model."""
    return where.selectbox(
        "MoE layer", card.moe_layers, key=key, format_func=lambda layer: f"layer {layer}"
    )

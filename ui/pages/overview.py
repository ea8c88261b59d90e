"""Overview: the served model, what is in the store, running jobs, load and balance."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ui import charts, data, exports, feedback, live, tables
from ui.client import Scope

st.title("GLaM Routing Lab")
st.caption("Which experts does every token go to? Pick a page on the left to dig in.")

card = feedback.need("Reading the model card", data.model_card)

st.subheader("Model")
cols = st.columns(5)
cols[0].metric("Model", card.name)
cols[1].metric("Experts per MoE layer", card.num_experts)
cols[2].metric("MoE layers", ", ".join(map(str, card.moe_layers)))
cols[3].metric("Parameters", f"{card.params_total / 1e6:,.2f} M")
cols[4].metric(
    "Activated per token",
    f"{card.params_activated / 1e6:,.2f} M",
    help="Parameters a token passes through: its top-k experts at each MoE layer, not all E.",
)
with st.expander("Configuration and checkpoints"):
    st.json(card.config, expanded=False)
    exports.table(
        pd.DataFrame(
            [
                {"checkpoint": c.name, "step": c.step, "sha256": c.sha256[:16]}
                for c in card.checkpoints
            ]
        ),
        "checkpoints",
        hide_index=True,
    )


live.active_jobs_panel()

st.subheader("Data in the store")
runs, more = feedback.need("Listing runs", data.runs)
losses = feedback.need("Reading documents per domain", data.loss, Scope())
if not runs:
    feedback.no_routing_data()
cols = st.columns(4)
cols[0].metric("Runs", f"{len(runs)}{'+' if more else ''}")
cols[1].metric("Documents (pooled)", f"{sum(d.documents for d in losses):,}")
cols[2].metric("Tokens (pooled)", f"{sum(d.tokens for d in losses):,}")
cols[3].metric("Domains", len(losses))
if losses:
    exports.chart(charts.tokens_by_domain_bars(losses), "tokens-by-domain", width="stretch")

st.subheader("Load per layer and expert")
loads = feedback.need("Reading expert load", data.load, Scope())
if not any(x.load.total for x in loads):
    feedback.no_routing_data()
exports.chart(charts.load_heatmap(loads), "load-heatmap", width="stretch")

st.subheader("Balance")
balance = feedback.need("Reading balance", data.balance, Scope())
exports.table(
    tables.balance_table(balance),
    "balance",
    hide_index=True,
    column_config={
        "drop (all choices)": st.column_config.NumberColumn(format="percent"),
        "drop top-1": st.column_config.NumberColumn(format="percent"),
    },
)
st.caption(
    "CV = std/mean of the experts' load; MaxVio = (max - mean)/mean; load entropy = "
    "H(share)/ln E; drop = share of tokens whose choice exceeded the expert's capacity; "
    "aux loss = E^2 mean(frac x prob), 1 when balanced. The last row is uniform routing."
)

"""Load balance: per-layer balance metrics, load per expert, drops by rank and by position."""

from __future__ import annotations

import dataclasses

import streamlit as st

from ui import charts, data, exports, feedback, filters, tables, urlstate

st.title("Load balance")
card = feedback.need("Reading the model card", data.model_card)
scope = filters.scope_picker()
layers = st.multiselect(
    "MoE layers",
    card.moe_layers,
    default=urlstate.options("balance_layers", card.moe_layers, card.moe_layers),
    key="balance_layers",
    format_func=lambda x: f"layer {x}",
)
urlstate.remember("balance_layers", layers)
if not layers:
    st.info("Pick at least one MoE layer.")
    st.stop()
scope = dataclasses.replace(scope, layers=tuple(layers))

loads = feedback.need("Reading expert load", data.load, scope)
if not any(x.load.total for x in loads):
    feedback.no_routing_data()

st.subheader("Per-layer metrics")
stats = feedback.need("Reading balance", data.balance, scope)
exports.table(tables.balance_table(stats), "balance", hide_index=True)
st.caption(
    "The last row is what perfectly uniform routing would give. CV and MaxVio measure how "
    "uneven the load is (0 = even); load entropy 1 = even; aux loss 1 = balanced."
)

st.subheader("Load per expert")
exports.chart(charts.load_heatmap(loads), "load-heatmap", width="stretch")
tabs = st.tabs([f"layer {x.layer}" for x in loads])
for tab, x in zip(tabs, loads, strict=True):
    exports.chart(
        charts.expert_share_bars(x.load), f"load-layer-{x.layer}", where=tab, width="stretch"
    )

st.subheader("Dropped by capacity")
if not any(r.drop_rate.value for r in stats.routing):
    # A chart of zeros says less than a sentence: dropless routers (imported models) and
    # runs with room for every token drop nothing.
    dropless = card.config.get("capacity_factor") is None
    st.info(
        "Nothing was dropped in this selection"
        + (": the model's router is dropless (no capacity limit)." if dropless else ".")
    )
    st.stop()
exports.chart(charts.drop_rate_bars(stats.routing), "drops-by-rank", width="stretch")
widths = [8, 16, 32, 64, 128]
bucket = st.select_slider(
    "Position bucket width (tokens)",
    widths,
    value=urlstate.option("balance_bucket", widths, 32),
    key="balance_bucket",
)
urlstate.remember("balance_bucket", bucket)
positions = feedback.attempt("Reading drops by position", data.positions, scope, bucket)
if positions:
    exports.chart(charts.drop_rate_by_position(positions, stats.routing), "drops-by-position")

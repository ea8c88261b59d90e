"""Training history: how the served model's routing formed, checkpoint by checkpoint.

The probe set shipped with the model (the first 2,000 validation tokens of each domain),
routed by every checkpoint training saved: saturation against the last step (OLMoE eq. 5),
balance, drops, entropy and loss per MoE layer, and saturation per domain.
"""

from __future__ import annotations

import streamlit as st

from ui import charts, data, exports, feedback, urlstate
from ui.client import ApiError

st.title("Training history")
try:
    history = data.training_history()
except ApiError as error:
    if error.status != 404:
        feedback.show_error("Reading the training history", error)
        st.stop()
    st.info(
        "The served model has no routing history over training: it shipped without "
        "`training_routing.npz` (written by `glam probe`, see docs/ROUTING.md).",
        icon=":material/info:",
    )
    st.stop()

overall = [p for p in history.points if p.domain == ""]
steps = sorted({p.step for p in overall})
st.caption(
    f"{history.model}: {len(steps)} checkpoints from step {steps[0]:,} to {steps[-1]:,}, "
    f"{overall[0].tokens:,} probe tokens. Saturation is measured against step "
    f"{history.last_step:,}, so it reaches 1 there by definition; random top-k sets would "
    f"agree {history.saturation_baseline:.3f} (k/E)."
)
left, right = st.columns(2)
exports.chart(
    charts.training_curves(overall, "saturation", baseline=history.saturation_baseline),
    "training-saturation",
    where=left,
    width="stretch",
)
exports.chart(
    charts.training_curves(overall, "drop_rate"), "training-drop_rate", where=right, width="stretch"
)
exports.chart(
    charts.training_curves(overall, "load_cv"), "training-load_cv", where=left, width="stretch"
)
exports.chart(
    charts.training_curves(overall, "router_entropy"),
    "training-router_entropy",
    where=right,
    width="stretch",
)
exports.chart(charts.training_curves(overall, "loss"), "training-loss", where=left, width="stretch")
exports.chart(
    charts.training_curves(overall, "dead_experts"),
    "training-dead_experts",
    where=right,
    width="stretch",
)

st.subheader("Saturation per domain")
layers = sorted({p.layer for p in overall})
layer = st.selectbox(
    "MoE layer",
    layers,
    index=urlstate.index("training_layer", layers, len(layers) - 1),
    key="training_layer",
    format_func=lambda x: f"layer {x}",
)
domains = sorted({p.domain for p in history.points if p.domain})
chosen = st.multiselect(
    "Domains",
    domains,
    default=urlstate.options("training_domains", domains, domains[:6]),
    key="training_domains",
)
urlstate.remember("training_layer", layer)
urlstate.remember("training_domains", chosen)
per_domain = [p for p in history.points if p.layer == layer and p.domain in chosen]
if per_domain:
    exports.chart(
        charts.training_curves(per_domain, "saturation", baseline=history.saturation_baseline),
        f"training-saturation-layer-{layer}-by-domain",
        width="stretch",
    )
else:
    st.info("Pick at least one domain.")

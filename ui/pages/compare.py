"""Compare: two checkpoints (router saturation), two domains, two runs, side by side."""

from __future__ import annotations

import streamlit as st

from ui import charts, data, exports, feedback, filters, urlstate
from ui import schemas as s
from ui.client import Scope

st.title("Compare")
card = feedback.need("Reading the model card", data.model_card)
checkpoints_tab, domains_tab, runs_tab = st.tabs(["Checkpoints", "Domains", "Runs"])


def _texts(raw: str) -> list[str]:
    return [line for line in raw.splitlines() if line.strip()]


with checkpoints_tab:
    names = [c.name for c in card.checkpoints]
    if len(names) < 2:
        st.info(
            "Only one checkpoint is registered. Start the API with GLAMLAB_EARLY_CHECKPOINT "
            "set to an earlier checkpoint's directory to compare the two."
        )
    else:
        st.caption(
            "Router saturation (OLMoE eq. 5): run the same texts through both checkpoints; "
            "per layer, the mean of |top-k A ∩ top-k B| / k. 1 = the router has settled."
        )
        left, right = st.columns(2)
        a = left.selectbox(
            "Checkpoint A", names, index=names.index("early") if "early" in names else 0
        )
        b = right.selectbox(
            "Checkpoint B", names, index=names.index("final") if "final" in names else 1
        )
        raw = st.text_area(
            "Texts, one per line (empty: the built-in validation corpus)", key="compare_texts"
        )
        per_domain, sample_domains = filters.corpus_sample("compare")
        if st.button("Compare checkpoints", type="primary"):
            with st.spinner("Running both checkpoints..."):
                result = feedback.attempt(
                    "Comparing checkpoints",
                    data.client().saturation,
                    a,
                    b,
                    texts=_texts(raw) or None,
                    per_domain=per_domain,
                    corpus_domains=sample_domains,
                )
            if result is not None:
                st.session_state["compare_saturation"] = result
        result: s.SaturationResult | None = st.session_state.get("compare_saturation")
        if result is not None:
            title = f"{result.checkpoint_a} vs {result.checkpoint_b}"
            st.caption(filters.sample_caption(result.sample))
            exports.chart(
                charts.saturation_bars(result.layers, title), "saturation-checkpoints",
                width="stretch",
            )  # fmt: skip

with domains_tab:
    domains = feedback.attempt("Listing domains", data.domain_names) or []
    if len(domains) < 2:
        feedback.empty("Comparing domains needs stored texts of two or more domains.")
    else:
        left, middle, right = st.columns(3)
        first = left.selectbox(
            "Domain A", domains, index=urlstate.index("compare_domain_a", domains, 0),
            key="compare_domain_a",
        )  # fmt: skip
        second = middle.selectbox(
            "Domain B", domains, index=urlstate.index("compare_domain_b", domains, 1),
            key="compare_domain_b",
        )  # fmt: skip
        urlstate.remember("compare_domain_a", first)
        urlstate.remember("compare_domain_b", second)
        layer = filters.layer_picker(card, key="compare_domain_layer", where=right)
        specs = feedback.attempt(
            "Reading domain specialisation", data.domains, Scope(layers=(layer,))
        )
        by_domain = {d.domain: d for d in specs or []}
        if first in by_domain and second in by_domain:
            series = {first: by_domain[first].shares, second: by_domain[second].shares}
            title = f"Layer {layer}: share of each domain's tokens per expert"
            chart = charts.compare_share_bars(series, by_domain[first].baseline, title)
            exports.chart(chart, f"domains-{first}-vs-{second}-layer-{layer}", width="stretch")
        losses = {d.domain: d for d in feedback.attempt("Reading loss", data.loss, Scope()) or []}
        cols = st.columns(2)
        for col, name in zip(cols, (first, second), strict=True):
            if name in losses and losses[name].mean_nll.value is not None:
                col.metric(f"Mean nll, {name}", f"{losses[name].mean_nll.value:.3f}")

with runs_tab:
    runs, _ = feedback.attempt("Listing runs", data.runs) or ([], False)
    if len(runs) < 2:
        feedback.empty("Comparing runs needs two stored runs (e.g. one text, two capacities).")
    else:
        by_id = {run.id: run for run in runs}
        ids = list(by_id)
        left, middle, right = st.columns(3)
        run_a = left.selectbox(
            "Run A", ids, index=urlstate.index("compare_run_a", ids, 1),
            format_func=lambda r: filters.run_label(by_id[r]), key="compare_run_a",
        )  # fmt: skip
        run_b = middle.selectbox(
            "Run B", ids, index=urlstate.index("compare_run_b", ids, 0),
            format_func=lambda r: filters.run_label(by_id[r]), key="compare_run_b",
        )  # fmt: skip
        urlstate.remember("compare_run_a", run_a)
        urlstate.remember("compare_run_b", run_b)
        layer = filters.layer_picker(card, key="compare_run_layer", where=right)
        series = {}
        for run_id in (run_a, run_b):
            loads = feedback.attempt(
                f"Reading run {run_id}", data.load, Scope(layers=(layer,), run_ids=(run_id,))
            )
            if loads:
                series[f"run {run_id}"] = [e.share.value for e in loads[0].load.experts]
        if len(series) == 2:
            title = f"Layer {layer}: share of load per expert"
            exports.chart(
                charts.compare_share_bars(series, 1 / card.num_experts, title),
                f"load-run-{run_a}-vs-run-{run_b}-layer-{layer}",
                width="stretch",
            )
        st.caption(
            "Router saturation between the two runs (meaningful when they hold the same texts):"
        )
        saturation = feedback.attempt(
            "Comparing the runs' routing", data.run_saturation, run_a, run_b, ()
        )
        if saturation:
            layers = [
                s.LayerSaturation(
                    layer=x.layer,
                    tokens=x.tokens,
                    saturation=x.saturation.value or 0.0,
                    baseline=x.saturation.baseline or 0.0,
                )
                for x in saturation
            ]
            exports.chart(
                charts.saturation_bars(layers, f"run {run_a} vs run {run_b}"),
                f"saturation-run-{run_a}-vs-run-{run_b}",
                width="stretch",
            )

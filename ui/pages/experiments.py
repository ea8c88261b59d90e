"""Experiments: switch experts off, or change the capacity, and see what breaks."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from ui import charts, data, exports, feedback, filters
from ui import schemas as s
from ui.client import POOLED
from ui.whatif import NO_DROPS, capacity_label, capacity_outcomes

# None: the model's own factor. 64 (the API's maximum) keeps every assignment: C >= S.
CAPACITIES = [0.25, 0.5, 1.0, 1.25, 1.5, 2.0, 4.0, 8.0, NO_DROPS, None]

st.title("Experiments")
card = feedback.need("Reading the model card", data.model_card)
ablation_tab, capacity_tab = st.tabs(["Switch experts off", "Capacity what-if"])


def _texts(raw: str) -> list[str]:
    return [line for line in raw.splitlines() if line.strip()]


def show_ablation(result: s.AblationResult) -> None:
    switched = "; ".join(
        f"layer {layer}: experts {', '.join(map(str, experts))}"
        for layer, experts in result.ablate.items()
    )
    st.markdown(f"**Switched off** {switched}")
    st.caption(filters.sample_caption(result.sample))
    if result.domains:
        exports.chart(charts.loss_change_bars(result.domains), "ablation-loss", width="stretch")
        exports.table(
            pd.DataFrame([d.model_dump() for d in result.domains]).rename(
                columns={"base_nll": "nll before", "ablated_nll": "nll experts off"}
            ),
            "ablation-loss",
            hide_index=True,
        )
    st.subheader("Where their tokens went")
    for rerouting in result.rerouting:
        if rerouting.affected_tokens == 0:
            st.caption(f"Layer {rerouting.layer}: no token used a switched-off expert.")
            continue
        st.metric(
            f"Layer {rerouting.layer}: tokens whose top-1 changed",
            f"{rerouting.changed_top1:.1%}",
            help="Share of all tokens; changes can cascade to later layers.",
        )
        exports.chart(
            charts.rerouting_bars(rerouting), f"rerouting-layer-{rerouting.layer}", width="stretch"
        )


with ablation_tab:
    st.caption(
        "The same texts run twice, with and without the chosen experts (their router logits "
        "set to -inf before the top-k choice): per-domain change in next-token loss, and "
        "where the tokens that used them were sent instead."
    )
    cols = st.columns(min(len(card.moe_layers), 4))
    ablate = {}
    specs = feedback.attempt("Reading domains", data.domains, POOLED) or []
    for index, layer in enumerate(card.moe_layers):
        labels = filters.expert_labels([d for d in specs if d.layer == layer], card.num_experts)
        experts = cols[index % len(cols)].multiselect(
            f"Layer {layer}: experts off",
            range(card.num_experts),
            key=f"ablate_{layer}",
            format_func=labels.__getitem__,
            placeholder="type an id or a domain",
        )
        if experts:
            ablate[layer] = list(experts)
    raw = st.text_area(
        "Texts, one per line (empty: the built-in validation corpus)", key="ablation_texts"
    )
    domain = st.text_input("Domain label of the texts", value="user", key="ablation_domain")
    per_domain, sample_domains = filters.corpus_sample("ablation")
    if st.button("Run the ablation", type="primary", disabled=not ablate):
        with st.spinner("Running the texts with and without those experts..."):
            result = feedback.attempt(
                "The ablation",
                data.client().ablation,
                ablate,
                texts=_texts(raw) or None,
                domain=domain or "user",
                per_domain=per_domain,
                corpus_domains=sample_domains,
            )
        if result is not None:
            st.session_state["ablation_result"] = result
    if not ablate:
        st.info("Pick at least one expert to switch off, then run the ablation.")
    if (result := st.session_state.get("ablation_result")) is not None:
        show_ablation(result)

with capacity_tab:
    st.caption(
        "Each expert takes at most C = capacity factor x tokens / E assignments per text; the "
        "rest are dropped. Analyse the same texts under several factors (nothing is stored); "
        "'no drops' leaves room for every token. On a dropless model (an imported one) any "
        "factor is a what-if: the model was trained without drops."
    )
    raw = st.text_area("Texts, one per line", key="capacity_texts")
    factors = st.multiselect(
        "Capacity factors",
        CAPACITIES,
        default=[0.5, 1.0, 2.0, NO_DROPS],
        format_func=capacity_label,
        key="capacity_factors",
    )
    if st.button("Compare capacities", type="primary", disabled=not factors):
        texts = _texts(raw)
        if not texts:
            st.warning("Type at least one text.")
        else:
            results = {}
            with st.spinner("Analysing under each capacity..."):
                for factor in factors:
                    result = feedback.attempt(
                        f"Analysing with capacity {capacity_label(factor)}",
                        data.client().analyze,
                        texts,
                        store=False,
                        capacity_factor=factor,
                    )
                    if result is None:
                        break
                    results[capacity_label(factor)] = result
                else:
                    st.session_state["capacity_outcomes"] = capacity_outcomes(results)
    if outcomes := st.session_state.get("capacity_outcomes"):
        left, right = st.columns(2)
        exports.chart(
            charts.capacity_drop_chart(outcomes), "capacity-drops", where=left, width="stretch"
        )
        exports.chart(
            charts.capacity_loss_chart(outcomes), "capacity-loss", where=right, width="stretch"
        )
        exports.table(
            pd.DataFrame([dataclasses.asdict(o) for o in outcomes]), "capacity", hide_index=True
        )
    else:
        st.info("Type texts, pick capacity factors and compare.")

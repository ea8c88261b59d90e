"""Specialisation: do experts specialise by domain, by token, by neighbour, by path?"""

from __future__ import annotations

import dataclasses

import streamlit as st

from ui import charts, data, exports, feedback, filters, urlstate

st.title("Specialisation")
card = feedback.need("Reading the model card", data.model_card)
scope = filters.scope_picker()
layer = filters.layer_picker(card, key="special_layer")
at_layer = dataclasses.replace(scope, layers=(layer,))

specs = feedback.need("Reading domain specialisation", data.domains, at_layer)
if not specs:
    feedback.no_routing_data()

domains_tab, vocab_tab, consecutive_tab, transitions_tab, coactivation_tab = st.tabs(
    ["Domains", "Vocabulary", "Consecutive tokens", "Layer to layer", "Co-activation"]
)

with domains_tab:
    exports.chart(charts.domain_heatmap(specs), f"domains-layer-{layer}", width="stretch")
    st.caption(
        "OLMoE eq. 7: of a domain's tokens, the share with the expert among their top-k. "
        "Orange: more than uniform routing would send, blue: less."
    )

with vocab_tab:
    left, middle, right = st.columns(3)
    expert = filters.expert_picker(card, layer, key="special_expert", where=left)
    kinds = ["input", "predicted"]
    by = middle.radio(
        "By", kinds, index=urlstate.index("special_by", kinds), horizontal=True, key="special_by"
    )
    min_count = right.number_input(
        "Min. occurrences",
        min_value=1,
        value=urlstate.number("special_min", 5, int, low=1),
        key="special_min",
    )
    urlstate.remember("special_by", by)
    urlstate.remember("special_min", int(min_count))
    vocab = feedback.attempt(
        "Reading vocabulary specialisation", data.vocab, at_layer, expert, by, int(min_count), 30
    )
    if vocab and vocab[0].tokens:
        title = f"Layer {layer}, expert {expert}: share of each {by} token routed here"
        exports.chart(
            charts.vocab_bars(vocab[0].tokens, vocab[0].baseline, title),
            f"vocabulary-layer-{layer}-expert-{expert}-{by}",
        )
    elif vocab is not None:
        st.info(f"No token occurs {min_count}+ times in this selection. Lower the minimum.")

with consecutive_tab:
    rows = feedback.attempt("Reading consecutive routing", data.consecutive, scope)
    if rows:
        exports.chart(charts.consecutive_bars(rows), "consecutive", width="stretch")
        st.caption(
            "Mixtral table 5: adjacent tokens of a document with the same top-1 expert, and "
            "with overlapping top-k sets, against what random routing would give."
        )

with transitions_tab:
    pairs = feedback.attempt("Reading transitions", data.transitions, scope) or []
    if pairs:
        names = [f"{p.layer_from}-{p.layer_to}" for p in pairs]
        pick = st.selectbox(
            "Layers",
            range(len(pairs)),
            index=urlstate.index("special_transition", names),
            format_func=lambda i: f"layer {pairs[i].layer_from} -> layer {pairs[i].layer_to}",
            key="special_transition",
        )
        urlstate.remember("special_transition", names[pick])
        exports.chart(
            charts.transitions_heatmap(pairs[pick]), f"transitions-{names[pick]}", width="stretch"
        )
    else:
        st.info("Transitions need a model with two or more MoE layers.")

with coactivation_tab:
    co = feedback.attempt("Reading co-activation", data.coactivation, at_layer)
    if co:
        exports.chart(
            charts.coactivation_heatmap(co[0]), f"coactivation-layer-{layer}", width="stretch"
        )

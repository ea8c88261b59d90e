"""Expert profile: one expert's load over domains, its tokens, contexts and partners."""

from __future__ import annotations

import streamlit as st

from ui import charts, data, exports, feedback, filters, tables, urlstate

st.title("Expert profile")
card = feedback.need("Reading the model card", data.model_card)
scope = filters.scope_picker()

left, middle, right = st.columns(3)
layer = filters.layer_picker(card, key="profile_layer", where=left)
expert = filters.expert_picker(card, layer, key="profile_expert", where=middle)
min_count = right.number_input(
    "Min. occurrences of a token",
    min_value=1,
    value=urlstate.number("profile_min", 3, int, low=1),
    key="profile_min",
    help="Tokens seen fewer times are left out of the vocabulary lists (their shares are noise).",
)
urlstate.remember("profile_min", int(min_count))
profile = feedback.need(
    "Reading the expert's profile", data.expert, layer, expert, scope, int(min_count)
)
if profile.load == 0 and not any(d.tokens for d in profile.domains):
    feedback.no_routing_data()

k_over_e = card.top_k / card.num_experts
cols = st.columns(3)
cols[0].metric("Kept assignments", f"{profile.load:,}")
if profile.share is not None and profile.share_baseline:
    cols[1].metric(
        "Share of the layer's load",
        f"{profile.share:.2%}",
        delta=f"{profile.share - profile.share_baseline:+.2%} vs uniform",
        delta_color="off",
    )
cols[2].metric("Domains seen", sum(1 for d in profile.domains if d.tokens))

if profile.domains:
    exports.chart(
        charts.domain_share_bars(profile.domains),
        f"expert-{expert}-layer-{layer}-domains",
        width="stretch",
    )

st.subheader("Tokens it specialises in")
st.caption(
    f"Share of a token's occurrences routed to this expert (OLMoE eq. 8); uniform k/E = "
    f"{k_over_e:.1%}."
)
left, right = st.columns(2)
if profile.top_input_tokens:
    exports.chart(
        charts.vocab_bars(profile.top_input_tokens, k_over_e, "By input token"),
        f"expert-{expert}-layer-{layer}-input-tokens",
        where=left,
        width="stretch",
    )
else:
    left.info(f"No input token seen {min_count}+ times. Lower the minimum or analyse more text.")
if profile.top_predicted_tokens:
    exports.chart(
        charts.vocab_bars(profile.top_predicted_tokens, k_over_e, "By predicted next token"),
        f"expert-{expert}-layer-{layer}-predicted-tokens",
        where=right,
        width="stretch",
    )
else:
    right.info(f"No predicted token seen {min_count}+ times.")

st.subheader("Example contexts")
if profile.examples:
    exports.table(
        tables.examples_table(profile.examples),
        f"expert-{expert}-layer-{layer}-examples",
        hide_index=True,
    )
else:
    st.info("No example tokens stored for this expert yet.")

st.subheader("Co-activated partners")
if profile.partners:
    exports.chart(
        charts.partner_bars(profile.partners, card.num_experts),
        f"expert-{expert}-layer-{layer}-partners",
        width="stretch",
    )

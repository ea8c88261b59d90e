"""Token explorer: a text's tokens coloured by their expert, layer by layer.

Type a text (or generate one, or pick a stored document); every token is coloured by its
top-1 expert at the chosen MoE layer, with dropped choices marked. The grid below shows all
layers at once; hover a token or a cell for both choices, click a cell to inspect it.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from ui import charts, data, exports, feedback, tables, tokens, urlstate
from ui import schemas as s
from ui.filters import run_label
from ui.whatif import NO_DROPS, capacity_label

TYPED, STORED, GENERATED = "Type a text", "Stored document", "Generate"
EXAMPLE = "def add(a, b):\n    return a + b\n\nThe quick brown fox jumps over the lazy dog."

st.title("Token explorer")
card = feedback.need("Reading the model card", data.model_card)
views: dict[str, dict] = st.session_state.setdefault("explorer_views", {})


def analyse_form() -> None:
    with st.form("analyse"):
        text = st.text_area("Text", key="explorer_text", height=140, placeholder=EXAMPLE)
        left, middle, right = st.columns(3)
        domain = left.text_input("Domain label", value="user", max_chars=64)
        own = card.config.get("capacity_factor")
        capacity = middle.selectbox(
            "Capacity factor",
            [None, NO_DROPS, 0.25, 0.5, 1.0, 1.5, 2.0, 4.0, 8.0],
            format_func=lambda f: (
                f"model default ({own or 'no drops'})" if f is None else capacity_label(f)
            ),
            help="How many assignments each expert takes per text: C = factor x tokens / E. "
            "Lower drops more; 'no drops' gives every expert room for every token.",
        )
        store = right.checkbox(
            "Store the run", value=False, help="Add this text to the stored runs and statistics."
        )
        submitted = st.form_submit_button("Analyse", type="primary")
    if not submitted:
        return
    if not text.strip():
        st.warning("Type a text to analyse first.")
        return
    with st.spinner("Routing the text through the model..."):
        result = feedback.attempt(
            "Analysing the text",
            data.client().analyze,
            [text],
            domain=domain or "user",
            store=store,
            capacity_factor=capacity,
        )
    if result is None:
        return
    doc = result.documents[0]
    stored = f" · stored as run {result.run_id}" if result.run_id else ""
    views[TYPED] = {"tokens": doc.tokens, "caption": f"domain {doc.domain}{stored}"}
    if store:
        data.refresh()


def generate_form() -> None:
    with st.form("generate"):
        prompt = st.text_area("Prompt", key="explorer_prompt", height=100, placeholder="def main(")
        left, middle, right = st.columns(3)
        new_tokens = left.number_input("New tokens", min_value=1, max_value=256, value=32)
        temperature = middle.number_input("Temperature", min_value=0.0, max_value=10.0, value=0.0)
        seed = right.number_input("Seed", min_value=0, value=0)
        submitted = st.form_submit_button("Generate", type="primary")
    if not submitted:
        return
    if not prompt.strip():
        st.warning("Type a prompt first.")
        return
    with st.spinner("Generating..."):
        result = feedback.attempt(
            "Generating",
            data.client().generate,
            prompt,
            max_new_tokens=int(new_tokens),
            temperature=float(temperature),
            seed=int(seed),
        )
    if result is not None:
        views[GENERATED] = {
            "tokens": result.document.tokens,
            "caption": f"{result.prompt_tokens} prompt tokens, then the model's continuation",
            "generated": result.text,
        }


def stored_document() -> dict | None:
    runs, _ = feedback.need("Listing runs", data.runs)
    if not runs:
        feedback.empty("No stored runs yet.", explore=False)
        return None
    by_id = {run.id: run for run in runs}
    left, right = st.columns([2, 1])
    run_id = left.selectbox(
        "Run",
        list(by_id),
        index=urlstate.index("explorer_run", list(by_id)),
        format_func=lambda r: run_label(by_id[r]),
        key="explorer_run",
    )
    count = by_id[run_id].n_documents
    last = max(count - 1, 0)
    offset = right.number_input(
        f"Document (0-{last})",
        0,
        last,
        urlstate.number("explorer_document", 0, int, low=0, high=last),
        key="explorer_document",
    )
    urlstate.remember("explorer_run", run_id)
    urlstate.remember("explorer_document", int(offset))
    doc = feedback.need("Reading the document", data.run_document, run_id, int(offset))
    if doc is None:
        st.info("That document does not exist (the run may have been deleted).")
        return None
    info = doc.document
    nll = "n/a" if info.mean_nll is None else f"{info.mean_nll:.3f}"
    caption = f"document {info.id} · domain {info.domain} · mean nll {nll}"
    return {"tokens": doc.tokens, "caption": caption}


def _token_label(token: s.Token) -> str:
    return f"{token.position}: {tokens.display_piece(token.piece)!r}"


def show(view: dict) -> None:
    toks: Sequence[s.Token] = view["tokens"]
    if not toks:
        st.info("The text has no tokens.")
        return
    st.caption(view["caption"])
    if "generated" in view:
        st.text(view["generated"])  # st.text shows untrusted text as plain text
    layer = st.radio(
        "Colour by the top-1 expert at",
        card.moe_layers,
        index=urlstate.index("explorer_layer", card.moe_layers),
        format_func=lambda x: f"layer {x}",
        horizontal=True,
        key="explorer_layer",
    )
    urlstate.remember("explorer_layer", layer)
    st.html(tokens.legend_html(card.num_experts))
    st.html(tokens.tokens_html(toks, layer, card.num_experts))

    routes = [r for t in toks for r in t.routes if r.layer == layer]
    scored = [t.nll for t in toks if t.nll is not None]
    cols = st.columns(4)
    cols[0].metric("Tokens", len(toks))
    cols[1].metric("Mean nll", f"{sum(scored) / len(scored):.3f}" if scored else "n/a")
    cols[2].metric("Top-1 dropped", sum(not r.kept[0] for r in routes))
    cols[3].metric("Later choices dropped", sum(not kept for r in routes for kept in r.kept[1:]))

    event = exports.chart(
        charts.token_grid(toks, card.moe_layers, card.num_experts),
        "token-grid",
        width="stretch",
        on_select="rerun",
        selection_mode=charts.TOKEN_SELECTION,
        key="explorer_grid",
    )
    positions = [t.position for t in toks]
    clicked = [p["position"] for p in event.selection.get(charts.TOKEN_SELECTION, [])]
    # A click selects the token below, once; afterwards the picker is the user's again.
    if clicked and clicked != st.session_state.get("explorer_last_click"):
        st.session_state["explorer_last_click"] = clicked
        st.session_state["explorer_token"] = int(clicked[0])
    if st.session_state.get("explorer_token") not in positions:
        st.session_state["explorer_token"] = positions[0]
    by_position = {t.position: t for t in toks}
    position = st.selectbox(
        "Inspect token",
        positions,
        format_func=lambda p: _token_label(by_position[p]),
        key="explorer_token",
    )
    token = by_position[position]
    nll = "n/a (last token)" if token.nll is None else f"{token.nll:.3f}"
    # st.text, not markdown: a piece could carry markdown or HTML of its own.
    st.text(
        f"next-token nll {nll} · predicted next: {tokens.display_piece(token.predicted_piece)!r}"
    )
    exports.table(tables.token_details(token), f"token-{position}", hide_index=True)
    with st.expander("Every token"):
        exports.table(tables.tokens_table(toks), "tokens", hide_index=True)


sources = [TYPED, STORED, GENERATED]
source = st.segmented_control(
    "Source",
    sources,
    default=urlstate.option("explorer_source", sources, TYPED),
    key="explorer_source",
)
urlstate.remember("explorer_source", source)
if source == TYPED:
    analyse_form()
    view = views.get(TYPED)
elif source == GENERATED:
    generate_form()
    view = views.get(GENERATED)
elif source == STORED:
    view = stored_document()
else:
    view = None
    st.info("Pick a source above: a text of your own, a stored document, or a generation.")

if view is not None:
    show(view)
elif source in (TYPED, GENERATED):
    st.info("Type a text and press the button: its tokens appear here, coloured by expert.")

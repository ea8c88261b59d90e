"""Sidebar pickers shared by the statistics pages: which runs and domains to count.

Keys are shared between pages, so a selection made on one page holds on the next; the
choices are in the URL too (ui/urlstate.py), so a pasted link shows the same counts.
"""

from __future__ import annotations

import streamlit as st

from ui import data, feedback, urlstate
from ui import schemas as s
from ui.client import POOLED, Scope


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
            default=urlstate.options("filter_runs", list(by_id), []),
            format_func=lambda run_id: run_label(by_id[run_id]),
            key="filter_runs",
            placeholder="all pooled runs",
            help="Empty: every run without interventions (ablations and capacity overrides "
            "are kept apart). Pick runs to see only them.",
        )
        if more:
            st.caption(f"Only the newest {len(runs)} runs are listed.")
        picked_domains = st.multiselect(
            "Domains",
            domains,
            default=urlstate.options("filter_domains", domains, []),
            key="filter_domains",
            placeholder="all domains",
        )
    urlstate.remember("filter_runs", picked_runs)
    urlstate.remember("filter_domains", picked_domains)
    return Scope(layers=layers, run_ids=tuple(picked_runs), domains=tuple(picked_domains))


def layer_picker(card: s.ModelCard, *, key: str, where=st) -> int:
    """One MoE layer of the served model (kept in the URL under `key`)."""
    layer = where.selectbox(
        "MoE layer",
        card.moe_layers,
        index=urlstate.index(key, card.moe_layers),
        key=key,
        format_func=lambda layer: f"layer {layer}",
    )
    urlstate.remember(key, layer)
    return layer


def expert_labels(specs: list[s.DomainSpecialization], num_experts: int) -> dict[int, str]:
    """Each expert named by what it does: the domains whose tokens it takes most above the
    uniform share k/E ("expert 12 · code-c, code-go"), from one layer's specialisation."""
    lift: dict[int, list[tuple[float, str]]] = {e: [] for e in range(num_experts)}
    for spec in specs:
        for e, share in enumerate(spec.shares):
            if share is not None and spec.baseline and share > spec.baseline:
                lift[e].append((share / spec.baseline, spec.domain))
    labels = {}
    for e, lifted in lift.items():
        top = [domain for _, domain in sorted(lifted, reverse=True)[:2]]
        labels[e] = f"expert {e}" + (f" · {', '.join(top)}" if top else "")
    return labels


def expert_picker(card: s.ModelCard, layer: int, *, key: str, where=st) -> int:
    """One expert of `layer`, listed by id and by its top domains; searchable by either
    (type "legal" to find the experts that serve legal text). Kept in the URL under `key`."""
    specs = [d for d in feedback.need("Reading domains", data.domains, POOLED) if d.layer == layer]
    labels = expert_labels(specs, card.num_experts)
    experts = list(range(card.num_experts))
    expert = where.selectbox(
        "Expert",
        experts,
        index=urlstate.index(key, experts),
        key=key,
        format_func=labels.__getitem__,
        help="Named by the domains whose tokens it takes most above the uniform share k/E.",
    )
    urlstate.remember(key, expert)
    return expert


def corpus_sample(prefix: str) -> tuple[int, list[str]]:
    """How to sample the built-in corpus when no texts are given: documents per domain, and
    which domains (none picked: all). Stratified, so every domain is measured."""
    left, right = st.columns([1, 3])
    per_domain = left.number_input(
        "Built-in documents per domain", min_value=1, max_value=500, value=4,
        key=f"{prefix}_per_domain",
    )  # fmt: skip
    domains = right.multiselect(
        "Domains of the built-in corpus",
        feedback.attempt("Listing domains", data.domain_names) or [],
        key=f"{prefix}_domains",
        placeholder="all domains",
    )
    return int(per_domain), list(domains)


def sample_caption(sample: s.Sample) -> str:
    """What an experiment measured, in words."""
    total = sum(sample.documents.values())
    if sample.source == "texts":
        return f"Measured on the {total} texts given."
    counts = sorted(set(sample.documents.values()))
    each = f"{counts[0]} of each" if len(counts) == 1 else f"{counts[0]}-{counts[-1]} of each"
    return (
        f"Measured on {total} built-in validation documents, {each} of "
        f"{len(sample.documents)} domains: {', '.join(sample.documents)}."
    )

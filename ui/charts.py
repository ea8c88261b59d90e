"""Altair chart builders: pure functions from the API's typed results to charts.

No Streamlit and no HTTP here: each builder turns data into a chart (and nothing else), so
it can be tested by reading the chart's encodings and data. Every statistic is drawn with
its uniform-routing baseline, the reference the MoE papers compare against: a dashed rule
on bar charts, the midpoint of a diverging colour scale on heatmaps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import altair as alt
import pandas as pd

from ui import schemas as s
from ui.palette import expert_colours
from ui.tokens import display_piece, route_at, vocab_label
from ui.whatif import CapacityOutcome

BASELINE_COLOUR = "#333333"
DROPPED_COLOUR = "#d62728"
DIVERGING = "blueorange"  # below the baseline blue, above orange, white-ish at the baseline
ROW_STEP = 22  # pixels per row of a categorical axis
FLAT_LABELS = alt.Axis(labelAngle=0)  # short ordinal labels (expert ids, layers) read flat


def _baseline_rule(baseline: float, axis: str = "y") -> alt.Chart:
    """A dashed line at the uniform baseline, with the value in its tooltip."""
    frame = pd.DataFrame({"baseline": [baseline]})
    # An empty title: the rule shares the bars' axis but adds no "baseline" to its title
    # (axis=None would remove the shared axis altogether).
    channel = alt.X if axis == "x" else alt.Y
    encoding = {axis: channel("baseline:Q", title="")}
    return (
        alt.Chart(frame)
        .mark_rule(strokeDash=[6, 4], color=BASELINE_COLOUR, size=1.5)
        .encode(**encoding, tooltip=[alt.Tooltip("baseline:Q", title="uniform baseline")])
    )


def _expert_colour(num_experts: int, field: str = "expert:N", legend: bool = False) -> alt.Color:
    scale = alt.Scale(domain=list(range(num_experts)), range=expert_colours(num_experts))
    return alt.Color(field, scale=scale, legend=alt.Legend(title="expert") if legend else None)


def _diverging(field: str, baseline: float, title: str) -> alt.Color:
    scale = alt.Scale(scheme=DIVERGING, domainMid=baseline)
    return alt.Color(field, scale=scale, title=title, legend=alt.Legend(format=".0%"))


# --- load and balance -------------------------------------------------------------------


def load_heatmap(layers: Sequence[s.LayerLoadStats]) -> alt.Chart:
    """MoE layer x expert, coloured by the expert's share of the layer's load (baseline 1/E)."""
    rows = [
        {
            "layer": x.layer,
            "expert": e.expert,
            "load": e.load,
            "share": e.share.value,
            "baseline": e.share.baseline,
        }
        for x in layers
        for e in x.load.experts
    ]
    frame = pd.DataFrame(rows, columns=["layer", "expert", "load", "share", "baseline"])
    baseline = float(frame["baseline"].dropna().iloc[0]) if frame["baseline"].notna().any() else 0
    return (
        alt.Chart(frame, title=f"Share of each layer's load (uniform: {baseline:.1%})")
        .mark_rect()
        .encode(
            x=alt.X("expert:O", axis=FLAT_LABELS, title="expert"),
            y=alt.Y("layer:O", title="MoE layer"),
            color=_diverging("share:Q", baseline, "share"),
            tooltip=[
                "layer:O",
                "expert:O",
                alt.Tooltip("load:Q", title="kept assignments", format=","),
                alt.Tooltip("share:Q", format=".2%"),
                alt.Tooltip("baseline:Q", title="uniform baseline", format=".2%"),
            ],
        )
        .properties(height=alt.Step(28))
    )


def expert_share_bars(load: s.LayerLoad) -> alt.LayerChart:
    """One layer's share of load per expert, against the uniform 1/E."""
    frame = pd.DataFrame(
        [{"expert": e.expert, "share": e.share.value, "load": e.load} for e in load.experts]
    )
    baseline = next((e.share.baseline for e in load.experts if e.share.baseline), 0.0)
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("expert:O", axis=FLAT_LABELS),
            y=alt.Y("share:Q", axis=alt.Axis(format="%"), title="share of load"),
            color=_expert_colour(len(load.experts)),
            tooltip=["expert:O", alt.Tooltip("share:Q", format=".2%"), "load:Q"],
        )
    )
    return alt.layer(bars, _baseline_rule(baseline)).properties(
        title=f"Layer {load.layer}: share of load (uniform {baseline:.1%})"
    )


def drop_rate_bars(routing: Sequence[s.LayerRouting]) -> alt.Chart:
    """Share of tokens whose choice of each rank (1st ... k-th) was dropped, per layer
    (baseline 0)."""
    rows = [
        {"layer": r.layer, "rank": f"choice {i + 1}", "drop_rate": m.value, "tokens": r.tokens}
        for r in routing
        for i, m in enumerate(r.drop_rate_by_rank)
    ]
    frame = pd.DataFrame(rows, columns=["layer", "rank", "drop_rate", "tokens"])
    return (
        alt.Chart(frame, title="Dropped by capacity, by rank (uniform routing with room: 0%)")
        .mark_bar()
        .encode(
            x=alt.X("layer:O", axis=FLAT_LABELS, title="MoE layer"),
            xOffset="rank:N",
            y=alt.Y("drop_rate:Q", axis=alt.Axis(format="%"), title="drop rate"),
            color=alt.Color("rank:N", title="choice"),
            tooltip=["layer:O", "rank:N", alt.Tooltip("drop_rate:Q", format=".2%"), "tokens:Q"],
        )
    )


def drop_rate_by_position(
    positions: Sequence[s.PositionDrops], overall: Sequence[s.LayerRouting] = ()
) -> alt.FacetChart:
    """Drop rate by position bucket, one panel per layer; dashed: the layer's overall rate."""
    rows = [
        {
            "layer": p.layer,
            "start": p.start,
            "bucket": f"{p.start}-{p.stop - 1}",
            "rank": rank,
            "drop_rate": m.value,
            "tokens": p.tokens,
        }
        for p in positions
        for rank, m in (("all choices", p.drop_rate), ("top-1", p.drop_rate_top1))
    ]
    means = [
        {"layer": r.layer, "rank": rank, "overall": m.value}
        for r in overall
        for rank, m in (("all choices", r.drop_rate), ("top-1", r.drop_rate_by_rank[0]))
    ]
    frame = pd.DataFrame(rows, columns=["layer", "start", "bucket", "rank", "drop_rate", "tokens"])
    frame = frame.merge(
        pd.DataFrame(means, columns=["layer", "rank", "overall"]), on=["layer", "rank"], how="left"
    )
    base = alt.Chart(frame)
    lines = base.mark_line(point=True).encode(
        x=alt.X("start:Q", title="token position (bucket start)"),
        y=alt.Y("drop_rate:Q", axis=alt.Axis(format="%"), title="drop rate"),
        color=alt.Color("rank:N", title="choice"),
        tooltip=["bucket:N", "rank:N", alt.Tooltip("drop_rate:Q", format=".2%"), "tokens:Q"],
    )
    mean_rules = base.mark_rule(strokeDash=[6, 4]).encode(
        y="mean(overall):Q",
        color="rank:N",
        tooltip=[alt.Tooltip("mean(overall):Q", title="all positions", format=".2%")],
    )
    return (
        alt.layer(lines, mean_rules)
        .properties(width=320, height=200)
        .facet(column=alt.Column("layer:O", title="MoE layer"))
        .properties(title="Do later tokens drop more? (dashed: the layer's rate at all positions)")
    )


def tokens_by_domain_bars(losses: Sequence[s.DomainLoss]) -> alt.Chart:
    """Tokens in the store per domain, with documents and mean loss in the tooltip."""
    frame = pd.DataFrame(
        [
            {
                "domain": d.domain,
                "tokens": d.tokens,
                "documents": d.documents,
                "mean_nll": d.mean_nll.value,
            }
            for d in losses
        ],
        columns=["domain", "tokens", "documents", "mean_nll"],
    )
    return (
        alt.Chart(frame, title="Tokens by domain")
        .mark_bar()
        .encode(
            x=alt.X("tokens:Q", title="tokens"),
            y=alt.Y("domain:N", sort="-x", title=None),
            tooltip=[
                "domain:N",
                "documents:Q",
                "tokens:Q",
                alt.Tooltip("mean_nll:Q", format=".3f"),
            ],
        )
        .properties(height=alt.Step(ROW_STEP))
    )


# --- specialisation ---------------------------------------------------------------------


def domain_heatmap(specs: Sequence[s.DomainSpecialization]) -> alt.Chart:
    """OLMoE eq. 7 at one layer: domain x expert, share of the domain's tokens routed there."""
    rows = [
        {
            "domain": d.domain,
            "expert": e,
            "share": share,
            "count": d.counts[e],
            "tokens": d.tokens,
            "baseline": d.baseline,
        }
        for d in specs
        for e, share in enumerate(d.shares)
    ]
    frame = pd.DataFrame(rows, columns=["domain", "expert", "share", "count", "tokens", "baseline"])
    baseline = specs[0].baseline if specs else 0.0
    layer = specs[0].layer if specs else None
    return (
        alt.Chart(
            frame,
            title=f"Layer {layer}: tokens of each domain routed to each expert "
            f"(top-k; uniform k/E = {baseline:.1%})",
        )
        .mark_rect()
        .encode(
            x=alt.X("expert:O", axis=FLAT_LABELS),
            y=alt.Y("domain:N", title=None),
            color=_diverging("share:Q", baseline, "N(e,D)/N(D)"),
            tooltip=[
                "domain:N",
                "expert:O",
                alt.Tooltip("share:Q", format=".2%"),
                alt.Tooltip("count:Q", title="tokens routed"),
                alt.Tooltip("tokens:Q", title="domain tokens"),
                alt.Tooltip("baseline:Q", title="uniform baseline", format=".2%"),
            ],
        )
        .properties(height=alt.Step(ROW_STEP))
    )


def domain_share_bars(domains: Sequence[s.DomainShare]) -> alt.LayerChart:
    """One expert's share of every domain's tokens, against k/E."""
    frame = pd.DataFrame(
        [
            {"domain": d.domain, "share": d.share, "tokens": d.tokens, "baseline": d.baseline}
            for d in domains
        ],
        columns=["domain", "share", "tokens", "baseline"],
    )
    frame["above"] = frame["share"] > frame["baseline"]
    baseline = float(frame["baseline"].iloc[0]) if len(frame) else 0.0
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("share:Q", axis=alt.Axis(format="%"), title="share of the domain's tokens"),
            y=alt.Y("domain:N", sort="-x", title=None),
            color=alt.Color(
                "above:N",
                scale=alt.Scale(domain=[True, False], range=["#f28e2b", "#4e79a7"]),
                legend=alt.Legend(title="above baseline"),
            ),
            tooltip=["domain:N", alt.Tooltip("share:Q", format=".2%"), "tokens:Q"],
        )
    )
    return alt.layer(bars, _baseline_rule(baseline, axis="x")).properties(
        title=f"Load over domains (uniform k/E = {baseline:.1%})", height=alt.Step(ROW_STEP)
    )


def vocab_bars(tokens: Sequence[s.TokenShare], baseline: float, title: str) -> alt.LayerChart:
    """Tokens an expert specialises in (OLMoE eq. 8), best first, against k/E."""
    frame = pd.DataFrame(
        [
            {
                "token": f"{vocab_label(t.piece)} #{t.token_id}",
                "share": t.share,
                "count": t.count,
                "with_expert": t.with_expert,
            }
            for t in tokens
        ],
        columns=["token", "share", "count", "with_expert"],
    )
    bars = (
        alt.Chart(frame)
        .mark_bar(color="#59a14f")
        .encode(
            x=alt.X("share:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("token:N", sort="-x", title=None),
            tooltip=[
                "token:N",
                alt.Tooltip("share:Q", format=".1%"),
                alt.Tooltip("count:Q", title="occurrences"),
                alt.Tooltip("with_expert:Q", title="routed to the expert"),
            ],
        )
    )
    return alt.layer(bars, _baseline_rule(baseline, axis="x")).properties(
        title=title, height=alt.Step(ROW_STEP)
    )


def consecutive_bars(rows: Sequence[s.ConsecutiveRouting]) -> alt.LayerChart:
    """Adjacent tokens routed alike (Mixtral table 5); black ticks: the random baseline."""
    frame = pd.DataFrame(
        [
            {"layer": r.layer, "metric": name, "value": m.value, "baseline": m.baseline}
            for r in rows
            for name, m in (("same top-1", r.same_top1), ("shared top-k", r.shared_topk))
        ],
        columns=["layer", "metric", "value", "baseline"],
    )
    base = alt.Chart(frame).encode(
        x=alt.X("layer:O", axis=FLAT_LABELS, title="MoE layer"), xOffset="metric:N"
    )
    bars = base.mark_bar().encode(
        y=alt.Y("value:Q", axis=alt.Axis(format="%"), title="share of adjacent pairs"),
        color=alt.Color("metric:N", title=None),
        tooltip=[
            "layer:O",
            "metric:N",
            alt.Tooltip("value:Q", format=".2%"),
            alt.Tooltip("baseline:Q", title="random baseline", format=".2%"),
        ],
    )
    ticks = base.mark_tick(color=BASELINE_COLOUR, thickness=3).encode(y="baseline:Q")
    return alt.layer(bars, ticks).properties(
        title="Consecutive tokens routed alike (ticks: random routing)"
    )


def coactivation_heatmap(co: s.Coactivation) -> alt.Chart:
    """OLMoE eq. 6: row i, column j = share of the tokens routed to i also routed to j."""
    rows = [
        {"expert": i, "partner": j, "ratio": ratio, "pairs": co.pairs[i][j], "tokens": co.counts[i]}
        for i, row in enumerate(co.ratios)
        for j, ratio in enumerate(row)
        if i != j
    ]
    frame = pd.DataFrame(rows, columns=["expert", "partner", "ratio", "pairs", "tokens"])
    return (
        alt.Chart(
            frame, title=f"Layer {co.layer}: co-activation (uniform 1/(E-1) = {co.baseline:.1%})"
        )
        .mark_rect()
        .encode(
            x=alt.X("partner:O", axis=FLAT_LABELS, title="partner j"),
            y=alt.Y("expert:O", title="expert i"),
            color=_diverging("ratio:Q", co.baseline, "N(i,j)/N(i)"),
            tooltip=[
                "expert:O",
                "partner:O",
                alt.Tooltip("ratio:Q", format=".2%"),
                alt.Tooltip("pairs:Q", title="tokens with both"),
            ],
        )
    )


def transitions_heatmap(t: s.Transitions) -> alt.Chart:
    """Top-1 at one MoE layer against top-1 at a later one, row-normalised (baseline 1/E)."""
    rows = [
        {"from": i, "to": j, "probability": p, "count": t.counts[i][j]}
        for i, row in enumerate(t.probabilities)
        for j, p in enumerate(row)
    ]
    frame = pd.DataFrame(rows, columns=["from", "to", "probability", "count"])
    return (
        alt.Chart(
            frame,
            title=f"Top-1 at layer {t.layer_from} -> top-1 at layer {t.layer_to} "
            f"(uniform 1/E = {t.baseline:.1%})",
        )
        .mark_rect()
        .encode(
            x=alt.X("to:O", axis=FLAT_LABELS, title=f"expert at layer {t.layer_to}"),
            y=alt.Y("from:O", title=f"expert at layer {t.layer_from}"),
            color=_diverging("probability:Q", t.baseline, "P(to | from)"),
            tooltip=["from:O", "to:O", alt.Tooltip("probability:Q", format=".2%"), "count:Q"],
        )
    )


def partner_bars(partners: Sequence[s.Partner], num_experts: int) -> alt.LayerChart:
    """How often each other expert is the token's other choice, against 1/(E-1)."""
    frame = pd.DataFrame(
        [{"expert": p.expert, "ratio": p.ratio} for p in partners], columns=["expert", "ratio"]
    )
    baseline = partners[0].baseline if partners else 0.0
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("expert:O", axis=FLAT_LABELS, title="partner expert"),
            y=alt.Y("ratio:Q", axis=alt.Axis(format="%"), title="share of this expert's tokens"),
            color=_expert_colour(num_experts),
            tooltip=["expert:O", alt.Tooltip("ratio:Q", format=".2%")],
        )
    )
    return alt.layer(bars, _baseline_rule(baseline)).properties(
        title=f"Co-activated partners (uniform {baseline:.1%})"
    )


def compare_share_bars(
    series: Mapping[str, Sequence[float | None]], baseline: float, title: str
) -> alt.LayerChart:
    """Two (or more) labelled per-expert shares side by side, against a common baseline."""
    frame = pd.DataFrame(
        [
            {"series": label, "expert": e, "share": v}
            for label, values in series.items()
            for e, v in enumerate(values)
        ],
        columns=["series", "expert", "share"],
    )
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("expert:O", axis=FLAT_LABELS),
            xOffset="series:N",
            y=alt.Y("share:Q", axis=alt.Axis(format="%"), title="share"),
            color=alt.Color("series:N", title=None),
            tooltip=["series:N", "expert:O", alt.Tooltip("share:Q", format=".2%")],
        )
    )
    return alt.layer(bars, _baseline_rule(baseline)).properties(title=title)


# --- experiments and comparisons --------------------------------------------------------


def saturation_bars(layers: Sequence[s.LayerSaturation], title: str) -> alt.LayerChart:
    """Router saturation per layer (OLMoE eq. 5; 1 = same top-k), against k/E."""
    frame = pd.DataFrame(
        [{"layer": x.layer, "saturation": x.saturation, "tokens": x.tokens} for x in layers],
        columns=["layer", "saturation", "tokens"],
    )
    baseline = layers[0].baseline if layers else 0.0
    bars = (
        alt.Chart(frame)
        .mark_bar(color="#76b7b2")
        .encode(
            x=alt.X("layer:O", axis=FLAT_LABELS, title="MoE layer"),
            y=alt.Y("saturation:Q", scale=alt.Scale(domain=[0, 1]), title="|topk A ∩ topk B| / k"),
            tooltip=["layer:O", alt.Tooltip("saturation:Q", format=".3f"), "tokens:Q"],
        )
    )
    return alt.layer(bars, _baseline_rule(baseline)).properties(
        title=f"{title} (random: k/E = {baseline:.2f})"
    )


def _effect(delta: float | None) -> str:
    # No scored token (a one-token text): no change to show, which is not "no effect".
    if delta is None or math.isnan(delta):
        return "not scored"
    return "worse" if delta > 0 else "better or same"


def loss_change_bars(effects: Sequence[s.DomainEffect]) -> alt.LayerChart:
    """Per-domain change in mean next-token loss when experts are switched off."""
    frame = pd.DataFrame(
        [
            {
                "domain": d.domain,
                "delta": d.delta,
                "base_nll": d.base_nll,
                "ablated_nll": d.ablated_nll,
                "tokens": d.tokens,
            }
            for d in effects
        ],
        columns=["domain", "delta", "base_nll", "ablated_nll", "tokens"],
    )
    frame["effect"] = frame["delta"].map(_effect)
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("delta:Q", title="change in mean nll (nats)"),
            y=alt.Y("domain:N", sort="-x", title=None),
            color=alt.Color(
                "effect:N",
                scale=alt.Scale(
                    domain=["worse", "better or same", "not scored"],
                    range=["#e15759", "#4e79a7", "#bab0ac"],
                ),
            ),
            tooltip=[
                "domain:N",
                alt.Tooltip("base_nll:Q", format=".3f", title="before"),
                alt.Tooltip("ablated_nll:Q", format=".3f", title="experts off"),
                alt.Tooltip("delta:Q", format="+.3f"),
                "tokens:Q",
            ],
        )
    )
    return alt.layer(bars, _baseline_rule(0.0, axis="x")).properties(
        title="Loss change per domain (0: no effect)", height=alt.Step(ROW_STEP)
    )


def rerouting_bars(rerouting: s.Rerouting) -> alt.LayerChart:
    """Where the tokens of switched-off experts went instead, by expert."""
    num_experts = len(rerouting.new_experts)
    frame = pd.DataFrame(
        [{"expert": e, "share": v} for e, v in enumerate(rerouting.new_experts)],
        columns=["expert", "share"],
    )
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("expert:O", axis=FLAT_LABELS),
            y=alt.Y("share:Q", axis=alt.Axis(format="%"), title="share of new assignments"),
            color=_expert_colour(num_experts),
            tooltip=["expert:O", alt.Tooltip("share:Q", format=".1%")],
        )
    )
    return alt.layer(bars, _baseline_rule(1 / num_experts if num_experts else 0.0)).properties(
        title=f"Layer {rerouting.layer}: where {rerouting.affected_tokens} affected tokens went"
    )


def _capacity_frame(outcomes: Sequence[CapacityOutcome]) -> tuple[pd.DataFrame, list[str]]:
    frame = pd.DataFrame(
        [
            {
                "capacity": o.capacity,
                "series": f"layer {o.layer} {rank}",
                "drop_rate": rate,
                "mean_nll": o.mean_nll,
            }
            for o in outcomes
            for rank, rate in (("all choices", o.drop_rate), ("top-1", o.drop_rate_top1))
        ],
        columns=["capacity", "series", "drop_rate", "mean_nll"],
    )
    return frame, list(dict.fromkeys(o.capacity for o in outcomes))  # in the order tried


def capacity_drop_chart(outcomes: Sequence[CapacityOutcome]) -> alt.Chart:
    """Drop rate per layer and rank for each capacity factor tried."""
    frame, order = _capacity_frame(outcomes)
    return (
        alt.Chart(frame, title="Drop rate by capacity factor")
        .mark_line(point=True)
        .encode(
            x=alt.X("capacity:O", axis=FLAT_LABELS, sort=order, title="capacity factor"),
            y=alt.Y("drop_rate:Q", axis=alt.Axis(format="%"), title="drop rate"),
            color=alt.Color("series:N", title=None),
            tooltip=["capacity:O", "series:N", alt.Tooltip("drop_rate:Q", format=".2%")],
        )
    )


def capacity_loss_chart(outcomes: Sequence[CapacityOutcome]) -> alt.Chart:
    """Mean next-token loss for each capacity factor tried (points: the axis is not at 0)."""
    frame, order = _capacity_frame(outcomes)
    return (
        alt.Chart(frame.drop_duplicates("capacity"), title="Mean next-token loss")
        .mark_line(point=True, color="#b07aa1")
        .encode(
            x=alt.X("capacity:O", axis=FLAT_LABELS, sort=order, title="capacity factor"),
            y=alt.Y("mean_nll:Q", title="nats", scale=alt.Scale(zero=False)),
            tooltip=["capacity:O", alt.Tooltip("mean_nll:Q", format=".4f")],
        )
    )


# --- one document -----------------------------------------------------------------------

TOKEN_SELECTION = "token"  # name of the click selection on the token grid


def choices_text(route: s.Route) -> str:
    """A route's k choices on one line, best first: "12 .61/.58, 3 .39/.22 dropped"."""
    return ", ".join(
        f"{expert} {gate:.2f}/{prob:.2f}" + ("" if kept else " dropped")
        for expert, gate, prob, kept in zip(
            route.experts, route.gates, route.probs, route.kept, strict=True
        )
    )


def token_grid(
    tokens: Sequence[s.Token], layers: Sequence[int], num_experts: int
) -> alt.LayerChart:
    """Token x MoE layer, coloured by top-1 expert; dashed red outline: top-1 dropped.

    Hover shows all k choices; a click selects the token (selection `TOKEN_SELECTION`).
    """
    rows = []
    for token in tokens:
        for layer in layers:
            route = route_at(token, layer)
            if route is None:
                continue
            rows.append(
                {
                    "position": token.position,
                    "end": token.position + 1,
                    "piece": display_piece(token.piece),
                    "layer": layer,
                    "expert": route.experts[0],
                    "top1_kept": route.kept[0],
                    "choices": choices_text(route),
                    "entropy": route.entropy,
                    "nll": token.nll,
                    "predicted": display_piece(token.predicted_piece),
                }
            )
    frame = pd.DataFrame(rows)
    pick = alt.selection_point(name=TOKEN_SELECTION, fields=["position"], on="click")
    base = alt.Chart(frame).encode(
        x=alt.X(
            "position:Q",
            title="token position",
            scale=alt.Scale(nice=False),
            axis=alt.Axis(format="d", tickMinStep=1),
        ),
        x2="end:Q",
        y=alt.Y("layer:O", title="MoE layer", axis=FLAT_LABELS),
    )
    cells = (
        base.mark_rect()
        .encode(
            # No legend: the page shows the same colours as chips above the text.
            color=_expert_colour(num_experts),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.4)),
            tooltip=[
                "position:Q",
                alt.Tooltip("piece:N", title="token"),
                "layer:O",
                alt.Tooltip("expert:N", title="top-1"),
                alt.Tooltip("choices:N", title="choices (expert gate/score)"),
                alt.Tooltip("entropy:Q", title="router entropy", format=".3f"),
                alt.Tooltip("nll:Q", title="next-token nll", format=".3f"),
                alt.Tooltip("predicted:N", title="predicted next"),
            ],
        )
        .add_params(pick)
    )
    dropped = (
        base.transform_filter("!datum.top1_kept")
        .mark_rect(fill=None, stroke=DROPPED_COLOUR, strokeWidth=2, strokeDash=[3, 2])
        .encode(tooltip=alt.value("top-1 dropped"))
    )
    return alt.layer(cells, dropped).properties(
        title="Top-1 expert of every token at every MoE layer (dashed red: top-1 dropped)",
        height=alt.Step(36),
    )


INTEGER_METRICS = {"dead_experts"}
TRAINING_METRICS = {
    "saturation": "router saturation vs the last step",
    "top1_agreement": "top-1 agreement with the last step",
    "load_cv": "load CV (kept assignments)",
    "drop_rate": "drop rate (all choices)",
    "router_entropy": "router entropy (nats)",
    "loss": "probe loss (nats/token)",
    "dead_experts": "dead experts",
}


def training_curves(
    points: Sequence[s.TrainingPoint], metric: str, *, baseline: float | None = None
) -> alt.Chart | alt.LayerChart:
    """One line per MoE layer (or per domain, when the points are one layer's): `metric`
    against the training step, on a log axis (checkpoints are log-spaced)."""
    layers = {p.layer for p in points}
    series = "domain" if len(layers) == 1 and len({p.domain for p in points}) > 1 else "layer"
    frame = pd.DataFrame(
        [
            {
                "step": p.step,
                "tokens_seen": p.tokens_seen,
                "layer": f"layer {p.layer}",
                "domain": p.domain or "all",
                "value": getattr(p, metric),
            }
            for p in points
        ],
        columns=["step", "tokens_seen", "layer", "domain", "value"],
    )
    title = TRAINING_METRICS[metric]
    lines = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("step:Q", scale=alt.Scale(type="log"), title="training step (log)"),
            # Counts (dead experts) on whole numbers; an all-zero curve still gets a 0-1 axis
            # instead of ticks at 0.000000.
            y=alt.Y(
                "value:Q",
                title=title,
                axis=alt.Axis(format="d", tickMinStep=1)
                if metric in INTEGER_METRICS
                else alt.Axis(),
                scale=alt.Scale(domainMin=0, domainMax=1)
                if not frame["value"].fillna(0).any()
                else alt.Scale(zero=False),
            ),
            color=alt.Color(f"{series}:N", title=series),
            tooltip=[
                f"{series}:N",
                "step:Q",
                alt.Tooltip("tokens_seen:Q", format=","),
                alt.Tooltip("value:Q", format=".3f", title=metric),
            ],
        )
        .properties(title=alt.TitleParams(title, anchor="start", offset=10), height=260)
    )
    return lines if baseline is None else alt.layer(lines, _baseline_rule(baseline))

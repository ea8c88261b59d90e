"""The chart builders: the right data, encodings and baselines (read from the chart specs)."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import pytest

from tests.ui import samples
from ui import charts
from ui import schemas as s
from ui.palette import expert_colours
from ui.whatif import CapacityOutcome


def spec(chart: alt.TopLevelMixin) -> dict:
    """The Vega-Lite spec; to_dict also validates it against the schema."""
    return chart.to_dict()


def data(layer: alt.Chart, parent: alt.LayerChart) -> pd.DataFrame:
    """A layer's data; altair moves data shared by every layer up to the parent."""
    return layer.data if layer.data is not alt.Undefined else parent.data


def rule_baseline(layer: alt.Chart) -> float:
    assert spec(layer)["mark"]["type"] == "rule"
    assert spec(layer)["mark"]["strokeDash"]  # dashed: a reference, not data
    [channel] = [spec(layer)["encoding"][c] for c in ("x", "y") if c in spec(layer)["encoding"]]
    # Shares the data's axis without renaming it, and without hiding it (axis: null would).
    assert channel["title"] == "" and "axis" not in channel
    return float(layer.data["baseline"].iloc[0])


def test_load_heatmap_is_layer_by_expert_coloured_around_the_uniform_share():
    chart = charts.load_heatmap([samples.layer_load_stats(1, [10, 20, 30, 40])])
    enc = spec(chart)["encoding"]
    assert spec(chart)["mark"]["type"] == "rect"
    assert (enc["x"]["field"], enc["x"]["type"]) == ("expert", "ordinal")
    assert (enc["y"]["field"], enc["y"]["type"]) == ("layer", "ordinal")
    assert enc["color"]["field"] == "share"
    assert enc["color"]["scale"]["domainMid"] == pytest.approx(0.25)
    assert list(chart.data["share"]) == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert "25.0%" in spec(chart)["title"]


def test_expert_share_bars_draw_the_uniform_share_as_a_rule():
    chart = charts.expert_share_bars(samples.layer_load_stats(3, [1, 1, 1, 5]).load)
    bars, rule = chart.layer
    assert spec(bars)["encoding"]["y"]["field"] == "share"
    assert list(bars.data["share"]) == pytest.approx([0.125, 0.125, 0.125, 0.625])
    assert rule_baseline(rule) == pytest.approx(0.25)
    colours = spec(bars)["encoding"]["color"]["scale"]["range"]
    assert colours == expert_colours(4)  # the same colours as the token text


def test_drop_rate_bars_split_layers_by_rank():
    chart = charts.drop_rate_bars(samples.balance_stats().routing)
    enc = spec(chart)["encoding"]
    assert enc["xOffset"]["field"] == "rank" and enc["y"]["field"] == "drop_rate"
    frame = chart.data.set_index(["layer", "rank"])["drop_rate"]
    assert frame[(3, "choice 2")] == pytest.approx(0.6)
    assert frame[(1, "choice 1")] == pytest.approx(0.1)


def test_drops_by_position_facet_by_layer_with_the_overall_rate_dashed():
    positions = [
        s.PositionDrops(
            layer=1,
            start=start,
            stop=start + 32,
            tokens=10,
            drop_rate=s.Measure(value=rate * 2, baseline=0.0),
            drop_rate_top1=s.Measure(value=rate, baseline=0.0),
        )
        for start, rate in ((0, 0.1), (32, 0.2))
    ]
    chart = charts.drop_rate_by_position(positions, samples.balance_stats().routing)
    d = spec(chart)
    assert d["facet"]["column"]["field"] == "layer"
    lines, rules = d["spec"]["layer"]
    assert lines["mark"]["type"] == "line" and rules["mark"]["strokeDash"]
    frame = chart.data
    assert list(frame["bucket"].unique()) == ["0-31", "32-63"]
    every = frame[frame["rank"] == "all choices"]
    assert list(every["drop_rate"]) == pytest.approx([0.2, 0.4])
    assert list(every["overall"]) == pytest.approx([0.2, 0.2])  # layer 1, all positions
    top1 = frame[frame["rank"] == "top-1"]
    assert list(top1["overall"]) == pytest.approx([0.1, 0.1])


def test_domain_heatmap_keeps_undefined_shares_empty_and_centres_on_k_over_e():
    chart = charts.domain_heatmap(samples.domain_specs())
    enc = spec(chart)["encoding"]
    assert enc["y"]["field"] == "domain" and enc["x"]["field"] == "expert"
    assert enc["color"]["scale"]["domainMid"] == 0.5
    code = chart.data[chart.data["domain"] == "code"].set_index("expert")
    assert code.loc[0, "share"] == 0.9 and code.loc[0, "count"] == 9
    chat = chart.data[chart.data["domain"] == "chat"]
    assert chat["share"].isna().all()  # nothing counted: no colour, not a fake 0
    assert "50.0%" in spec(chart)["title"]


def test_domain_share_bars_mark_domains_above_the_baseline():
    domains = [
        s.DomainShare(domain="code", tokens=10, share=0.9, baseline=0.5),
        s.DomainShare(domain="chat", tokens=10, share=0.2, baseline=0.5),
    ]
    bars, rule = charts.domain_share_bars(domains).layer
    assert dict(zip(bars.data["domain"], bars.data["above"], strict=True)) == {
        "code": True,
        "chat": False,
    }
    assert rule_baseline(rule) == 0.5
    assert spec(rule)["encoding"]["x"]["field"] == "baseline"  # a vertical rule


def test_vocab_bars_label_tokens_readably_and_show_k_over_e():
    shares = [
        s.TokenShare(token_id=5, piece="\u2581the", count=10, with_expert=9, share=0.9),
        s.TokenShare(token_id=6, piece="<0x3C>", count=8, with_expert=2, share=0.25),
    ]
    bars, rule = charts.vocab_bars(shares, 0.5, "By input token").layer
    assert list(bars.data["token"]) == ["' the' #5", "'<' #6"]
    assert spec(bars)["encoding"]["x"]["scale"]["domain"] == [0, 1]
    assert rule_baseline(rule) == 0.5


def test_consecutive_bars_tick_the_random_baseline_per_metric():
    rows = [
        s.ConsecutiveRouting(
            layer=1,
            pairs=9,
            same_top1=s.Measure(value=0.4, baseline=0.25),
            shared_topk=s.Measure(value=0.9, baseline=5 / 6),
        )
    ]
    chart = charts.consecutive_bars(rows)
    bars, ticks = chart.layer
    assert spec(ticks)["mark"]["type"] == "tick"
    assert spec(ticks)["encoding"]["y"]["field"] == "baseline"
    frame = data(bars, chart).set_index("metric")
    assert frame.loc["same top-1", "baseline"] == 0.25
    assert frame.loc["shared top-k", "value"] == 0.9


def test_coactivation_heatmap_leaves_out_the_diagonal():
    co = s.Coactivation(
        layer=1,
        counts=[4, 4, 4, 4],
        pairs=[[0, 2, 1, 1], [2, 0, 1, 1], [1, 1, 0, 2], [1, 1, 2, 0]],
        ratios=[[0, 0.5, 0.25, 0.25], [0.5, 0, 0.25, 0.25], [0.25, 0.25, 0, 0.5], [0.25] * 4],
        baseline=1 / 3,
    )
    chart = charts.coactivation_heatmap(co)
    assert len(chart.data) == 12
    assert not (chart.data["expert"] == chart.data["partner"]).any()
    pair = chart.data[(chart.data["expert"] == 0) & (chart.data["partner"] == 1)].iloc[0]
    assert (pair["ratio"], pair["pairs"]) == (0.5, 2)
    assert spec(chart)["encoding"]["color"]["scale"]["domainMid"] == pytest.approx(1 / 3)


def test_transitions_heatmap_maps_from_and_to_experts():
    t = s.Transitions(
        layer_from=1,
        layer_to=3,
        counts=[[3, 1], [0, 0]],
        probabilities=[[0.75, 0.25], [None, None]],
        baseline=0.5,
    )
    chart = charts.transitions_heatmap(t)
    enc = spec(chart)["encoding"]
    assert (enc["y"]["field"], enc["x"]["field"]) == ("from", "to")
    row = chart.data[(chart.data["from"] == 0) & (chart.data["to"] == 1)].iloc[0]
    assert (row["probability"], row["count"]) == (0.25, 1)
    assert "layer 1" in spec(chart)["title"] and "layer 3" in spec(chart)["title"]


def test_saturation_bars_span_zero_to_one_against_two_over_e():
    layers = [s.LayerSaturation(layer=1, tokens=9, saturation=0.8, baseline=0.5)]
    bars, rule = charts.saturation_bars(layers, "early vs final").layer
    assert spec(bars)["encoding"]["y"]["scale"]["domain"] == [0, 1]
    assert list(bars.data["saturation"]) == [0.8]
    assert rule_baseline(rule) == 0.5


def test_loss_change_bars_colour_worse_domains_red():
    effects = [
        s.DomainEffect(domain="code", tokens=5, base_nll=2.0, ablated_nll=2.5, delta=0.5),
        s.DomainEffect(domain="chat", tokens=5, base_nll=2.0, ablated_nll=1.9, delta=-0.1),
    ]
    bars, rule = charts.loss_change_bars(effects).layer
    effect = dict(zip(bars.data["domain"], bars.data["effect"], strict=True))
    assert effect == {"code": "worse", "chat": "better or same"}
    scale = spec(bars)["encoding"]["color"]["scale"]
    assert scale["range"][scale["domain"].index("worse")] == "#e15759"
    assert rule_baseline(rule) == 0.0


def test_loss_change_bars_say_a_domain_without_a_scored_token_was_not_scored():
    # A one-token text has no next token: no loss before or after, hence no change.
    effects = [
        s.DomainEffect(domain="solo", tokens=0, base_nll=None, ablated_nll=None, delta=None),
        s.DomainEffect(domain="code", tokens=5, base_nll=2.0, ablated_nll=2.5, delta=0.5),
    ]
    bars, _ = charts.loss_change_bars(effects).layer
    effect = dict(zip(bars.data["domain"], bars.data["effect"], strict=True))
    assert effect == {"solo": "not scored", "code": "worse"}
    spec(bars)  # still a valid chart


def test_rerouting_bars_show_where_tokens_went_against_one_over_e():
    rerouting = s.Rerouting(
        layer=1, affected_tokens=8, changed_top1=0.3, new_experts=[0, 0.5, 0.5, 0]
    )
    bars, rule = charts.rerouting_bars(rerouting).layer
    assert list(bars.data["share"]) == [0, 0.5, 0.5, 0]
    assert rule_baseline(rule) == 0.25
    assert "8 affected tokens" in spec(charts.rerouting_bars(rerouting))["title"]


def test_compare_share_bars_put_series_side_by_side():
    chart = charts.compare_share_bars({"run 1": [0.5, 0.5], "run 2": [0.9, 0.1]}, 0.5, "t")
    bars, rule = chart.layer
    assert spec(bars)["encoding"]["xOffset"]["field"] == "series"
    by = bars.data.set_index(["series", "expert"])["share"]
    assert by[("run 2", 0)] == 0.9
    assert rule_baseline(rule) == 0.5


def test_capacity_charts_keep_the_order_the_factors_were_tried_in():
    outcomes = [
        CapacityOutcome("2", 1, 10, 0.0, 0.1, 3.0),
        CapacityOutcome("0.5", 1, 10, 0.2, 0.9, 3.5),
    ]
    drops, loss = charts.capacity_drop_chart(outcomes), charts.capacity_loss_chart(outcomes)
    assert spec(drops)["encoding"]["x"]["sort"] == ["2", "0.5"]
    assert set(drops.data["series"]) == {"layer 1 all choices", "layer 1 top-1"}
    assert list(loss.data["mean_nll"]) == [3.0, 3.5]  # one point per factor
    assert spec(loss)["encoding"]["x"]["sort"] == ["2", "0.5"]


def test_token_grid_has_one_cell_per_token_and_layer_and_outlines_drops():
    chart = charts.token_grid(samples.tokens(), samples.LAYERS, samples.E)
    cells, _ = chart.layer
    frame = data(cells, chart)
    assert len(frame) == 3 * 2
    cell = frame[(frame["position"] == 1) & (frame["layer"] == 1)].iloc[0]
    assert (cell["expert"], bool(cell["top1_kept"])) == (2, False)
    assert cell["choices"] == "2 0.00/0.50 dropped, 0 0.40/0.30"
    assert cell["piece"] == "<script>"
    d = spec(chart)
    assert d["params"][0]["name"] == charts.TOKEN_SELECTION
    assert d["params"][0]["select"]["fields"] == ["position"]
    assert d["layer"][0]["encoding"]["color"]["scale"]["range"] == expert_colours(samples.E)
    assert d["layer"][1]["transform"] == [{"filter": "!datum.top1_kept"}]
    assert d["layer"][1]["mark"]["stroke"] == charts.DROPPED_COLOUR
    tooltips = {t["field"] for t in d["layer"][0]["encoding"]["tooltip"]}
    assert {"choices", "entropy", "nll", "predicted"} <= tooltips


def rows(layer: dict, top: dict) -> list[dict]:
    """The rows a (layer of a) Vega-Lite spec draws; the datasets sit at the top level."""
    return top["datasets"][layer["data"]["name"]]


def encodings(layer: dict) -> dict[str, list[tuple[str, str]]]:
    """Each encoding channel's (field, type) pairs: one, or a tooltip's several."""
    return {
        name: [(e["field"], e["type"]) for e in (enc if isinstance(enc, list) else [enc])]
        for name, enc in layer["encoding"].items()
    }


_LOSS = s.DomainLoss(
    domain="code",
    documents=2,
    tokens=9,
    scored_tokens=7,
    mean_nll=s.Measure(value=2.0, baseline=6.0),
)
_SATURATION = s.LayerSaturation(layer=1, tokens=9, saturation=0.8, baseline=0.5)


@pytest.mark.parametrize(
    ("build", "items"),
    [
        (charts.load_heatmap, [samples.layer_load_stats(1, [10, 20, 30, 40])]),
        (charts.drop_rate_bars, samples.balance_stats().routing),
        (charts.tokens_by_domain_bars, [_LOSS]),
        (charts.domain_heatmap, samples.domain_specs()),
        (lambda items: charts.saturation_bars(items, "t").layer[0], [_SATURATION]),
    ],
    ids=["load", "drops", "tokens-by-domain", "domains", "saturation"],
)
def test_builders_draw_empty_results_as_the_same_chart_with_no_rows(build, items):
    # A fresh store yields empty lists; pages may still draw them: the same marks on the
    # same fields, with nothing in them (not a broken spec, not a fake row).
    empty, full = spec(build([])), spec(build(items))
    assert rows(empty, empty) == [] and rows(full, full)
    assert empty["mark"]["type"] == full["mark"]["type"]
    assert encodings(empty) == encodings(full)
    fields = {field for pairs in encodings(full).values() for field, _ in pairs}
    assert fields <= set(rows(full, full)[0])  # every field drawn is a column of the rows


def test_an_empty_saturation_chart_keeps_its_baseline_rule_at_zero():
    chart = charts.saturation_bars([], "t")
    assert math.isclose(rule_baseline(chart.layer[1]), 0.0)
    assert spec(chart)["title"] == "t (random: k/E = 0.00)"

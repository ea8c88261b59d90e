"""Every dashboard page, run by Streamlit's AppTest against a live API with a tiny model."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx
import pandas as pd
import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

XSS = "<img src=x onerror=alert(1)>"


def charts(app: AppTest) -> list:
    return list(app.get("vega_lite_chart"))


def chart_specs(app: AppTest) -> list[dict]:
    """The Vega-Lite specs of the page's charts, data included."""
    return [json.loads(c.proto.spec) for c in charts(app)]


def chart_frames(chart) -> list[pd.DataFrame]:
    """A chart's data sets (Streamlit ships them beside the spec, as Arrow)."""
    return [convert_arrow_bytes_to_pandas_df(ds.data.data) for ds in chart.proto.datasets]


def assert_clean(app: AppTest) -> None:
    """No exception and no error box on the page."""
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


def visible_text(fragment: str) -> str:
    """What a reader sees of an HTML fragment: its text nodes, unescaped."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def click(app: AppTest, label: str) -> AppTest:
    button = next(b for b in app.button if b.label == label)
    return button.click().run()


def api(url: str, path: str, body: dict | None = None, **params) -> Any:
    """The API's own answer, to hold the page's numbers against."""
    if body is None:
        response = httpx.get(f"{url}{path}", params=params, timeout=60)
    else:
        response = httpx.post(f"{url}{path}", json=body, timeout=120)
    response.raise_for_status()
    return response.json()


def frame_of(chart, column: str) -> pd.DataFrame:
    """The one data set of a chart that has `column` (a layer's bars, not its rule)."""
    [frame] = [f for f in chart_frames(chart) if column in f]
    return frame


def titled(app: AppTest, words: str):
    """The page's one chart whose title has these words."""
    [chart] = [c for c in charts(app) if words in json.dumps(json.loads(c.proto.spec)["title"])]
    return chart


def metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def span_attribute(fragment: str, name: str) -> list[str]:
    """One attribute of every token span of the explorer's coloured text, in order."""
    return re.findall(rf'class="glam-token"[^>]*? {name}="([^"]*)"', fragment)


def top1(tokens: list[dict], layer: int) -> list[str]:
    return [str(next(r for r in t["routes"] if r["layer"] == layer)["experts"][0]) for t in tokens]


def test_overview_shows_the_model_the_store_load_and_balance(open_page, live_api):
    app = open_page("overview", live_api)
    assert_clean(app)
    card, runs = api(live_api, "/v1/model"), api(live_api, "/v1/runs")["runs"]
    losses = api(live_api, "/v1/stats/loss")
    shown = metrics(app)
    assert shown["Model"] == card["name"] == "ui-glam"
    assert shown["Experts per MoE layer"] == "4"
    assert shown["MoE layers"] == "1, 3"
    assert shown["Parameters"] == f"{card['params_total'] / 1e6:,.2f} M"
    assert shown["Runs"] == str(len(runs)) == "2"  # the built-in corpus job, the seeded texts
    assert shown["Documents (pooled)"] == f"{sum(d['documents'] for d in losses):,}"
    assert shown["Tokens (pooled)"] == f"{sum(d['tokens'] for d in losses):,}"
    assert shown["Domains"] == str(len(losses))
    assert {"code", "prose-en", "chat-ja", "seeded"} == {d["domain"] for d in losses}
    by_domain, heatmap = charts(app)
    frame = frame_of(by_domain, "tokens")
    assert dict(zip(frame["domain"], frame["tokens"], strict=True)) == {
        d["domain"]: d["tokens"] for d in losses
    }
    load = frame_of(heatmap, "share").set_index(["layer", "expert"])["share"]
    want = {
        (x["layer"], e["expert"]): e["share"]["value"]
        for x in api(live_api, "/v1/stats/load")
        for e in x["load"]["experts"]
    }
    assert load.to_dict() == pytest.approx(want)
    balance = app.dataframe[-1].value.set_index("layer")
    stats = api(live_api, "/v1/stats/balance")
    assert list(balance.index) == ["1", "3", "uniform baseline"]
    for row, routing in zip(stats["balance"], stats["routing"], strict=True):
        layer = str(row["layer"])
        assert balance.loc[layer, "CV"] == pytest.approx(row["cv"]["value"])
        assert balance.loc[layer, "drop (all choices)"] == pytest.approx(
            routing["drop_rate"]["value"]
        )
    assert balance.loc["uniform baseline", "CV"] == 0.0


def test_token_explorer_colours_an_analysed_text_and_escapes_it(open_page, live_api):
    app = open_page("token_explorer", live_api)
    assert_clean(app)
    text = f"Hello {XSS} world"
    app.text_area(key="explorer_text").set_value(text)
    app = click(app, "Analyse")
    assert_clean(app)
    want = api(live_api, "/v1/analyze", {"texts": [text], "domain": "user", "store": False})
    tokens = want["documents"][0]["tokens"]
    shown = next(h.value for h in app.html if "glam-tokens" in h.value)
    # One span per token, in order, coloured by its top-1 expert at layer 1 (the default).
    assert span_attribute(shown, "data-position") == [str(t["position"]) for t in tokens]
    assert span_attribute(shown, "data-expert") == top1(tokens, 1)
    assert "background:#" in shown
    assert "<img" not in shown  # no element made of the text...
    assert XSS in visible_text(shown)  # ...the text itself, shown as it was typed
    at_1 = [t["routes"][0] for t in tokens]
    assert metrics(app)["Tokens"] == str(len(tokens))
    assert metrics(app)["Top-1 dropped"] == str(sum(not r["kept"][0] for r in at_1))
    later = sum(not kept for r in at_1 for kept in r["kept"][1:])
    assert metrics(app)["Later choices dropped"] == str(later)
    [grid] = charts(app)  # the token x layer grid: a cell per token and layer
    cells = frame_of(grid, "top1_kept").set_index(["position", "layer"])["expert"]
    assert cells.to_dict() == {
        (t["position"], r["layer"]): r["experts"][0] for t in tokens for r in t["routes"]
    }
    assert app.selectbox(key="explorer_token").value == 0
    details = app.dataframe[0].value
    assert list(zip(details["layer"], details["choice"], details["expert"], strict=True)) == [
        (r["layer"], f"top-{rank + 1}", r["experts"][rank])
        for r in tokens[0]["routes"]
        for rank in range(2)
    ]


def test_token_explorer_switches_layer_and_reads_a_stored_document(open_page, live_api):
    newest = api(live_api, "/v1/runs")["runs"][0]  # the page's default run
    [stored] = api(live_api, f"/v1/runs/{newest['id']}/tokens", limit=1, offset=0)
    tokens = stored["tokens"]
    app = open_page("token_explorer", live_api)
    app.segmented_control(key="explorer_source").set_value("Stored document").run()
    assert_clean(app)
    assert any(f"document {stored['document']['id']} " in c.value for c in app.caption)
    first = next(h.value for h in app.html if "glam-tokens" in h.value)
    assert span_attribute(first, "data-expert") == top1(tokens, 1)
    app.radio(key="explorer_layer").set_value(3).run()
    assert_clean(app)
    second = next(h.value for h in app.html if "glam-tokens" in h.value)
    assert span_attribute(second, "data-expert") == top1(tokens, 3)  # another layer's experts
    assert top1(tokens, 1) != top1(tokens, 3)  # so the switch shows in the colours


def test_expert_profile_shows_domains_tokens_examples_and_partners(open_page, live_api):
    app = open_page("expert_profile", live_api)
    assert_clean(app)
    profile = api(live_api, "/v1/experts/1/0", min_count=3, limit=15)  # the page's defaults
    shown = metrics(app)
    assert shown["Kept assignments"] == f"{profile['load']:,}" and profile["load"] > 0
    assert shown["Share of the layer's load"] == f"{profile['share']:.2%}"
    assert shown["Domains seen"] == str(sum(1 for d in profile["domains"] if d["tokens"]))
    domains = frame_of(titled(app, "domain"), "share")
    assert dict(zip(domains["domain"], domains["share"], strict=True)) == pytest.approx(
        {d["domain"]: d["share"] for d in profile["domains"]}
    )
    examples = app.dataframe[0].value
    assert list(examples["document"]) == [x["document_id"] for x in profile["examples"]]
    assert list(examples["rank"]) == [f"top-{x['rank']}" for x in profile["examples"]]
    app.selectbox(key="profile_expert").set_value(3).run()
    assert_clean(app)
    [partners] = [c for c in charts(app) if "Co-activated" in c.proto.spec]
    frame = frame_of(partners, "ratio")  # the bars, not the rule
    want = api(live_api, "/v1/experts/1/3", min_count=3, limit=15)["partners"]
    assert set(frame["expert"]) == {0, 1, 2}  # expert 3's partners: all but itself
    assert dict(zip(frame["expert"], frame["ratio"], strict=True)) == pytest.approx(
        {p["expert"]: p["ratio"] for p in want}
    )


def _balance_rows(table: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(layer, metric) -> value of the page's balance table."""
    return {
        (row["layer"], metric): row[metric]
        for _, row in table.iterrows()
        for metric in ("CV", "drop top-1")
    }


def test_load_balance_shows_metrics_load_and_drops(open_page, live_api):
    app = open_page("load_balance", live_api)
    assert_clean(app)
    stats = api(live_api, "/v1/stats/balance")
    want = {}
    for b, r in zip(stats["balance"], stats["routing"], strict=True):
        want[(str(b["layer"]), "CV")] = b["cv"]["value"]
        want[(str(b["layer"]), "drop top-1")] = r["drop_rate_by_rank"][0]["value"]
    rows = _balance_rows(app.dataframe[0].value)
    assert list(app.dataframe[0].value["layer"]) == ["1", "3", "uniform baseline"]
    assert {k: v for k, v in rows.items() if k[0] != "uniform baseline"} == pytest.approx(want)
    # heatmap, one share chart per layer, drops by rank, drops by position
    assert len(charts(app)) == 5
    drops = frame_of(titled(app, "by rank"), "drop_rate").set_index(["layer", "rank"])
    assert drops.loc[(3, "choice 2"), "drop_rate"] == pytest.approx(
        stats["routing"][1]["drop_rate_by_rank"][1]["value"]
    )
    app.multiselect(key="balance_layers").set_value([3]).run()
    assert_clean(app)
    assert list(app.dataframe[0].value["layer"]) == ["3", "uniform baseline"]
    rows = _balance_rows(app.dataframe[0].value)
    assert {k: v for k, v in rows.items() if k[0] == "3"} == pytest.approx(
        {k: v for k, v in want.items() if k[0] == "3"}
    )
    assert set(frame_of(titled(app, "each layer's load"), "share")["layer"]) == {3}


def test_specialisation_shows_domains_consecutive_transitions_and_coactivation(open_page, live_api):
    app = open_page("specialisation", live_api)
    assert_clean(app)
    assert len(charts(app)) >= 4
    heatmap = frame_of(titled(app, "tokens of each domain"), "share")
    shares = heatmap.set_index(["domain", "expert"])["share"].to_dict()
    assert shares == pytest.approx(
        {
            (d["domain"], e): share
            for d in api(live_api, "/v1/stats/domains", layer=1)
            for e, share in enumerate(d["shares"])
        }
    )
    app.number_input(key="special_min").set_value(1).run()  # tiny corpus: rare tokens too
    assert_clean(app)
    assert len(charts(app)) == 5
    [vocab] = api(live_api, "/v1/stats/vocab", layer=1, expert=0, by="input", min_count=1, limit=30)
    bars = frame_of(titled(app, "expert 0: share of each input token"), "with_expert")
    assert list(bars["count"]) == [t["count"] for t in vocab["tokens"]]
    assert list(bars["share"]) == pytest.approx([t["share"] for t in vocab["tokens"]])


def test_compare_runs_and_checkpoints(open_page, live_api):
    app = open_page("compare", live_api)
    assert_clean(app)
    assert len(charts(app)) >= 2  # domains side by side, runs side by side
    texts = ["The quick brown fox.", "def f(x): return x"]
    app.text_area(key="compare_texts").set_value("\n".join(texts))
    app = click(app, "Compare checkpoints")
    assert_clean(app)
    want = api(
        live_api,
        "/v1/experiments/saturation",
        {"checkpoint_a": "early", "checkpoint_b": "final", "texts": texts},
    )
    bars = frame_of(titled(app, "early vs final"), "saturation")
    assert dict(zip(bars["layer"], bars["saturation"], strict=True)) == pytest.approx(
        {x["layer"]: x["saturation"] for x in want["layers"]}
    )


def test_experiments_ablation_and_capacity_what_if(open_page, live_api):
    app = open_page("experiments", live_api)
    assert_clean(app)
    app.multiselect(key="ablate_1").set_value([0, 1]).run()  # enables the button
    text = "The quick brown fox jumps."
    app.text_area(key="ablation_texts").set_value(text)
    app = click(app, "Run the ablation")
    assert_clean(app)
    ablation = {"ablate": {"1": [0, 1]}, "texts": [text], "domain": "user"}
    want = api(live_api, "/v1/experiments/ablation", ablation)
    bars = frame_of(titled(app, "Loss change"), "effect")
    assert dict(zip(bars["domain"], bars["delta"], strict=True)) == pytest.approx(
        {d["domain"]: d["delta"] for d in want["domains"]}
    )
    layer_1 = want["rerouting"][0]
    assert (
        layer_1["layer"] == 1 and layer_1["affected_tokens"] > 0
    )  # two of four experts off: every token is affected
    label = "Layer 1: tokens whose top-1 changed"
    assert metrics(app)[label] == f"{layer_1['changed_top1']:.1%}"

    texts = "The quick brown fox jumps over the dog."
    app.text_area(key="capacity_texts").set_value(texts)
    app.multiselect(key="capacity_factors").set_value([0.25, "no-drops"])
    app = click(app, "Compare capacities")
    assert_clean(app)
    outcomes = app.dataframe[-1].value.set_index(["capacity", "layer"])
    assert set(outcomes.index) == {("0.25", 1), ("0.25", 3), ("no drops", 1), ("no drops", 3)}
    for factor, label in ((0.25, "0.25"), ("no-drops", "no drops")):
        body = {"texts": [texts], "store": False, "capacity_factor": factor}
        tokens = api(live_api, "/v1/analyze", body)["documents"][0]["tokens"]
        for index, layer in enumerate((1, 3)):
            kept = [k for t in tokens for k in t["routes"][index]["kept"]]
            dropped = sum(not k for k in kept) / len(kept)
            assert outcomes.loc[(label, layer), "drop_rate"] == pytest.approx(dropped)
    assert (outcomes.loc["no drops", "drop_rate"] == 0).all()
    assert (outcomes.loc["0.25", "drop_rate"] > 0).all()


def test_jobs_lists_jobs_and_shows_a_bad_upload_as_a_message(open_page, live_api):
    app = open_page("jobs", live_api)
    assert_clean(app)
    jobs, runs = app.dataframe[0].value, app.dataframe[1].value
    want = api(live_api, "/v1/jobs", limit=50)
    assert list(jobs["job"]) == [j["job_id"] for j in want]
    assert list(jobs["status"]) == [j["status"] for j in want] and "done" in set(jobs["status"])
    assert list(jobs["documents"]) == [f"{j['done']}/{j['total']}" for j in want]
    stored = api(live_api, "/v1/runs")["runs"]
    assert list(runs["run"]) == [r["id"] for r in stored]
    assert list(runs["tokens"]) == [r["n_tokens"] for r in stored]
    app.segmented_control(key="job_source").set_value("Upload a JSONL").run()
    app.get("file_uploader")[0].upload("bad.jsonl", b"{not json\n", "application/x-ndjson")
    app = click(app, "Start")
    assert not app.exception
    assert any("malformed JSON" in e.value for e in app.error)

"""Every dashboard page, run by Streamlit's AppTest against a live API with a tiny model."""

from __future__ import annotations

import html
import json
import re

import pandas as pd
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


def test_overview_shows_the_model_the_store_load_and_balance(open_page, live_api):
    app = open_page("overview", live_api)
    assert_clean(app)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Model"] == "ui-glam"
    assert metrics["Experts per MoE layer"] == "4"
    assert metrics["MoE layers"] == "1, 3"
    assert int(metrics["Runs"]) == 2  # the built-in corpus job and the seeded texts
    assert len(charts(app)) == 2  # tokens by domain, layer x expert load
    balance = app.dataframe[-1].value
    assert list(balance["layer"]) == ["1", "3", "uniform baseline"]


def test_token_explorer_colours_an_analysed_text_and_escapes_it(open_page, live_api):
    app = open_page("token_explorer", live_api)
    assert_clean(app)
    app.text_area(key="explorer_text").set_value(f"Hello {XSS} world")
    app = click(app, "Analyse")
    assert_clean(app)
    tokens = next(h.value for h in app.html if "glam-tokens" in h.value)
    assert "data-expert=" in tokens and "background:#" in tokens
    assert "<img" not in tokens  # no element made of the text...
    assert XSS in visible_text(tokens)  # ...the text itself, shown as it was typed
    assert len(charts(app)) == 1  # the token x layer grid
    assert app.selectbox(key="explorer_token").value == 0
    details = app.dataframe[0].value
    assert set(details["layer"]) == {1, 3} and set(details["choice"]) == {"top-1", "top-2"}


def test_token_explorer_switches_layer_and_reads_a_stored_document(open_page, live_api):
    app = open_page("token_explorer", live_api)
    app.segmented_control(key="explorer_source").set_value("Stored document").run()
    assert_clean(app)
    first = next(h.value for h in app.html if "glam-tokens" in h.value)
    app.radio(key="explorer_layer").set_value(3).run()
    assert_clean(app)
    second = next(h.value for h in app.html if "glam-tokens" in h.value)
    assert first != second  # coloured by another layer's experts


def test_expert_profile_shows_domains_tokens_examples_and_partners(open_page, live_api):
    app = open_page("expert_profile", live_api)
    assert_clean(app)
    assert {m.label for m in app.metric} >= {"Kept assignments", "Share of the layer's load"}
    assert len(charts(app)) >= 2  # domains against the baseline, partners
    app.selectbox(key="profile_expert").set_value(3).run()
    assert_clean(app)
    [partners] = [c for c in charts(app) if "Co-activated" in c.proto.spec]
    [frame] = [f for f in chart_frames(partners) if "ratio" in f]  # the bars, not the rule
    assert set(frame["expert"]) == {0, 1, 2}  # expert 3's partners: all but itself


def test_load_balance_shows_metrics_load_and_drops(open_page, live_api):
    app = open_page("load_balance", live_api)
    assert_clean(app)
    assert list(app.dataframe[0].value["layer"]) == ["1", "3", "uniform baseline"]
    # heatmap, one share chart per layer, drops by rank, drops by position
    assert len(charts(app)) == 5
    app.multiselect(key="balance_layers").set_value([3]).run()
    assert_clean(app)
    assert list(app.dataframe[0].value["layer"]) == ["3", "uniform baseline"]


def test_specialisation_shows_domains_consecutive_transitions_and_coactivation(open_page, live_api):
    app = open_page("specialisation", live_api)
    assert_clean(app)
    assert len(charts(app)) >= 4
    app.number_input(key="special_min").set_value(1).run()  # tiny corpus: rare tokens too
    assert_clean(app)
    assert len(charts(app)) == 5


def test_compare_runs_and_checkpoints(open_page, live_api):
    app = open_page("compare", live_api)
    assert_clean(app)
    assert len(charts(app)) >= 2  # domains side by side, runs side by side
    app.text_area(key="compare_texts").set_value("The quick brown fox.\ndef f(x): return x")
    app = click(app, "Compare checkpoints")
    assert_clean(app)
    assert any("early vs final" in json.dumps(spec.get("title")) for spec in chart_specs(app))


def test_experiments_ablation_and_capacity_what_if(open_page, live_api):
    app = open_page("experiments", live_api)
    assert_clean(app)
    app.multiselect(key="ablate_1").set_value([0, 1]).run()  # enables the button
    app.text_area(key="ablation_texts").set_value("The quick brown fox jumps.")
    app = click(app, "Run the ablation")
    assert_clean(app)
    assert any("Loss change" in json.dumps(spec.get("title")) for spec in chart_specs(app))

    app.text_area(key="capacity_texts").set_value("The quick brown fox jumps over the dog.")
    app.multiselect(key="capacity_factors").set_value([0.25, 64.0])
    app = click(app, "Compare capacities")
    assert_clean(app)
    outcomes = app.dataframe[-1].value
    assert set(outcomes["capacity"]) == {"0.25", "64"}
    roomy, tight = outcomes[outcomes["capacity"] == "64"], outcomes[outcomes["capacity"] == "0.25"]
    assert (roomy["drop_rate_top2"] == 0).all() and (tight["drop_rate_top2"] > 0).all()


def test_jobs_lists_jobs_and_shows_a_bad_upload_as_a_message(open_page, live_api):
    app = open_page("jobs", live_api)
    assert_clean(app)
    jobs = app.dataframe[0].value
    assert "done" in set(jobs["status"])
    app.segmented_control(key="job_source").set_value("Upload a JSONL").run()
    app.get("file_uploader")[0].upload("bad.jsonl", b"{not json\n", "application/x-ndjson")
    app = click(app, "Start")
    assert not app.exception
    assert any("malformed JSON" in e.value for e in app.error)

"""Tables, the capacity what-if summary and the expert palette."""

from __future__ import annotations

import pytest

from tests.ui import samples
from ui import schemas as s
from ui import tables
from ui.palette import expert_colours, text_colour
from ui.whatif import capacity_label, capacity_outcomes


def test_balance_table_has_a_row_per_layer_and_the_uniform_baseline_last():
    table = tables.balance_table(samples.balance_stats())
    assert list(table["layer"]) == ["1", "3", tables.BASELINE_ROW]
    baseline = table.iloc[-1]
    assert baseline["CV"] == 0.0 and baseline["load entropy"] == 1.0
    assert baseline["router entropy"] == pytest.approx(1.386)
    assert table.iloc[1]["drop top-1"] == pytest.approx(0.2)
    assert table.iloc[1]["drop (all choices)"] == pytest.approx(0.4)


def test_balance_table_of_an_empty_store_is_empty():
    assert tables.balance_table(s.BalanceStats(balance=[], routing=[])).empty


def test_token_details_list_both_choices_per_layer():
    details = tables.token_details(samples.tokens()[1])
    assert len(details) == 4
    first = details.iloc[0]
    assert (first["layer"], first["choice"], first["expert"], first["kept"]) == (
        1,
        "top-1",
        2,
        False,
    )


def test_tokens_table_marks_dropped_top1_choices():
    table = tables.tokens_table(samples.tokens())
    assert list(table["layer 1"]) == ["e0/e1", "e2/e0 (dropped)", "e3/e1"]
    assert table["token"].iloc[0] == " Hello"


def test_examples_table_joins_the_context_readably():
    example = s.ExpertExample(
        document_id=1, domain="code", position=2, rank=1, gate=0.5,
        before=["\u2581def", "\u2581f"], piece="(", after=["x", ")"],
    )  # fmt: skip
    row = tables.examples_table([example]).iloc[0]
    assert (row["before"], row["token"], row["after"]) == (" def f", "(", "x)")


def _result(kept: list[tuple[bool, bool]], nlls: list[float | None]) -> s.AnalyzeResult:
    toks = [
        samples.token(i, "a", [samples.route(1, 0, 1, k1, k2)], nll=nll)
        for i, ((k1, k2), nll) in enumerate(zip(kept, nlls, strict=True))
    ]
    document = s.Document(
        index=0, domain="u", n_tokens=len(toks), mean_nll=None, aux_loss=[1.0], z_loss=[0.0],
        tokens=toks,
    )  # fmt: skip
    return s.AnalyzeResult(
        run_id=None, model="m", checkpoint="final", moe_layers=[1], num_experts=4, top_k=2,
        documents=[document],
    )  # fmt: skip


def test_capacity_outcomes_count_drops_per_rank_and_average_scored_loss():
    results = {
        capacity_label(0.5): _result([(True, False), (False, False)], [1.0, None]),
        capacity_label(None): _result([(True, True), (True, True)], [2.0, 4.0]),
    }
    tight, default = capacity_outcomes(results)
    assert (tight.capacity, tight.drop_rate_top1, tight.drop_rate) == ("0.5", 0.5, 0.75)
    assert tight.mean_nll == 1.0  # the last token has no next token: not scored
    assert (default.capacity, default.drop_rate, default.mean_nll) == ("model default", 0, 3)


def test_every_expert_gets_a_distinct_colour_even_beyond_twenty():
    for n in (1, 8, 20, 64, 256):
        colours = expert_colours(n)
        assert len(colours) == n and len(set(colours)) == n
        assert all(len(c) == 7 and c.startswith("#") for c in colours)


def test_text_colour_contrasts_with_its_background():
    assert text_colour("#ffffff") == "#000000"
    assert text_colour("#000000") == "#ffffff"
    assert text_colour("#1f4e79") == "#ffffff"  # dark blue: white reads better
    assert text_colour("#4e79a7") == "#000000"  # mid blue: black contrasts more (WCAG 5.0 vs 4.2)
    assert text_colour("#edc948") == "#000000"  # yellow: black reads better

"""The shipped model: glam-64e, trained here, compared with its dense twin, its routing over
training recorded; its files within budget and its card reproducible."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from glam import checkpoint, probes
from glam.corpus import read_corpus
from glam.evaluate import evaluate
from glam.model_card import CORPUS_FILE, spot_check_records

SHIPPED = checkpoint.shipped_dir().parent
CHECKPOINTS = SHIPPED.parent


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads((SHIPPED / "model_card.json").read_text())


def test_the_default_is_the_articles_shape(card):
    cfg = card["config"]
    assert SHIPPED.name == card["name"] == "glam-64e"
    assert cfg["num_experts"] == 64 and card["params"]["total"] > 25_000_000
    assert [i for i in range(cfg["num_layers"]) if i % 2 == cfg["first_moe_layer"]] == [1, 3, 5]


def test_shipped_files_are_complete_and_within_budget(card):
    for name in ("final", "early"):
        assert (SHIPPED / name / "params").is_dir() and (SHIPPED / name / "config.json").exists()
        assert checkpoint.load(SHIPPED / name).meta["params_dtype"] == "bfloat16"
    for name in (CORPUS_FILE, "MODEL_CARD.md", probes.TRACES_FILE):
        assert (SHIPPED / name).is_file(), name
    size = sum(p.stat().st_size for p in CHECKPOINTS.rglob("*") if p.is_file())
    assert size < 150 * 1024 * 1024
    assert 0 < card["checkpoints"]["early"]["step"] <= 0.1 * card["training"]["steps"]


def test_trained_on_enough_tokens_with_its_equal_token_checkpoint_measured(card):
    assert card["training"]["tokens_seen"] >= 15_000_000
    equal = card["equal_tokens"]
    assert equal["tokens_seen"] >= card["training"]["tokens_seen"] / 2
    assert set(equal["moe"]["loss_by_domain"]) == set(card["validation"]["loss_by_domain"])
    # Trained further, the final model is better than its checkpoint at equal tokens.
    assert card["validation"]["overall_loss"] < equal["moe"]["overall_loss"]
    assert card["validation"]["overall_loss"] < card["uniform_loss"] - 5.0


def test_the_moe_beats_its_dense_equivalent_at_equal_tokens(card):
    # GLaM's headline claim, on this corpus: at the same training tokens and activated
    # parameters, the MoE's validation loss is lower, overall and on most domains.
    equal, dense = card["equal_tokens"], card["dense_equivalent"]
    assert dense["tokens_seen"] == equal["tokens_seen"] >= card["training"]["tokens_seen"] / 2
    moe_params, dense_params = card["params"], dense["params"]
    assert abs(dense_params["activated"] - moe_params["activated"]) < 0.01 * moe_params["activated"]
    moe, dense_loss = equal["moe"], equal["dense"]
    assert moe["validation_tokens"] == dense_loss["validation_tokens"]
    ahead = dense_loss["overall_loss"] - moe["overall_loss"]
    assert ahead >= 0.05 and equal["moe_ahead_nats"] == pytest.approx(ahead, abs=1e-4)
    by_domain = [
        dense_loss["loss_by_domain"][d] > loss for d, loss in moe["loss_by_domain"].items()
    ]
    assert sum(by_domain) > len(by_domain) / 2
    assert sorted(equal["domains_moe_ahead"]) == sorted(
        d for d, loss in moe["loss_by_domain"].items() if loss < dense_loss["loss_by_domain"][d]
    )


def test_routing_over_training_has_ten_log_spaced_checkpoints(card):
    traces = probes.load_traces(SHIPPED / probes.TRACES_FILE)
    steps = traces["steps"].tolist()
    assert len(steps) >= 10 and steps == sorted(steps)
    assert steps[-1] == card["training"]["steps"]
    assert card["checkpoints"]["early"]["step"] in steps
    assert min(b / a for a, b in itertools.pairwise(steps)) >= 1.3  # log-spaced
    domains = traces["domains"].tolist()
    per_domain = [int(traces["mask"][traces["row_domain"] == i].sum()) for i in range(len(domains))]
    assert len(domains) == 22 and min(per_domain) >= 1000
    assert traces["expert"].shape[:2] == (len(steps), 3)


def test_the_spot_check_reproduces_with_the_shipped_weights(card):
    loaded = checkpoint.load()
    assert checkpoint.params_sha256(loaded.path) == card["checkpoints"]["final"]["sha256"]
    records = spot_check_records(read_corpus(SHIPPED / CORPUS_FILE))
    result = evaluate(loaded.model, loaded.tokenizer, records)
    want = card["spot_check"]
    assert result.overall.tokens == want["validation_tokens"]
    assert result.overall.loss == pytest.approx(want["overall_loss"], abs=2e-3)
    for row in result.domains:
        assert row.loss == pytest.approx(want["loss_by_domain"][row.domain], abs=2e-3)
    assert np.isclose(result.drop_rate, want["drop_rate"], atol=2e-3)

"""The shipped model: present, small, trained, and its card reproducible by `glam eval`."""

from __future__ import annotations

import json
import math

import pytest

from glam import checkpoint
from glam.corpus import read_corpus
from glam.evaluate import evaluate
from glam.model_card import CORPUS_FILE

SHIPPED = checkpoint.shipped_dir().parent


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads((SHIPPED / "model_card.json").read_text())


def test_shipped_files_are_complete_and_small(card):
    for name in ("final", "early"):
        assert (SHIPPED / name / "params").is_dir() and (SHIPPED / name / "config.json").exists()
    assert (SHIPPED / CORPUS_FILE).exists() and (SHIPPED / "MODEL_CARD.md").exists()
    size = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file())
    assert size < 45 * 1024 * 1024
    assert card["config"]["num_experts"] >= 8
    steps = card["training"]["steps"]
    assert 0 < card["checkpoints"]["early"]["step"] <= 0.1 * steps


def test_validation_loss_is_far_below_uniform_and_sparse_is_compared_to_dense(card):
    assert card["validation"]["overall_loss"] < card["uniform_loss"] - 3.0
    dense = card["dense_equivalent"]
    assert dense["steps"] == card["training"]["steps"]
    assert dense["tokens_seen"] == card["training"]["tokens_seen"]
    assert dense["params"]["activated"] <= card["params"]["activated"]
    assert set(dense["validation"]["loss_by_domain"]) == set(card["validation"]["loss_by_domain"])


def test_glam_eval_reproduces_the_card(card):
    loaded = checkpoint.load()
    assert checkpoint.params_sha256(loaded.path) == card["checkpoints"]["final"]["sha256"]
    result = evaluate(loaded.model, loaded.tokenizer, read_corpus(SHIPPED / CORPUS_FILE))
    assert result.overall.tokens == card["validation"]["validation_tokens"]
    assert result.overall.loss == pytest.approx(card["validation"]["overall_loss"], abs=2e-3)
    for row in result.domains:
        want = card["validation"]["loss_by_domain"][row.domain]
        assert row.loss == pytest.approx(want, abs=2e-3), row.domain
    assert math.isclose(result.drop_rate, card["validation"]["drop_rate"], abs_tol=2e-3)

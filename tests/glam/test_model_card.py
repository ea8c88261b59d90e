"""`glam ship`: bfloat16 checkpoints, the MoE-vs-dense table at equal tokens, the card."""

from __future__ import annotations

import dataclasses
import json

import pytest

from glam import checkpoint, probes
from glam.cli import main
from glam.corpus import read_corpus
from glam.evaluate import evaluate
from glam.model_card import ship
from glam.train import TrainConfig, train

RECIPE = TrainConfig(steps=6, batch_size=4, seq_len=32, warmup_steps=2, peak_lr=1e-2)


@pytest.fixture(scope="module")
def runs(small_config, corpus_path, tokenizer, tmp_path_factory):
    records = read_corpus(corpus_path)
    moe, dense = tmp_path_factory.mktemp("moe"), tmp_path_factory.mktemp("dense")
    train(small_config, records, tokenizer, moe, dataclasses.replace(RECIPE, save_at=(1, 3)))
    train(small_config.dense_equivalent(), records, tokenizer, dense,
          dataclasses.replace(RECIPE, steps=3))  # fmt: skip
    return moe, dense


@pytest.fixture(scope="module")
def shipped(runs, corpus_path, tokenizer, tmp_path_factory):
    moe, dense = runs
    out = tmp_path_factory.mktemp("shipped")
    probe = probes.probe_set(read_corpus(corpus_path), tokenizer, tokens_per_domain=32,
                             seq_len=16)  # fmt: skip
    probes.record_run(moe, probe, out / probes.TRACES_FILE)
    card = ship(run=moe, dense_run=dense, early="step-000001", corpus=corpus_path, out=out)
    return card, out


def test_checkpoints_ship_in_bfloat16_and_the_card_is_their_evaluation(shipped, corpus_path):
    card, out = shipped
    final = checkpoint.load(out / "final")
    assert final.meta["params_dtype"] == "bfloat16" and card["params_dtype"] == "bfloat16"
    assert card["checkpoints"]["final"]["sha256"] == checkpoint.params_sha256(out / "final")
    assert card["checkpoints"]["early"]["step"] == 1
    builtin = read_corpus(out / "corpus.jsonl.gz")
    validation = read_corpus(corpus_path, "validation")
    assert {r.split for r in builtin} == {"validation"}
    assert {r.domain for r in builtin} == {r.domain for r in validation}
    assert [r.text for r in builtin] == [r.text[:20_000] for r in validation]  # small docs
    result = evaluate(final.model, final.tokenizer, validation)
    assert card["validation"]["overall_loss"] == pytest.approx(result.overall.loss, abs=1e-4)
    assert card["training"]["tokens_seen"] == 6 * 4 * 32
    assert card["training"]["achieved_flop_per_s"] > 0


def test_the_moe_is_compared_with_the_dense_run_at_its_last_step(shipped, runs, corpus_path):
    card, out = shipped
    moe, dense = runs
    equal = card["equal_tokens"]
    assert equal["step"] == 3 and equal["tokens_seen"] == card["dense_equivalent"]["tokens_seen"]
    records = read_corpus(corpus_path)
    for label, directory in (("moe", moe / "step-000003"), ("dense", dense / "final")):
        loaded = checkpoint.load(directory)
        want = evaluate(loaded.model, loaded.tokenizer, records)
        assert equal[label]["overall_loss"] == pytest.approx(want.overall.loss, abs=1e-4)
    ahead = [d for d, loss in equal["moe"]["loss_by_domain"].items()
             if loss < equal["dense"]["loss_by_domain"][d]]  # fmt: skip
    assert equal["domains_moe_ahead"] == sorted(ahead)
    assert equal["moe_ahead_nats"] == pytest.approx(
        equal["dense"]["overall_loss"] - equal["moe"]["overall_loss"], abs=1e-4
    )
    markdown = (out / "MODEL_CARD.md").read_text()
    assert "MoE vs its dense-equivalent at equal tokens (384)" in markdown
    assert "| **overall** |" in markdown and "## Routing over training" in markdown
    assert card["training_routing"]["steps"] == [1, 3, 6]
    assert json.loads((out / "model_card.json").read_text()) == card


def test_a_dense_run_trained_after_shipping_completes_the_card(
    shipped, runs, corpus_path, tmp_path, capsys
):
    # Shipped first with only the MoE side of the comparison (--equal-step); the dense run
    # comes later, when the MoE's run directory may be gone: its card is all it needs.
    moe, dense = runs
    out = tmp_path / "later"
    first = ship(run=moe, dense_run=None, early="step-000001", corpus=corpus_path, out=out,
                 equal_step=3)  # fmt: skip
    assert first["equal_tokens"]["dense"] is None
    assert "has not been trained yet" in (out / "MODEL_CARD.md").read_text()
    code = main(["ship", "--add-dense-run", str(dense), "--corpus", str(corpus_path),
                 "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    card = json.loads((out / "model_card.json").read_text())
    once = shipped[0]  # the same comparison made in one go
    for key in ("moe", "dense", "moe_ahead_nats", "domains_moe_ahead"):
        assert card["equal_tokens"][key] == once["equal_tokens"][key], key
    assert card["dense_equivalent"]["steps"] == 3
    assert "| **overall** |" in (out / "MODEL_CARD.md").read_text()
    code = main(["ship", "--add-dense-run", str(moe), "--corpus", str(corpus_path),
                 "--out", str(out)])  # fmt: skip
    assert code == 2 and "ended at step 6" in capsys.readouterr().err


def test_a_dense_run_without_a_matching_moe_checkpoint_is_a_cli_error(
    runs, corpus_path, tmp_path, capsys
):
    moe, _ = runs
    code = main(["ship", "--run", str(moe), "--dense-run", str(moe), "--early", "step-000001",
                 "--corpus", str(corpus_path), "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "no MoE checkpoint at the dense run's last step" in err


def test_the_builtin_sample_takes_every_domain_up_to_its_budget():
    from glam.corpus import Record
    from glam.model_card import builtin_sample

    records = [Record(text="a" * 30, domain="x", source="t", split="validation"),
               Record(text="b" * 30, domain="x", source="t", split="validation"),
               Record(text="c" * 5, domain="y", source="t", split="validation")]  # fmt: skip
    sample = builtin_sample(records, chars_per_domain=40)
    got = [(r.domain, r.text) for r in sample]
    assert got == [("x", "a" * 30), ("x", "b" * 10), ("y", "c" * 5)]


def test_without_a_dense_run_the_equal_token_checkpoint_is_still_measured(runs, corpus_path,
                                                                          tmp_path):  # fmt: skip
    moe, _ = runs
    card = ship(run=moe, dense_run=None, early="step-000001", corpus=corpus_path,
                out=tmp_path / "out", equal_step=3)  # fmt: skip
    assert card["equal_tokens"]["step"] == 3 and card["equal_tokens"]["dense"] is None
    assert "dense_equivalent" not in card
    assert "has not been trained yet" in (tmp_path / "out" / "MODEL_CARD.md").read_text()

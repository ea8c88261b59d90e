"""Characters per token and byte-fallback share are counted right; sampling is by domain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glam.cli import main
from glam.corpus import TRAIN, Record
from glam.tokenizer import Tokenizer, train_tokenizer
from glam.tokenizer_report import fallback_ids, measure, sample_by_domain

_JA = "日本語の文章です。機械学習のモデルを訓練します。\n" * 50
_EN = "The quick brown fox jumps over the lazy dog.\n" * 50


@pytest.fixture(scope="module")
def latin_only(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    records = [Record(_EN + f"line {i}\n", "prose", f"s{i}", TRAIN) for i in range(20)]
    return Tokenizer.load(train_tokenizer(records, tmp_path_factory.mktemp("tok"), vocab_size=300))


@pytest.fixture(scope="module")
def with_japanese(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    records = [Record(_EN, "prose", "en", TRAIN), Record(_JA, "ja", "ja", TRAIN)]
    return Tokenizer.load(train_tokenizer(records, tmp_path_factory.mktemp("tok"), vocab_size=400))


def test_byte_share_is_the_share_of_byte_pieces_that_spell_characters(latin_only) -> None:
    text = "日本"  # 2 characters outside the vocabulary: 6 UTF-8 bytes
    fits = measure(latin_only, [Record(text, "ja", "s", TRAIN, "ja")], key="lang")
    ids = latin_only.encode(text)
    assert fits["ja"].tokens == len(ids) == 6 and fits["ja"].byte_tokens == 6
    assert fits["ja"].byte_share == 1.0 and fits["ja"].chars_per_token == pytest.approx(2 / 6)
    # A newline is a byte piece by design: not a fallback.
    newline = latin_only.encode("\n")
    assert newline and not set(newline) & fallback_ids(latin_only)


def test_a_vocabulary_trained_on_the_script_needs_no_fallback(with_japanese, latin_only) -> None:
    record = Record("機械学習のモデルを訓練します。", "ja", "s", TRAIN, "ja")
    assert measure(with_japanese, [record])["ja"].byte_share == 0.0
    assert measure(latin_only, [record])["ja"].byte_share == 1.0
    fits = measure(with_japanese, [record, Record("The lazy dog.", "en", "t", TRAIN, "en")])
    assert list(fits) == ["en", "ja"]
    assert (
        fits["en"].tokens == len(with_japanese.encode("The lazy dog.")) and fits["en"].chars == 13
    )


def test_sample_takes_at_most_the_budget_of_each_domain_whatever_its_size() -> None:
    records = [Record("x" * 100, "big", f"b{i}", TRAIN) for i in range(100)]
    records += [Record("y" * 100, "small", f"s{i}", TRAIN) for i in range(3)]
    sample = sample_by_domain(records, 1_000)
    chars = {d: sum(len(r.text) for r in sample if r.domain == d) for d in ("big", "small")}
    assert chars == {"big": 1_000, "small": 300}
    assert sample_by_domain(records, 1_000) == sample  # the same records every time


def test_measure_command_prints_and_records_the_figures_in_the_manifest(
    tmp_path: Path, with_japanese: Tokenizer, capsys
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"text": _JA, "domain": "help", "lang": "ja", "split": "validation"},
            {"text": _EN, "domain": "help", "lang": "en", "split": "validation"}]  # fmt: skip
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"totals": {"docs": 2}}))
    model = tmp_path / "tok.model"
    model.write_bytes(with_japanese.to_bytes())
    code = main(["tokenizer", "measure", "--tokenizer", str(model), "--corpus", str(corpus),
                 "--manifest", str(manifest), "--json"])  # fmt: skip
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["by_lang"]) == {"en", "ja"} and set(printed["by_domain"]) == {"help"}
    assert printed["by_domain"]["help"]["chars"] == len(_JA) + len(_EN)
    recorded = json.loads(manifest.read_text())
    assert recorded["totals"] == {"docs": 2}  # what was there stays
    # A file of one split is recorded as that split, not as the whole corpus.
    assert printed["split"] == "validation"
    assert recorded["tokenizer"] == {f"vocab_{with_japanese.vocab_size}_validation": printed}

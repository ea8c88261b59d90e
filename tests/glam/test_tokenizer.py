"""The tokenizer is lossless on any text, deterministic to train, and readable by piece."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glam.corpus import TRAIN, VALIDATION, Record, build_corpus, read_corpus
from glam.tokenizer import MODEL_FILENAME, Tokenizer, train_tokenizer

VOCAB_SIZE = 4000  # enough for the ~3,200 characters of the small corpus plus pieces


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    build_corpus(path, max_chars_per_domain=30_000)
    return path


@pytest.fixture(scope="module")
def model_path(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(corpus, tmp_path_factory.mktemp("tok"), vocab_size=VOCAB_SIZE)


@pytest.fixture(scope="module")
def tok(model_path: Path) -> Tokenizer:
    return Tokenizer.load(model_path)


ROUND_TRIP_TEXTS = [
    "こんにちは、調子はどうですか？ 今日は良い天気ですね。",
    "学習率を徐々に下げる。ｶﾀｶﾅ and full-width ＡＢＣ１２３",
    "emoji 🎉🚀 family 👩‍👩‍👧 flag 🇯🇵 skin 👍🏽 keycap 1️⃣",
    "def f(x):\n    if x:\n\treturn  x  # two spaces\n\n\n    return None\n",
    "class A:\n        deep = {'k': [1, 2]}\r\n\n",
    "  leading and trailing spaces  ",
    "\n\nstarts with newlines",
    "Привет, как дела? Ελληνικά עברית العربية हिन्दी",
    "control \x00\x01\x7f and combining e\u0301 and NBSP\u00a0here",
]


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_decode_of_encode_is_the_exact_text(tok: Tokenizer, text: str) -> None:
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_unicode_text_round_trips(tok: Tokenizer, text: str) -> None:
    assert tok.decode(tok.encode(text)) == text


def test_japanese_is_encoded_by_learned_pieces_not_bytes(tok: Tokenizer) -> None:
    text = "こんにちは、お元気ですか？"
    ids = tok.encode(text)
    assert len(ids) < len(text)  # multi-character pieces, not ~3 byte pieces per character
    assert not any(p.startswith("<0x") for p in tok.pieces(ids))


def test_code_indentation_is_one_piece_and_newline_is_a_byte_piece(tok: Tokenizer) -> None:
    pieces = tok.pieces(tok.encode("x = 1\n        return x"))
    assert "<0x0A>" in pieces
    assert any(len(p) >= 4 and set(p) == {"▁"} for p in pieces)  # not eight "▁" pieces


def test_emoji_outside_the_vocabulary_falls_back_to_its_utf8_bytes(tok: Tokenizer) -> None:
    emoji = "\U0001fab7"  # lotus, absent from the corpus
    assert tok.pieces(tok.encode(emoji)) == [f"<0x{b:02X}>" for b in emoji.encode()]


def test_special_ids_are_distinct_and_decode_to_nothing(tok: Tokenizer) -> None:
    assert tok.pad_id == 0
    assert len({tok.pad_id, tok.eos_id, tok.bos_id, tok.unk_id}) == 4
    ids = tok.encode("hello world")
    assert tok.decode([tok.bos_id, *ids, tok.eos_id, tok.pad_id]) == "hello world"


def test_vocab_lists_every_piece_by_id(tok: Tokenizer) -> None:
    vocab = tok.vocab()
    assert len(vocab) == tok.vocab_size == VOCAB_SIZE
    assert len(set(vocab)) == len(vocab)
    ids = tok.encode("def main():\n    print('こんにちは')")
    assert tok.pieces(ids) == [vocab[i] for i in ids]
    assert "".join(tok.pieces(ids)).replace("▁", " ").replace("<0x0A>", "\n") == (
        "def main():\n    print('こんにちは')"
    )


def test_load_accepts_the_directory_and_bytes_round_trip(model_path: Path, tok: Tokenizer) -> None:
    assert model_path.name == MODEL_FILENAME
    from_dir = Tokenizer.load(model_path.parent)
    from_bytes = Tokenizer.from_bytes(tok.to_bytes())
    text = "print('hello')  # 挨拶"
    assert from_dir.encode(text) == from_bytes.encode(text) == tok.encode(text)
    with pytest.raises(FileNotFoundError, match="tokenizer model not found"):
        Tokenizer.load(model_path.parent / "missing")


def test_training_twice_gives_the_same_model_bytes(
    corpus: Path, model_path: Path, tmp_path: Path
) -> None:
    again = train_tokenizer(corpus, tmp_path, vocab_size=VOCAB_SIZE)
    assert again.read_bytes() == model_path.read_bytes()


def test_only_the_requested_split_is_learned(corpus: Path, tmp_path: Path) -> None:
    records = [r for r in read_corpus(corpus) if r.domain == "chat-en"]
    held_out = Record("a zqxjvw\n" * 1000, "chat-en", "test", VALIDATION)
    train_only = Tokenizer.load(
        train_tokenizer([*records, held_out], tmp_path / "a", vocab_size=600)
    )
    everything = Tokenizer.load(
        train_tokenizer([*records, held_out], tmp_path / "b", vocab_size=600, split=None)
    )
    assert not any("zqxjvw" in piece for piece in train_only.vocab())
    assert any("zqxjvw" in piece for piece in everything.vocab())


def test_training_errors_are_one_line_value_errors(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no records to train"):
        train_tokenizer([Record("text", "d", "s", VALIDATION)], tmp_path, split=TRAIN)
    with pytest.raises(ValueError, match=r"^tokenizer training failed: Vocabulary size") as info:
        train_tokenizer(corpus, tmp_path, vocab_size=300)
    assert "\n" not in str(info.value)

"""Byte-level BPE pieces (GPT-2's stand-in characters: Ġ for a space, æĹ¥ for 日) come back
as text, with glam's conventions: ▁ for a space, <0xHH> for a byte that is no character."""

from __future__ import annotations

import re

import tokenizers

from glam.families.tokenizer import HFTokenizer, readable_piece

TEXTS = ["日本語の文章です。", "the router sends tokens", "十億円 and 日本\nnew line"] * 20


def _byte_level_bpe() -> tokenizers.Tokenizer:
    trainer = tokenizers.ByteLevelBPETokenizer()
    trainer.train_from_iterator(TEXTS, vocab_size=300, min_frequency=1, show_progress=False)
    return tokenizers.Tokenizer.from_str(trainer.to_str())


def _bytes_of(piece: str) -> bytes:
    out = bytearray()
    for part in re.split(r"(<0x[0-9A-F]{2}>)", piece.replace("\u2581", " ")):
        out += (
            bytes([int(part[3:5], 16)]) if re.fullmatch(r"<0x[0-9A-F]{2}>", part) else part.encode()
        )
    return bytes(out)


def test_byte_level_pieces_spell_the_text_they_encode():
    tokenizer = HFTokenizer(_byte_level_bpe())
    for text in TEXTS[:3]:
        pieces = tokenizer.pieces(tokenizer.encode(text))
        assert b"".join(_bytes_of(p) for p in pieces) == text.encode()
        assert not any(c in "".join(pieces) for c in "ĠĊæ")  # no stand-in characters left
    vocab = tokenizer.vocab()
    assert "日" in vocab or any("日" in p for p in vocab)  # whole characters read as such


def test_readable_piece_marks_spaces_controls_and_partial_characters():
    assert readable_piece(b" the") == "\u2581the"
    assert readable_piece(b"\n") == "<0x0A>"
    assert readable_piece("日".encode()) == "日"
    assert readable_piece(" 日".encode()[:3]) == "\u2581<0xE6><0x97>"  # cut inside 日

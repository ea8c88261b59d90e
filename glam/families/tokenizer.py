"""A Hugging Face `tokenizer.json` behind the interface of glam.tokenizer.Tokenizer.

Pieces are shown the way glam's SentencePiece pieces are: ▁ for a space and `<0xHH>` for a
byte that is no character on its own. Byte-level BPE vocabularies (GPT-2's, used by OLMoE,
Qwen and DeepSeek) store each byte as a printable stand-in character (`Ġ` for a space,
`æĹ¥` for 日); `pieces` and `vocab` map them back, so the dashboard shows 日, not æĹ¥.

Special ids come from config.json (`bos_token_id`, `eos_token_id`, `pad_token_id`; a list
of eos ids gives its first), else from tokenizer_config.json's token strings. `encode`
adds no special tokens, as glam's does not; `decode` drops them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import tokenizers

FILENAME = "tokenizer.json"


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-to-character table, inverted: the printable Latin-1 bytes stand for
    themselves, the other 68 are shifted to 256 + n in byte order."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    shifted = [b for b in range(256) if b not in printable]
    table = {chr(b): b for b in printable}
    table.update({chr(256 + n): b for n, b in enumerate(shifted)})
    return table


BYTE_LEVEL = _byte_level_alphabet()
SPACE_MARK = "\u2581"


def readable_piece(raw: bytes) -> str:
    """Bytes as a glam-style piece: the text when they are whole UTF-8 (spaces as ▁,
    newlines and other control bytes as `<0xHH>`), else every non-ASCII byte as `<0xHH>`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        return "".join(
            SPACE_MARK if c == " " else (f"<0x{ord(c):02X}>" if ord(c) < 0x20 else c) for c in text
        )
    return "".join(
        SPACE_MARK if b == 0x20 else (chr(b) if 0x20 < b < 0x7F else f"<0x{b:02X}>") for b in raw
    )


def _uses_byte_level(tokenizer: tokenizers.Tokenizer) -> bool:
    decoder = json.loads(tokenizer.to_str()).get("decoder") or {}
    parts = decoder.get("decoders", [decoder]) if decoder.get("type") == "Sequence" else [decoder]
    return any(part.get("type") == "ByteLevel" for part in parts)


def _first(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else int(value)


class HFTokenizer:
    """`tokenizers.Tokenizer` with glam's ids and views. `vocab_size` covers every id the
    model can emit (its embedding may be larger than the tokenizer's vocabulary); ids with
    no token have the piece ""."""

    def __init__(
        self,
        tokenizer: tokenizers.Tokenizer,
        *,
        model_vocab_size: int = 0,
        bos_id: int | None = None,
        eos_id: int | None = None,
        pad_id: int | None = None,
        unk_id: int | None = None,
    ) -> None:
        self._tok = tokenizer
        size = max(tokenizer.get_vocab_size(with_added_tokens=True), model_vocab_size)
        self._vocab = [""] * size
        byte_level = _uses_byte_level(tokenizer)
        added = set(tokenizer.get_added_tokens_decoder())  # special tokens: shown as they are
        for piece, index in tokenizer.get_vocab(with_added_tokens=True).items():
            if not 0 <= index < size:
                continue
            if byte_level and index not in added and all(c in BYTE_LEVEL for c in piece):
                piece = readable_piece(bytes(BYTE_LEVEL[c] for c in piece))
            self._vocab[index] = piece
        self._bos, self._eos, self._unk = bos_id, eos_id, unk_id
        self._pad = pad_id if pad_id is not None else (eos_id if eos_id is not None else 0)

    @classmethod
    def load(cls, directory: Path | str, config: dict[str, Any] | None = None) -> HFTokenizer:
        """`directory/tokenizer.json`, with special ids from `config` (config.json)."""
        directory = Path(directory)
        path = directory / FILENAME
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer not found: {path}")
        tok = tokenizers.Tokenizer.from_file(str(path))
        config = config or {}
        extra_file = directory / "tokenizer_config.json"
        extra = json.loads(extra_file.read_text()) if extra_file.is_file() else {}

        def special(name: str) -> int | None:
            value = _first(config.get(f"{name}_token_id"))
            if value is not None:
                return value
            token = extra.get(f"{name}_token")
            if isinstance(token, dict):  # {"content": "<s>", ...} in older files
                token = token.get("content")
            return tok.token_to_id(token) if isinstance(token, str) else None

        return cls(
            tok,
            model_vocab_size=int(config.get("vocab_size", 0)),
            bos_id=special("bos"),
            eos_id=special("eos"),
            pad_id=special("pad"),
            unk_id=special("unk"),
        )

    def to_bytes(self) -> bytes:
        """The tokenizer.json text."""
        return self._tok.to_str().encode()

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    @property
    def pad_id(self) -> int:
        return self._pad

    @property
    def eos_id(self) -> int | None:
        return self._eos

    @property
    def bos_id(self) -> int | None:
        return self._bos

    @property
    def unk_id(self) -> int | None:
        return self._unk

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str], num_threads: int = -1) -> list[list[int]]:
        """`encode` of each text (the Rust library picks its own threads)."""
        del num_threads
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=True)

    def pieces(self, ids: Iterable[int]) -> list[str]:
        return [self._vocab[int(i)] for i in ids]

    def vocab(self) -> list[str]:
        return list(self._vocab)

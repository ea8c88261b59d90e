"""SentencePiece tokenizer: trained on the corpus, lossless on any UTF-8 text.

Every string round-trips exactly: no normalization, whitespace kept as it is (code
indentation included), and characters outside the vocabulary fall back to their UTF-8
bytes (pieces `<0x00>`..`<0xFF>`). A newline is the byte piece `<0x0A>`; a space is the
`▁` marker at the start of a piece, and runs of spaces have pieces of their own.

Ids: 0 pad, 1 end of sequence, 2 beginning of sequence, 3 unknown (unused in practice:
byte fallback covers everything).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import sentencepiece as spm

from glam.corpus import TRAIN, Record, read_corpus

MODEL_FILENAME = "tokenizer.model"
PAD_ID, EOS_ID, BOS_ID, UNK_ID = 0, 1, 2, 3
# The embedding and the output softmax are much of a tiny model's parameters and compute per
# token, so the vocabulary is small; yet 99.95% coverage of the corpus's eight scripts takes
# ~2,500 single characters, and 8192 leaves ~5,400 multi-character pieces (4096 would leave
# ~1,300 and make 29% more tokens of the built corpus).
DEFAULT_VOCAB_SIZE = 8192
DEFAULT_CHARACTER_COVERAGE = 0.9995

# Fixed trainer options; see the module docstring for why each makes encoding lossless.
_TRAINER_OPTIONS: dict[str, object] = {
    "model_type": "unigram",
    "byte_fallback": True,
    "normalization_rule_name": "identity",
    "remove_extra_whitespaces": False,
    # Without a dummy prefix, encode(a + b) == encode(a) + encode(b) at a line break, and a
    # text's first word is not silently given a leading space.
    "add_dummy_prefix": False,
    "allow_whitespace_only_pieces": True,  # indentation as one piece, not 4-12 "▁"s
    "split_digits": True,  # numbers are compositional; a tiny vocab can't memorise them
    "pad_id": PAD_ID,
    "eos_id": EOS_ID,
    "bos_id": BOS_ID,
    "unk_id": UNK_ID,
    # Every line, in corpus order: sampling or shuffling would make the model depend on a
    # random generator as well as on the corpus.
    "input_sentence_size": 0,
    "shuffle_input_sentence": False,
    "max_sentence_length": 1 << 16,  # bytes; corpus documents are at most a few thousand
    # A small user corpus may not support the full vocabulary; take what it supports.
    "hard_vocab_limit": False,
    # The trainer's floating-point sums depend on how the work is split between threads:
    # a fixed count (not the machine's core count) keeps the model the same everywhere.
    "num_threads": 8,
    "minloglevel": 2,  # the trainer otherwise logs every EM step to stderr
}


class Tokenizer:
    """A loaded SentencePiece model with the ids and views the rest of glam uses."""

    def __init__(self, processor: spm.SentencePieceProcessor) -> None:
        self._sp = processor
        self._vocab = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]

    @classmethod
    def load(cls, path: Path | str) -> Tokenizer:
        """Load `path`: a `.model` file, or a directory holding `tokenizer.model`."""
        path = Path(path)
        if path.is_dir():
            path = path / MODEL_FILENAME
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer model not found: {path}")
        return cls.from_bytes(path.read_bytes())

    @classmethod
    def from_bytes(cls, model: bytes) -> Tokenizer:
        """Load a serialized model, e.g. one stored inside a checkpoint."""
        return cls(spm.SentencePieceProcessor(model_proto=model))

    def to_bytes(self) -> bytes:
        """The serialized model; `Tokenizer.from_bytes` reads it back."""
        return self._sp.serialized_model_proto()

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    @property
    def pad_id(self) -> int:
        return self._sp.pad_id()

    @property
    def eos_id(self) -> int:
        return self._sp.eos_id()

    @property
    def bos_id(self) -> int:
        return self._sp.bos_id()

    @property
    def unk_id(self) -> int:
        return self._sp.unk_id()

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without bos/eos; `decode` gives `text` back exactly."""
        return self._sp.encode(text)

    def encode_batch(self, texts: Sequence[str], num_threads: int = -1) -> list[list[int]]:
        """`encode` of each text, on several threads (-1: all cores)."""
        return self._sp.encode(list(texts), num_threads=num_threads)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`; pad, bos and eos decode to nothing."""
        return self._sp.decode([int(i) for i in ids])

    def pieces(self, ids: Iterable[int]) -> list[str]:
        """The vocabulary piece of each id, e.g. `['▁def', '▁f', '(', '<0x0A>']`.

        `▁` marks a space and `<0xNN>` is one byte of a character outside the vocabulary
        (or a newline / tab); special ids are `<pad>`, `<s>`, `</s>`, `<unk>`.
        """
        return [self._vocab[i] for i in ids]

    def vocab(self) -> list[str]:
        """Every piece, indexed by id."""
        return list(self._vocab)


def train_tokenizer(
    corpus: Path | str | Iterable[Record],
    out_dir: Path | str,
    *,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    character_coverage: float = DEFAULT_CHARACTER_COVERAGE,
    split: str | None = TRAIN,
) -> Path:
    """Train a tokenizer on `corpus` and write `out_dir/tokenizer.model`; returns its path.

    `corpus` is a JSONL path (read with `read_corpus`) or records; only records of `split`
    are used (None: all), so validation text stays unseen. Training draws no random
    numbers (every line is used, in order), so the same corpus and arguments give the same
    model bytes on any machine; there is no seed.
    """
    if isinstance(corpus, str | Path):
        records = read_corpus(corpus, split)
    else:
        records = [r for r in corpus if split is None or r.split == split]
    if not records:
        raise ValueError(f"no records to train a tokenizer on (split {split!r})")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=_lines(records),
            model_writer=model,
            vocab_size=vocab_size,
            character_coverage=character_coverage,
            **_TRAINER_OPTIONS,
        )
    except RuntimeError as e:  # "INTERNAL: src/x.cc(638) [check] What went wrong. Advice."
        reason = str(e).strip().splitlines()[0].rpartition("] ")[2]
        raise ValueError(f"tokenizer training failed: {reason}") from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MODEL_FILENAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(model.getvalue())
    tmp.replace(path)
    return path


def _lines(records: Iterable[Record]) -> Iterator[str]:
    # SentencePiece learns pieces within a sentence, and a newline is a byte piece anyway,
    # so the trainer sees lines.
    for record in records:
        for line in record.text.split("\n"):
            if line:
                yield line

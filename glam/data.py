"""Training batches by sequence packing, deterministic from (seed, step).

Documents are tokenized once, each followed by EOS, concatenated in a seeded order that
changes every epoch, and cut into rows of `seq_len` tokens: no padding, every token
trains. The batch of step N is a pure function of the seed and N, which is what makes a
resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from glam.corpus import Record
from glam.tokenizer import Tokenizer


@dataclasses.dataclass(frozen=True)
class PackedCorpus:
    """Token ids of each document (EOS-terminated), ready to pack."""

    documents: tuple[np.ndarray, ...]
    domains: tuple[str, ...]

    @property
    def num_tokens(self) -> int:
        return int(sum(doc.size for doc in self.documents))

    @classmethod
    def from_records(cls, records: list[Record], tokenizer: Tokenizer) -> PackedCorpus:
        if not records:
            raise ValueError("no documents to train on")
        ids = tokenizer.encode_batch([r.text for r in records])
        documents = tuple(np.asarray([*doc, tokenizer.eos_id], np.int32) for doc in ids)
        return cls(documents=documents, domains=tuple(r.domain for r in records))


class PackedBatches:
    """batch(step) -> [batch_size, seq_len] int32 rows of packed documents."""

    def __init__(self, corpus: PackedCorpus, *, batch_size: int, seq_len: int, seed: int):
        if corpus.num_tokens < seq_len:
            raise ValueError(
                f"the corpus has {corpus.num_tokens} tokens, fewer than one sequence of {seq_len}"
            )
        self.corpus, self.batch_size, self.seq_len, self.seed = corpus, batch_size, seq_len, seed
        self.rows_per_epoch = corpus.num_tokens // seq_len
        self._epoch_cache: dict[int, np.ndarray] = {}

    def _epoch_rows(self, epoch: int) -> np.ndarray:
        if epoch not in self._epoch_cache:
            order = np.random.default_rng([self.seed, epoch]).permutation(
                len(self.corpus.documents)
            )
            stream = np.concatenate([self.corpus.documents[i] for i in order])
            rows = stream[: self.rows_per_epoch * self.seq_len].reshape(-1, self.seq_len)
            self._epoch_cache = {epoch: rows}  # one epoch in memory at a time
        return self._epoch_cache[epoch]

    def batch(self, step: int) -> np.ndarray:
        first = step * self.batch_size
        rows = []
        for index in range(first, first + self.batch_size):
            epoch, row = divmod(index, self.rows_per_epoch)
            rows.append(self._epoch_rows(epoch)[row])
        return np.stack(rows)

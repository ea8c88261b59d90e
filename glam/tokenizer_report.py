"""How well a tokenizer fits a corpus: characters per token and byte-fallback share.

Byte fallback spells a character outside the vocabulary as its UTF-8 bytes (`<0xE5>` ...):
lossless, but three tokens for one CJK character, and pieces a reader cannot read. The share
of byte tokens in Japanese and Chinese text is the measure of whether the vocabulary covers
those scripts; newline and tab are bytes by design (see glam.tokenizer) and are not counted.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Iterable

from glam.corpus import Record, unit_hash
from glam.tokenizer import Tokenizer

_BYTE_PIECE = re.compile(r"^<0x([0-9A-F]{2})>$")
# Control bytes are whitespace the vocabulary spells as bytes on purpose.
_ON_PURPOSE = {0x09, 0x0A, 0x0D}


@dataclasses.dataclass(frozen=True)
class Fit:
    """One group's (a domain's, a language's) characters, tokens and byte-fallback tokens."""

    chars: int
    tokens: int
    byte_tokens: int

    @property
    def chars_per_token(self) -> float:
        return self.chars / self.tokens if self.tokens else 0.0

    @property
    def byte_share(self) -> float:
        return self.byte_tokens / self.tokens if self.tokens else 0.0

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self) | {
            "chars_per_token": round(self.chars_per_token, 3),
            "byte_fallback_share": round(self.byte_share, 5),
        }


def fallback_ids(tokenizer: Tokenizer) -> set[int]:
    """Ids of the byte pieces that stand for part of a character outside the vocabulary."""
    ids = set()
    for i, piece in enumerate(tokenizer.vocab()):
        match = _BYTE_PIECE.match(piece)
        if match and int(match.group(1), 16) not in _ON_PURPOSE:
            ids.add(i)
    return ids


def measure(tokenizer: Tokenizer, records: Iterable[Record], key: str = "domain") -> dict[str, Fit]:
    """Fit per `key` ("domain" or "lang") over `records`, groups sorted by name."""
    records = list(records)
    fallback = fallback_ids(tokenizer)
    totals: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    encoded = tokenizer.encode_batch([r.text for r in records])
    for record, ids in zip(records, encoded, strict=True):
        group = totals[getattr(record, key)]
        group["chars"] += len(record.text)
        group["tokens"] += len(ids)
        group["byte_tokens"] += sum(i in fallback for i in ids)
    return {name: Fit(**totals[name]) for name in sorted(totals)}


def sample_by_domain(records: Iterable[Record], chars_per_domain: int) -> list[Record]:
    """At most `chars_per_domain` characters of each domain's records, in a hash order, so
    that a tokenizer learns every domain's pieces and no domain's size dominates."""
    by_domain: dict[str, list[Record]] = collections.defaultdict(list)
    for r in records:
        by_domain[r.domain].append(r)
    chosen = []
    for domain in sorted(by_domain):
        total = 0
        for r in sorted(by_domain[domain], key=lambda r: unit_hash(r.source, "tokenizer")):
            if total >= chars_per_domain:
                break
            chosen.append(r)
            total += len(r.text)
    return chosen

"""Duplicate removal: exact documents, repeated paragraphs, and near-duplicate documents.

Man pages and help pages repeat a lot: the same page in two packages, "REPORTING BUGS"
sections, navigation text, untranslated English paragraphs left in a translation. The first
occurrence (in manifest order) is kept, so the order of sources decides which copy survives.
"""

from __future__ import annotations

import hashlib
import re
import zlib

from datasketch import MinHash, MinHashLSH

_WHITESPACE = re.compile(r"\s+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# Near-duplicates are judged on 7-character shingles (after collapsing whitespace), which
# works alike for spaced scripts and for CJK text, over a document's first 5,000 characters:
# that is enough to tell two copies of a page apart from two pages, at a bounded cost.
SHINGLE = 7
SHINGLE_SPAN = 5_000
NUM_PERM = 64


def _key(text: str) -> bytes:
    return hashlib.blake2b(_WHITESPACE.sub(" ", text).strip().encode(), digest_size=16).digest()


class ExactFilter:
    """True the first time a text (whitespace aside) is seen."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def __call__(self, text: str) -> bool:
        key = _key(text)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


class ParagraphFilter:
    """Removes paragraphs (blank-line separated) that an earlier document already had."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def __call__(self, text: str) -> str:
        kept = []
        for paragraph in _PARAGRAPH_BREAK.split(text):
            key = _key(paragraph)
            if paragraph.strip() and key not in self._seen:
                self._seen.add(key)
                kept.append(paragraph)
        return "\n\n".join(kept)


class NearDuplicateFilter:
    """True for a document whose estimated Jaccard similarity to a kept one is >= threshold.

    MinHash signatures (datasketch) with LSH banding; the hash of a shingle is CRC-32, which
    is stable across runs and machines, so the same input always keeps the same documents.
    """

    def __init__(self, threshold: float) -> None:
        self._lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self._count = 0

    def __call__(self, text: str) -> bool:
        flat = _WHITESPACE.sub(" ", text[: SHINGLE_SPAN * 2]).strip()[:SHINGLE_SPAN]
        shingles = {flat[i : i + SHINGLE].encode() for i in range(max(1, len(flat) - SHINGLE + 1))}
        signature = MinHash(num_perm=NUM_PERM, hashfunc=zlib.crc32)
        signature.update_batch(shingles)
        if self._lsh.query(signature):
            return True
        self._lsh.insert(str(self._count), signature)
        self._count += 1
        return False

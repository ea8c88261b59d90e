"""The training corpus: real multi-domain text that is available offline, as JSONL.

A record is one document: `{"text", "domain", "source", "split"}`. `build_corpus` gathers
- `code`: chunks of the Python standard library's own source files;
- `prose-en`: CPython's language-reference topics (`pydoc_data`) and the long descriptions
  (READMEs) of the installed packages;
- `chat-<lang>`: one domain per language of the `chatterbot-corpus` dialogues, one document
  per conversation.

What it gathers depends on the Python version and the installed packages, but for one
environment the output is the same bytes on every run. `read_corpus` loads and validates a
corpus file, the built one or a user's own.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import re
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from importlib.resources.abc import Traversable
from pathlib import Path

TRAIN = "train"
VALIDATION = "validation"
SPLITS = (TRAIN, VALIDATION)

# Code and prose fill this cap; every chat language is smaller (3K-120K characters) and is
# kept whole. That makes ~1.3M characters (~2.3 MB): a tiny model sees it several times over
# in a CPU training run, and code and English together stay about two thirds of it.
DEFAULT_MAX_CHARS_PER_DOMAIN = 400_000
# Below this a language is a handful of conversations: too little to learn from or to
# measure a validation loss on.
DEFAULT_MIN_CHARS_PER_DOMAIN = 3_000
# 10% rather than the usual 1-5%: per-domain validation loss is the headline figure and the
# chat languages are small.
DEFAULT_VAL_FRACTION = 0.1
# A few hundred tokens: several documents fill one training sequence, and no single document
# is a large share of a small domain's validation split.
MAX_DOC_CHARS = 3_000
MIN_DOC_CHARS = 64
# Runs of over 200 non-space characters are base64 images, hex tables or minified data, not
# text worth learning. Applied to code and prose only: CJK text legitimately has no spaces.
_LONG_WORD = re.compile(r"\S{201}")
# Most of one domain coming from a single file or README would make it that file's domain.
_MAX_SOURCE_SHARE = 0.05

# chatterbot-corpus directory name -> domain suffix (ISO 639-1, BCP 47 for the two Chineses).
_LANGUAGE_CODES = {
    "bengali": "bn", "chinese": "zh", "dutch": "nl", "english": "en", "french": "fr",
    "german": "de", "hebrew": "he", "hindi": "hi", "indonesian": "id", "italian": "it",
    "japanese": "ja", "korean": "ko", "marathi": "mr", "oriya": "or", "persian": "fa",
    "portuguese": "pt", "russian": "ru", "spanish": "es", "swedish": "sv", "tamil": "ta",
    "telugu": "te", "thai": "th", "traditionalchinese": "zh-hant", "turkish": "tr",
    "ukrainian": "uk", "urdu": "ur", "yoruba": "yo",
}  # fmt: skip
# Our own README would make the corpus change whenever the project's documentation does.
_EXCLUDED_DISTRIBUTIONS = frozenset({"glam-routing-lab"})
# Tests, test data (deliberately broken files), generated codec tables and the pydoc topics
# (already prose-en) are not representative Python.
_EXCLUDED_STDLIB_PARTS = frozenset(
    {"site-packages", "test", "tests", "idle_test", "__pycache__", "pydoc_data", "encodings"}
)


class CorpusError(ValueError):
    """A corpus file or source is unusable; the message is one line naming the problem."""


@dataclasses.dataclass(frozen=True)
class Record:
    """One document of the corpus."""

    text: str
    domain: str
    source: str  # where the text came from, e.g. "stdlib:json/decoder.py"
    split: str  # TRAIN or VALIDATION
    lang: str = ""  # a BCP 47 tag, where known
    license: str = ""  # of the source, where known

    def to_json(self) -> str:
        # Unknown language and licence are left out, so older corpora keep their bytes.
        fields = {k: v for k, v in dataclasses.asdict(self).items()
                  if v or k not in ("lang", "license")}  # fmt: skip
        return json.dumps(fields, ensure_ascii=False)


@dataclasses.dataclass(frozen=True)
class DomainStats:
    """Size of one domain, in documents and characters, per split."""

    train_docs: int = 0
    train_chars: int = 0
    val_docs: int = 0
    val_chars: int = 0

    @property
    def docs(self) -> int:
        return self.train_docs + self.val_docs

    @property
    def chars(self) -> int:
        return self.train_chars + self.val_chars


@dataclasses.dataclass(frozen=True)
class CorpusStats:
    """What a corpus holds; `to_dict` is what a model card records."""

    domains: dict[str, DomainStats]
    sha256: str = ""  # of the JSONL file, when there is one

    @property
    def docs(self) -> int:
        return sum(d.docs for d in self.domains.values())

    @property
    def chars(self) -> int:
        return sum(d.chars for d in self.domains.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "sha256": self.sha256,
            "docs": self.docs,
            "chars": self.chars,
            "domains": {
                name: dataclasses.asdict(d) | {"docs": d.docs, "chars": d.chars}
                for name, d in self.domains.items()
            },
        }


def summarize(records: Iterable[Record], sha256: str = "") -> CorpusStats:
    """Per-domain document and character counts of `records`, domains sorted by name."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for r in records:
        prefix = "train" if r.split == TRAIN else "val"
        counts[r.domain][f"{prefix}_docs"] += 1
        counts[r.domain][f"{prefix}_chars"] += len(r.text)
    return CorpusStats({d: DomainStats(**counts[d]) for d in sorted(counts)}, sha256)


# --- splits -------------------------------------------------------------------------------


def unit_hash(text: str, salt: str = "") -> float:
    """A stable number in [0, 1) from the text alone (unlike `hash`, which is salted per run)."""
    digest = hashlib.sha256(f"{salt}\0{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(texts: list[str], val_fraction: float) -> list[str]:
    """The split of each text of one domain: by hash of the text, so it never moves.

    A domain of two or more documents always gets at least one of each, so every domain
    has a validation loss; the document moved is the one whose hash is nearest the line.
    """
    keys = [unit_hash(t, "split") for t in texts]
    splits = [VALIDATION if k < val_fraction else TRAIN for k in keys]
    if len(texts) >= 2 and VALIDATION not in splits:
        splits[min(range(len(keys)), key=keys.__getitem__)] = VALIDATION
    if len(texts) >= 2 and TRAIN not in splits:
        splits[max(range(len(keys)), key=keys.__getitem__)] = TRAIN
    return splits


# --- reading ------------------------------------------------------------------------------


def read_corpus(
    path: Path | str, split: str | None = None, *, val_fraction: float = DEFAULT_VAL_FRACTION
) -> list[Record]:
    """Load and validate a JSONL corpus; `split` keeps only that split.

    Each line is an object with string fields `text` and `domain`, and optionally `source`
    and `split`. Records without a split get one by hash of their text (`assign_splits`).
    Blank lines are skipped. Raises `CorpusError` naming the file, line and problem.
    """
    path = Path(path)
    if split is not None and split not in SPLITS:
        raise CorpusError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if not path.is_file():
        raise CorpusError(f"corpus file not found: {path}")
    records: list[Record] = []
    unsplit: dict[str, list[int]] = collections.defaultdict(list)  # domain -> record indices
    # A .gz corpus is read as it is (the shipped model carries its corpus compressed).
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{path}, line {lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CorpusError(f"{where}: not valid UTF-8 ({e.reason})") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{where}: malformed JSON ({e.msg}, column {e.colno})") from None
            record = _record_from_json(obj, where, default_source=f"{path.name}:{lineno}")
            if not record.split:
                unsplit[record.domain].append(len(records))
            records.append(record)
    for indices in unsplit.values():
        splits = assign_splits([records[i].text for i in indices], val_fraction)
        for i, s in zip(indices, splits, strict=True):
            records[i] = dataclasses.replace(records[i], split=s)
    if not records:
        raise CorpusError(f"{path}: corpus is empty (no records)")
    if split is not None:
        records = [r for r in records if r.split == split]
        if not records:
            raise CorpusError(f"{path}: corpus has no records in split {split!r}")
    return records


def _record_from_json(obj: object, where: str, default_source: str) -> Record:
    if not isinstance(obj, dict):
        raise CorpusError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    fields: dict[str, str] = {}
    for name in ("text", "domain", "source", "split", "lang", "license"):
        value = obj.get(name)
        if value is None and name in ("source", "split", "lang", "license"):
            continue
        if value is None:
            raise CorpusError(f"{where}: missing field {name!r}")
        if not isinstance(value, str):
            raise CorpusError(
                f"{where}: field {name!r} must be a string, got {type(value).__name__}"
            )
        if not value and name in ("text", "domain"):
            raise CorpusError(f"{where}: field {name!r} is empty")
        fields[name] = value
    split = fields.get("split", "")
    if split and split not in SPLITS:
        raise CorpusError(f"{where}: field 'split' is {split!r}; expected one of {SPLITS}")
    return Record(fields["text"], fields["domain"], fields.get("source", default_source), split,
                  fields.get("lang", ""), fields.get("license", ""))  # fmt: skip


# --- building -----------------------------------------------------------------------------


def build_corpus(
    out: Path | str,
    *,
    max_chars_per_domain: int = DEFAULT_MAX_CHARS_PER_DOMAIN,
    min_chars_per_domain: int = DEFAULT_MIN_CHARS_PER_DOMAIN,
    seed: int = 0,
    val_fraction: float = DEFAULT_VAL_FRACTION,
) -> CorpusStats:
    """Gather the built-in corpus and write it to `out` as JSONL; returns its statistics.

    Each domain keeps at most `max_chars_per_domain` characters, chosen by a seeded hash of
    each document (so a new source displaces a few documents instead of reshuffling the
    choice). Domains smaller than `min_chars_per_domain` are left out. Texts are deduplicated
    exactly across the whole corpus. Domains are written in name order.
    """
    out = Path(out)
    candidates = _candidate_documents()
    # A text found in several domains belongs to the largest: the small chat languages carry
    # copies of English conversations, which must not count as Swedish or German.
    owner: dict[str, str] = {}
    for domain in sorted(candidates, key=lambda d: (-len(candidates[d]), d)):
        for text, _ in candidates[domain]:
            owner.setdefault(text, domain)
    records: list[Record] = []
    for domain in sorted(candidates):
        own = [(text, source) for text, source in candidates[domain] if owner[text] == domain]
        chosen = _choose(own, max_chars_per_domain, seed)
        if sum(len(text) for text, _ in chosen) < min_chars_per_domain:
            continue
        splits = assign_splits([text for text, _ in chosen], val_fraction)
        records += [
            Record(text, domain, source, split)
            for (text, source), split in zip(chosen, splits, strict=True)
        ]
    if not records:
        raise CorpusError("no corpus source produced any text")
    data = "".join(r.to_json() + "\n" for r in records).encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)  # then rename: a reader never sees half a corpus
    tmp.replace(out)
    return summarize(records, hashlib.sha256(data).hexdigest())


def _choose(candidates: list[tuple[str, str]], max_chars: int, seed: int) -> list[tuple[str, str]]:
    """Distinct `(text, source)` pairs in seeded-hash order, as many as fit `max_chars`.

    When there is more text than fits, one source (a file, a README) may take at most
    `_MAX_SOURCE_SHARE` of the domain: pydantic's changelog-laden README alone would
    otherwise be a third of the prose.
    """
    unique: dict[str, str] = {}  # text -> its first source, in sorted order
    for text, source in sorted(candidates):
        unique.setdefault(text, source)
    over_cap = sum(map(len, unique)) > max_chars
    source_cap = max(_MAX_SOURCE_SHARE * max_chars, MAX_DOC_CHARS)  # one document at least
    per_source: collections.Counter[str] = collections.Counter()
    chosen, total = [], 0
    for text in sorted(unique, key=lambda t: unit_hash(t, f"choose{seed}")):
        source = unique[text]
        if over_cap and per_source[source] + len(text) > source_cap:
            continue
        if total + len(text) <= max_chars:
            chosen.append((text, source))
            total += len(text)
            per_source[source] += len(text)
    return chosen


def _candidate_documents() -> dict[str, list[tuple[str, str]]]:
    """Every document each domain could use, as `(text, source)` pairs."""
    candidates: dict[str, list[tuple[str, str]]] = {"code": [], "prose-en": []}
    for text, source in _stdlib_sources():
        candidates["code"] += [(c, source) for c in _chunk(text, _CODE_SPLITTERS) if _ok(c)]
    for text, source in _prose_sources():
        candidates["prose-en"] += [(c, source) for c in _chunk(text, _PROSE_SPLITTERS) if _ok(c)]
    for language, documents in _chatterbot_dialogues().items():
        candidates[f"chat-{language}"] = documents
    return candidates


def _ok(chunk: str) -> bool:
    return len(chunk.strip()) >= MIN_DOC_CHARS and not _LONG_WORD.search(chunk)


def _stdlib_sources() -> Iterator[tuple[str, str]]:
    """The standard library's own Python files, as `(text, "stdlib:<relative path>")`."""
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in _EXCLUDED_STDLIB_PARTS]  # prune
        paths += [Path(folder, f) for f in files if f.endswith(".py")]
    for path in sorted(paths):
        rel = path.relative_to(root)
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # a few files are deliberately in other encodings
        yield text, f"stdlib:{rel.as_posix()}"


def _prose_sources() -> Iterator[tuple[str, str]]:
    """CPython's reference topics and installed packages' long descriptions."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip pydoc_data
        topics = {}
    for name in sorted(topics):
        yield topics[name], f"pydoc_data:{name}"
    by_name = {}
    for dist in importlib.metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        if name and name not in _EXCLUDED_DISTRIBUTIONS:
            by_name.setdefault(name, dist)  # the first on sys.path is the one Python imports
    for name in sorted(by_name):
        meta = by_name[name].metadata
        text = meta.get("Description") or getattr(meta, "get_payload", lambda: None)() or ""
        if text.strip() and text.strip() != "UNKNOWN":
            yield text, f"readme:{name}"


def _chatterbot_dialogues() -> dict[str, list[tuple[str, str]]]:
    """Conversations of chatterbot-corpus per language, turns joined by newlines."""
    import yaml  # a dependency of flax and orbax too

    try:
        data = importlib.resources.files("chatterbot_corpus") / "data"
    except ModuleNotFoundError:
        raise CorpusError(
            "the chatterbot-corpus package is not installed (pip install chatterbot-corpus)"
        ) from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    dialogues: dict[str, list[tuple[str, str]]] = {}
    for lang_dir in sorted(data.iterdir(), key=_name):
        if not lang_dir.is_dir():
            continue
        language = _LANGUAGE_CODES.get(lang_dir.name, lang_dir.name)
        docs = dialogues.setdefault(language, [])
        files = sorted((f for f in lang_dir.iterdir() if f.name.endswith(".yml")), key=_name)
        for file in files:
            try:
                content = yaml.load(file.read_text(encoding="utf-8"), Loader=loader)
            except yaml.YAMLError:
                continue  # one bad file should not cost the language
            conversations = content.get("conversations") if isinstance(content, dict) else None
            for conversation in conversations or []:
                # A few entries are malformed (a bare string rather than a list of turns).
                if isinstance(conversation, list):
                    turns = [str(t).strip() for t in conversation if t is not None]
                    text = "\n".join(t for t in turns if t)
                    if text:
                        docs.append((text, f"chatterbot:{lang_dir.name}/{file.name}"))
    return dialogues


def _name(path: Traversable) -> str:
    return path.name


# --- chunking -----------------------------------------------------------------------------

Splitter = Callable[[str], list[str]]


def _split_before(pattern: str) -> Splitter:
    """Split text before every match of `pattern` (multiline); the pieces rejoin exactly."""
    regex = re.compile(pattern, re.MULTILINE)

    def split(text: str) -> list[str]:
        starts = sorted({0, *(m.start() for m in regex.finditer(text))})
        return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]

    return split


_PROSE_SPLITTERS: list[Splitter] = [
    _split_before(r"(?<=\n\n)(?=[^\n])"),  # paragraphs (blank lines stay with the one above)
    _split_before(r"(?<=\n)(?=.)"),  # lines
]
# A top-level def or class starts a block, together with its decorators and the comment
# lines right above it.
_CODE_SPLITTERS: list[Splitter] = [
    _split_before(r"^(?:#.*\n)*(?:@.*\n)*(?:async def |def |class )"),
    *_PROSE_SPLITTERS,
]


def chunk(text: str, max_chars: int = MAX_DOC_CHARS, *, python: bool = False) -> list[str]:
    """`text` cut into consecutive pieces of at most `max_chars`: at paragraphs, then lines
    (Python source first at top-level definitions)."""
    return _chunk(text, _CODE_SPLITTERS if python else _PROSE_SPLITTERS, max_chars)


def _chunk(text: str, splitters: list[Splitter], max_chars: int = MAX_DOC_CHARS) -> list[str]:
    """Cut `text` into consecutive pieces of at most `max_chars`, preferring coarse cuts.

    The text is split by the first splitter and neighbouring pieces are packed together up to
    `max_chars`; a piece still too long is cut by the next splitter, and as a last resort at
    `max_chars`. Pieces are stripped of surrounding blank lines.
    """
    if len(text) <= max_chars:
        return [text.strip("\n")] if text.strip() else []
    if not splitters:
        return [
            c for i in range(0, len(text), max_chars) for c in _chunk(text[i : i + max_chars], [])
        ]
    chunks: list[str] = []
    current = ""
    for piece in splitters[0](text):
        if len(current) + len(piece) <= max_chars:
            current += piece
            continue
        chunks += _chunk(current, [])
        current = ""
        if len(piece) <= max_chars:
            current = piece
        else:
            chunks += _chunk(piece, splitters[1:], max_chars)
    return chunks + _chunk(current, [])

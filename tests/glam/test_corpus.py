"""The built-in corpus is real, balanced, deduplicated and reproducible; bad files fail clearly."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest

from glam.corpus import (
    MAX_DOC_CHARS,
    TRAIN,
    VALIDATION,
    CorpusError,
    assign_splits,
    build_corpus,
    read_corpus,
    summarize,
)

SMALL_CAP = 20_000


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    build_corpus(path, max_chars_per_domain=SMALL_CAP)
    return path


def test_build_is_byte_identical_across_runs_and_stats_match_the_file(tmp_path: Path) -> None:
    first = build_corpus(tmp_path / "a.jsonl")
    second = build_corpus(tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert first == second
    assert summarize(read_corpus(tmp_path / "a.jsonl")).domains == first.domains


def test_every_domain_is_non_empty_in_both_splits(small_corpus: Path) -> None:
    stats = summarize(read_corpus(small_corpus))
    # Code, English prose, and at least English and Japanese dialogue must be there.
    assert {"code", "prose-en", "chat-en", "chat-ja"} <= set(stats.domains)
    for name, domain in stats.domains.items():
        assert domain.train_docs > 0 and domain.val_docs > 0, name
        assert domain.train_chars > 0 and domain.val_chars > 0, name


def test_domains_are_capped_and_large_sources_fill_the_cap(small_corpus: Path) -> None:
    stats = summarize(read_corpus(small_corpus))
    assert all(d.chars <= SMALL_CAP for d in stats.domains.values())
    # Code and prose have far more text than the cap: they should come close to it.
    assert stats.domains["code"].chars > 0.9 * SMALL_CAP
    assert stats.domains["prose-en"].chars > 0.9 * SMALL_CAP


def test_texts_are_unique_across_the_whole_corpus(small_corpus: Path) -> None:
    texts = [r.text for r in read_corpus(small_corpus)]
    assert len(texts) == len(set(texts))


def test_code_documents_are_verbatim_pieces_of_stdlib_files(small_corpus: Path) -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    code = [r for r in read_corpus(small_corpus) if r.domain == "code"]
    assert code
    for record in code:
        assert len(record.text) <= MAX_DOC_CHARS
        source = stdlib / record.source.removeprefix("stdlib:")
        assert record.text in source.read_text(encoding="utf-8"), record.source
    # Indentation survives chunking: some chunk has an indented line.
    assert any("\n    " in r.text for r in code)


def test_prose_documents_come_from_pydoc_topics_or_package_readmes(small_corpus: Path) -> None:
    from pydoc_data.topics import topics

    prose = [r for r in read_corpus(small_corpus) if r.domain == "prose-en"]
    kinds = {r.source.partition(":")[0] for r in prose}
    assert kinds == {"pydoc_data", "readme"}
    for record in prose:
        if record.source.startswith("pydoc_data:"):
            assert record.text in topics[record.source.partition(":")[2]]


def test_the_seed_changes_which_documents_are_chosen(tmp_path: Path) -> None:
    a = build_corpus(tmp_path / "a.jsonl", max_chars_per_domain=10_000, seed=0)
    b = build_corpus(tmp_path / "b.jsonl", max_chars_per_domain=10_000, seed=1)
    assert a.sha256 != b.sha256


def test_split_of_a_text_does_not_depend_on_the_other_texts() -> None:
    texts = [f"document number {i}" for i in range(200)]
    alone = dict(zip(texts, assign_splits(texts, 0.1), strict=True))
    shuffled = texts[::-1] + [f"another document {i}" for i in range(50)]
    together = dict(zip(shuffled, assign_splits(shuffled, 0.1), strict=True))
    assert all(alone[t] == together[t] for t in texts)
    assert 5 < sum(s == VALIDATION for s in alone.values()) < 40


def test_two_documents_get_one_of_each_split() -> None:
    for texts in (["a", "b"], ["hello", "world"], ["x" * 10, "y" * 10]):
        assert sorted(assign_splits(texts, 0.1)) == [TRAIN, VALIDATION]


# --- reading user files -------------------------------------------------------------------


def write_lines(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "user.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_user_file_without_split_or_source_gets_them_deterministically(tmp_path: Path) -> None:
    lines = [json.dumps({"text": f"text {i}", "domain": "mine"}) for i in range(50)]
    path = write_lines(
        tmp_path, *lines, "", json.dumps({"text": "t", "domain": "d", "split": TRAIN})
    )
    records = read_corpus(path)
    assert [r.split for r in records] == [r.split for r in read_corpus(path)]
    assert {r.split for r in records if r.domain == "mine"} == {TRAIN, VALIDATION}
    assert records[0].source == "user.jsonl:1"
    assert records[-1].split == TRAIN and records[-1].source == "user.jsonl:52"
    assert {r.text for r in read_corpus(path, VALIDATION)} < {r.text for r in records}


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (['{"text": "a", "domain": "d"}', '{"text": "b", "domain": '], "line 2: malformed JSON"),
        (['{"domain": "d"}'], "line 1: missing field 'text'"),
        (['{"text": "a"}'], "line 1: missing field 'domain'"),
        (['{"text": 3, "domain": "d"}'], "line 1: field 'text' must be a string, got int"),
        (['{"text": "a", "domain": ["d"]}'], "line 1: field 'domain' must be a string, got list"),
        (['{"text": "", "domain": "d"}'], "line 1: field 'text' is empty"),
        (['["text", "domain"]'], "line 1: expected a JSON object, got list"),
        (['{"text": "a", "domain": "d", "split": "test"}'], "line 1: field 'split' is 'test'"),
        ([], "corpus is empty"),
        (["", "   "], "corpus is empty"),
    ],
)
def test_bad_user_files_raise_one_line_errors_naming_the_problem(
    tmp_path: Path, lines: list[str], expected: str
) -> None:
    path = write_lines(tmp_path, *lines)
    with pytest.raises(CorpusError) as info:
        read_corpus(path)
    message = str(info.value)
    assert expected in message and str(path) in message
    assert "\n" not in message


def test_missing_file_raises_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"^corpus file not found: .*nope\.jsonl$"):
        read_corpus(tmp_path / "nope.jsonl")


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "a", "domain": "d"}\n{"text": "\xff", "domain": "d"}\n')
    with pytest.raises(CorpusError, match=r"line 2: not valid UTF-8"):
        read_corpus(path)


def test_asking_for_an_absent_split_is_an_error(tmp_path: Path) -> None:
    path = write_lines(tmp_path, json.dumps({"text": "a", "domain": "d", "split": TRAIN}))
    with pytest.raises(CorpusError, match="no records in split 'validation'"):
        read_corpus(path, VALIDATION)
    with pytest.raises(CorpusError, match="unknown split 'dev'"):
        read_corpus(path, "dev")

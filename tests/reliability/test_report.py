"""The figures section of docs/RELIABILITY.md: rendered from observations, spliced between
its markers, the hand-written prose around it kept."""

from __future__ import annotations

from tests.reliability import report


def test_figures_replace_only_the_marked_section(tmp_path):
    observations = tmp_path / "obs.jsonl"
    observations.write_text(
        '{"test": "hostile: x", "tried": "sent 3", "observed": {"codes": {"422": 3}}}\n'
        '{"test": "fuzz: y", "tried": "ran", "observed": {"requests": 12345, "p50_ms": 1.234}}\n'
    )
    document = tmp_path / "DOC.md"
    document.write_text(f"# Title\nprose\n{report.START}\nold figures\n{report.END}\ntail\n")

    assert report.main(["--observations", str(observations), "--document", str(document)]) == 0

    text = document.read_text()
    assert text.startswith("# Title\nprose\n") and text.endswith(f"{report.END}\ntail\n")
    assert "old figures" not in text
    # Issue order: fuzzing before hostile input, whatever order the tests ran in.
    assert text.index("### fuzz: y") < text.index("### hostile: x")
    assert "| requests | 12,345 |" in text and "| p50_ms | 1.23 |" in text
    assert "| codes | 422: 3 |" in text


def test_no_observations_is_an_error_and_the_document_is_untouched(tmp_path, capsys):
    document = tmp_path / "DOC.md"
    document.write_text("unchanged\n")
    missing = tmp_path / "none.jsonl"
    assert report.main(["--observations", str(missing), "--document", str(document)]) == 1
    assert "run the suite first" in capsys.readouterr().err
    assert document.read_text() == "unchanged\n"


def test_a_test_recorded_again_replaces_its_entry_and_keeps_the_others(tmp_path, monkeypatch):
    from tests.reliability import observations

    monkeypatch.setattr(observations, "OBSERVATIONS", tmp_path / "obs.jsonl")
    observations.record("load: a", "first", {"n": 1})
    observations.record("fault: b", "once", {"n": 2})
    observations.record("load: a", "second", {"n": 3})
    items = observations.load(tmp_path / "obs.jsonl")
    assert [(i["test"], i["tried"]) for i in items] == [("fault: b", "once"), ("load: a", "second")]

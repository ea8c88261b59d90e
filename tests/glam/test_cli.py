"""The `glam` command line, end to end, and its one-line errors."""

from __future__ import annotations

import json

import pytest

from glam.cli import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_eval_generate_trace(tmp_path, corpus_path, capsys):
    tok = tmp_path / "tok"
    code, out, _ = _run(capsys, "tokenizer", "train", "--corpus", str(corpus_path),
                        "--out", str(tok), "--vocab-size", "400")  # fmt: skip
    assert code == 0 and "tokenizer.model" in out
    run = tmp_path / "run"
    code, out, err = _run(capsys, "train", "--preset", "glam-tiny", "--corpus",
                          str(corpus_path), "--tokenizer", str(tok / "tokenizer.model"),
                          "--out", str(run), "--steps", "3", "--batch-size", "2",
                          "--seq-len", "32", "--save-at", "1", "--quiet")  # fmt: skip
    assert code == 0, err
    assert (run / "final" / "config.json").exists() and (run / "step-000001").exists()

    code, out, _ = _run(capsys, "eval", "--checkpoint", str(run / "final"),
                        "--corpus", str(corpus_path), "--json")  # fmt: skip
    result = json.loads(out)
    assert code == 0 and set(result["domains"]) == {"code", "prose-en", "chat-ja"}

    code, out, _ = _run(capsys, "trace", "--checkpoint", str(run / "final"),
                        "--text", "def f(x): 日本", "--json")  # fmt: skip
    tokens = json.loads(out)["tokens"]
    assert code == 0 and "".join(t["piece"] for t in tokens).replace("▁", " ").startswith("def")
    assert [r["layer"] for r in tokens[0]["routes"]] == [1, 3]
    assert len(tokens[0]["routes"][0]["experts"]) == 2

    code, out, _ = _run(capsys, "generate", "--checkpoint", str(run / "final"),
                        "--prompt", "def", "--max-new-tokens", "4", "--json")  # fmt: skip
    assert code == 0 and "text" in json.loads(out)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "corpus file not found"),
        ('{"text": "a", "domain": "x"}\n{not json\n', "line 2: malformed JSON"),
        ("", "corpus is empty"),
        ('{"text": "a"}\n', "missing field 'domain'"),
    ],
)
def test_bad_corpus_is_a_one_line_error(tmp_path, capsys, content, message):
    path = tmp_path / "corpus.jsonl"
    if content is not None:
        path.write_text(content)
    code, _, err = _run(capsys, "eval", "--checkpoint", str(tmp_path), "--corpus", str(path))
    assert code == 2
    # The checkpoint is checked first; use one that is missing to see its own message.
    assert err.count("\n") == 1 and "error:" in err
    code, _, err = _run(capsys, "tokenizer", "train", "--corpus", str(path),
                        "--out", str(tmp_path / "tok"))  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and message in err


def test_missing_checkpoint_is_a_one_line_error(tmp_path, capsys):
    code, _, err = _run(capsys, "trace", "--checkpoint", str(tmp_path / "nope"), "--text", "hi")
    assert code == 2 and "is not a model directory" in err and err.count("\n") == 1

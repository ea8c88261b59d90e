"""Routing over training: the probe set, its traces per checkpoint, and the curves."""

from __future__ import annotations

import numpy as np
import pytest

from glam import checkpoint, probes
from glam.cli import main
from glam.corpus import read_corpus
from glam.model import build, forward


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, small_config, tokenizer):
    """A run of three checkpoints: steps 1 and 2 (seeds 1, 2) and final (seed 3)."""
    run = tmp_path_factory.mktemp("run")
    cfg = small_config.replace(num_experts=8)
    for name, seed, step in (("step-000001", 1, 1), ("step-000002", 2, 2), ("final", 3, 4)):
        meta = {"step": step, "tokens_seen": step * 64}
        checkpoint.save(run / name, build(cfg, seed=seed), tokenizer, meta)
    return run


def test_the_probe_set_is_each_domains_first_validation_tokens(corpus_path, tokenizer):
    records = read_corpus(corpus_path)
    probe = probes.probe_set(records, tokenizer, tokens_per_domain=40, seq_len=16)
    assert probe.domains == ("chat-ja", "code", "prose-en")
    for index, domain in enumerate(probe.domains):
        rows = probe.row_domain == index
        got = probe.tokens[rows][probe.mask[rows]].tolist()
        stream = []
        for r in records:
            if r.domain == domain and r.split == "validation":
                stream += [*tokenizer.encode(r.text), tokenizer.eos_id]
        assert got == stream[:40]
        assert probe.mask[rows].sum() == min(40, len(stream))


def test_traces_are_each_checkpoints_own_routing(run_dir, corpus_path, tokenizer, tmp_path):
    probe = probes.probe_set(read_corpus(corpus_path), tokenizer, tokens_per_domain=40,
                             seq_len=16)  # fmt: skip
    out = tmp_path / "traces.npz"
    summary = probes.record_run(run_dir, probe, out)
    assert summary["steps"] == [1, 2, 4]
    traces = probes.load_traces(out)
    assert traces["expert"].shape == (3, 1, *probe.tokens.shape, 2)
    assert traces["tokens_seen"].tolist() == [64, 128, 256]
    for c, name in enumerate(("step-000001", "step-000002", "final")):
        model = checkpoint.load(run_dir / name).model
        _, trace = forward(model, probe.tokens, probe.mask, capture=True)
        valid = probe.mask
        np.testing.assert_array_equal(traces["expert"][c][:, valid], trace.expert[:, valid])
        np.testing.assert_array_equal(traces["kept"][c][:, valid], trace.kept[:, valid])

    rows = probes.curves(traces)
    by_key = {(r["step"], r["layer"], r["domain"]): r for r in rows}
    final = by_key[(4, 1, probes.ALL_DOMAINS)]
    assert final["saturation"] == 1.0 and final["top1_agreement"] == 1.0
    # Saturation of step 1 recomputed by hand for one domain: |top2 ∩ top2_final| / 2.
    domain_index = list(probe.domains).index("code")
    where = probe.mask & (probe.row_domain == domain_index)[:, None]
    now, last = traces["expert"][0, 0][where], traces["expert"][-1, 0][where]
    overlap = [len(set(a) & set(b)) / 2 for a, b in zip(now.tolist(), last.tolist(), strict=True)]
    assert by_key[(1, 1, "code")]["saturation"] == pytest.approx(np.mean(overlap))
    assert by_key[(1, 1, "code")]["tokens"] == int(where.sum())
    load = np.bincount(now[traces["kept"][0, 0][where]], minlength=8)
    assert by_key[(1, 1, "code")]["dead_experts"] == int((load == 0).sum())
    assert by_key[(1, 1, "code")]["load_cv"] == pytest.approx(load.std() / load.mean())
    assert len(rows) == 3 * 1 * (1 + len(probe.domains))


def test_probe_cli(run_dir, corpus_path, tmp_path, capsys):
    out = tmp_path / "t.npz"
    code = main(["probe", "--run", str(run_dir), "--corpus", str(corpus_path), "--out", str(out),
                 "--tokens-per-domain", "20", "--seq-len", "16"])  # fmt: skip
    assert code == 0 and "3 checkpoints (steps 1, 2, 4)" in capsys.readouterr().out
    code = main(["probe", "--run", str(tmp_path / "nope"), "--corpus", str(corpus_path),
                 "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("glam probe: error: no run directory")

"""GET /v1/stats/training: the routing over training shipped beside a model, via the store."""

from __future__ import annotations

import numpy as np
import pytest

from glam import checkpoint, probes
from glam.corpus import read_corpus
from glam.model import build


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, small_config, tokenizer, corpus_path):
    """A model folder as shipped: step-000002/, final/ and the traces of both beside them."""
    root = tmp_path_factory.mktemp("shipped")
    cfg = small_config.replace(name="test-glam", max_len=64, num_experts=8)
    checkpoint.save(root / "step-000002", build(cfg, seed=1), tokenizer,
                    {"step": 2, "tokens_seen": 128})  # fmt: skip
    checkpoint.save(root / "final", build(cfg, seed=0), tokenizer,
                    {"step": 9, "tokens_seen": 576})  # fmt: skip
    probe = probes.probe_set(read_corpus(corpus_path), tokenizer, tokens_per_domain=48,
                             seq_len=16)  # fmt: skip
    probes.record_run(root, probe, root / probes.TRACES_FILE)
    return root


def _client(make_client, shipped):
    return make_client(checkpoint=shipped / "final", early_checkpoint=shipped / "step-000002")


def test_the_history_is_the_traces_curves(make_client, shipped):
    client = _client(make_client, shipped)
    response = client.get("/v1/stats/training")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["num_experts"] == 8 and body["saturation_baseline"] == pytest.approx(2 / 8)
    assert body["last_step"] == 9
    want = probes.curves(probes.load_traces(shipped / probes.TRACES_FILE))
    got = {(p["step"], p["layer"], p["domain"]): p for p in body["points"]}
    assert len(got) == len(want)
    for row in want:
        point = got[(row["step"], row["layer"], row["domain"])]
        for name in ("saturation", "load_cv", "drop_rate", "router_entropy", "loss"):
            assert point[name] == pytest.approx(row[name]), name
        assert point["tokens"] == row["tokens"] and point["dead_experts"] == row["dead_experts"]
    assert {p["saturation"] for p in body["points"] if p["step"] == 9} == {1.0}
    assert any(p["saturation"] < 1.0 for p in body["points"] if p["step"] == 2)

    code = client.get("/v1/stats/training", params={"domain": "code"}).json()["points"]
    assert {p["domain"] for p in code} == {"code"} and [p["step"] for p in code] == [2, 9]
    assert client.get("/v1/stats/training", params={"run_id": 1}).status_code == 422


def test_a_restart_keeps_the_history_and_new_traces_replace_it(make_client, shipped, tmp_path):
    first = _client(make_client, shipped).get("/v1/stats/training").json()
    again = _client(make_client, shipped).get("/v1/stats/training").json()
    assert again == first
    # New traces (only the final checkpoint's) replace the stored history whole.
    traces = probes.load_traces(shipped / probes.TRACES_FILE)
    per_checkpoint = ("expert", "gate", "kept", "entropy", "nll", "steps", "tokens_seen")
    only_final = {k: v[-1:] if k in per_checkpoint else v for k, v in traces.items()}
    moved = tmp_path / "model"
    moved.mkdir()
    for name in ("final", "step-000002"):
        (moved / name).symlink_to(shipped / name)
    np.savez_compressed(moved / probes.TRACES_FILE, **only_final)
    replaced = make_client(checkpoint=moved / "final", early_checkpoint=moved / "step-000002")
    body = replaced.get("/v1/stats/training").json()
    assert {p["step"] for p in body["points"]} == {9}


def test_a_model_without_traces_has_no_history(client):
    response = client.get("/v1/stats/training")
    assert response.status_code == 404
    assert "no routing history over training" in response.json()["detail"]

"""GLAMLAB_CHECKPOINT=<Hugging Face directory> serves an imported MoE end to end: the model
card, analyse, the store and every statistic with k choices per token, saturation, and the
defaults that only suit the shipped GLaM (early checkpoint, built-in corpus analysis)."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import glam
from backend.app import create_app
from backend.settings import Settings
from glam.checkpoint import Loaded, params_sha256
from glam.families.loader import weights_sha256
from glam.model import forward
from glam.params import count_params
from storage import db
from tests.glam.families.tiny import write_tiny_checkpoint

# A Qwen3-MoE with k=4 of 16 experts, and a DeepSeek-V3-like 256 experts / top-8 (sigmoid
# scores, 8 expert groups of which 4 are eligible): both with dense layer 0, MoE at 1 and 2.
MODELS = {
    "qwen3-moe-16e-top4": dict(family="qwen3_moe", num_experts=16, top_k=4),
    "deepseek-v3-256e-top8": dict(family="deepseek_v3", num_experts=256, top_k=8),
}
TEXTS = {
    "prose": ["the router is a gate of the model", "a mixture of sparse experts"],
    "code": ["def model ( self ) : return self . data", "import data"],
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("imported")
    dirs = {name: write_tiny_checkpoint(root / name, **spec) for name, spec in MODELS.items()}
    # Another checkpoint of the Qwen3-MoE's shape (other weights), for saturation.
    dirs["qwen3-early"] = write_tiny_checkpoint(
        root / "qwen3-early", **MODELS["qwen3-moe-16e-top4"], seed=1
    )
    return dirs


def _settings(database: Path, checkpoint: Path, **overrides) -> Settings:
    url = f"sqlite:///{database}"
    db.upgrade(url)
    return Settings(database_url=url, checkpoint=checkpoint, **overrides)


@dataclasses.dataclass
class Served:
    client: TestClient
    path: Path
    loaded: Loaded
    runs: dict[str, dict]  # domain -> analyze response

    @property
    def k(self) -> int:
        return self.loaded.config.top_k

    @property
    def num_experts(self) -> int:
        return self.loaded.config.num_experts

    @property
    def tokens(self) -> int:
        return sum(d["n_tokens"] for run in self.runs.values() for d in run["documents"])


@pytest.fixture(scope="module", params=list(MODELS))
def served(request, checkpoints, tmp_path_factory) -> Iterator[Served]:
    """The app serving one imported model (every default left as it is), with one stored
    run per domain of TEXTS."""
    path = checkpoints[request.param]
    database = tmp_path_factory.mktemp("db") / "api.sqlite"
    with TestClient(create_app(_settings(database, path))) as client:
        runs = {}
        for domain, texts in TEXTS.items():
            response = client.post("/v1/analyze", json={"texts": texts, "domain": domain})
            assert response.status_code == 200, response.text
            runs[domain] = response.json()
        yield Served(client, path, glam.load(path), runs)


def test_model_card_reports_family_experts_top_k_and_parameters(served):
    card = served.client.get("/v1/model").json()
    cfg = served.loaded.config
    params = count_params(cfg)
    assert (card["family"], card["num_experts"], card["top_k"]) == (
        cfg.family, cfg.num_experts, cfg.top_k,
    )  # fmt: skip
    assert card["moe_layers"] == [1, 2] == list(cfg.moe_layers)
    assert (card["params_total"], card["params_activated"]) == (params.total, params.activated)
    assert card["params_activated"] < card["params_total"]
    assert card["config"]["family"] == cfg.family
    assert card["checkpoint"]["sha256"] == weights_sha256(served.path)


def test_each_model_has_its_own_weights_digest(checkpoints):
    digests = {weights_sha256(path) for path in checkpoints.values()}
    assert len(digests) == len(checkpoints)
    assert params_sha256(checkpoints["qwen3-early"]) in digests


def test_no_early_checkpoint_is_registered_by_default(served):
    card = served.client.get("/v1/model").json()
    assert [c["name"] for c in card["checkpoints"]] == ["final"]
    response = served.client.post("/v1/experiments/saturation", json={"texts": ["the gate"]})
    assert response.status_code == 422 and "unknown checkpoint 'early'" in response.text


def test_analyze_stores_the_k_experts_that_forward_chooses(served):
    texts = [text for domain in TEXTS for text in TEXTS[domain]]
    ids = served.loaded.tokenizer.encode_batch(texts)
    tokens = np.zeros((len(ids), max(map(len, ids))), np.int32)
    mask = np.zeros(tokens.shape, bool)
    for row, seq in enumerate(ids):
        tokens[row, : len(seq)], mask[row, : len(seq)] = seq, True
    _, trace = forward(served.loaded.model, tokens, mask, capture=True)  # one compile
    documents = []
    for domain in TEXTS:
        run = served.runs[domain]
        assert (run["num_experts"], run["top_k"]) == (served.num_experts, served.k)
        stored = served.client.get(f"/v1/runs/{run['run_id']}/tokens").json()
        documents += list(zip(run["documents"], stored, strict=True))
    for row, (answered, kept) in enumerate(documents):
        expected = trace.expert[:, row, : len(ids[row])].swapaxes(0, 1).tolist()  # [S, L, k]
        for document in (answered, kept):
            experts = [[r["experts"] for r in t["routes"]] for t in document["tokens"]]
            assert experts == expected
            routes = [r for t in document["tokens"] for r in t["routes"]]
            assert all(len(r["gates"]) == len(r["probs"]) == served.k for r in routes)
            assert all(all(r["kept"]) for r in routes)  # dropless


def _query(served: Served, route: str, **params) -> object:
    response = served.client.get(f"/v1/stats/{route}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_load_and_balance_count_k_choices_per_token(served):
    k, num_experts = served.k, served.num_experts
    layers = _query(served, "load")
    assert [layer["layer"] for layer in layers] == [1, 2]
    for layer in layers:
        experts = layer["load"]["experts"]
        assert len(experts) == num_experts
        assert sum(e["load"] for e in experts) == layer["load"]["total"] == served.tokens * k
        assert all(len(e["chosen"]) == len(e["kept"]) == k for e in experts)
        assert experts[0]["share"]["baseline"] == pytest.approx(1 / num_experts)
        assert [m["value"] for m in layer["routing"]["drop_rate_by_rank"]] == [0.0] * k
    balance = _query(served, "balance")
    assert [b["layer"] for b in balance["balance"]] == [1, 2]
    assert all(r["tokens"] == served.tokens for r in balance["routing"])


def test_specialisation_coactivation_and_paths_have_k_choices(served):
    k, num_experts, tokens = served.k, served.num_experts, served.tokens
    domains = _query(served, "domains", layer=1)
    assert {d["domain"] for d in domains} == set(TEXTS)
    for d in domains:
        assert len(d["counts"]) == num_experts and sum(d["counts"]) == d["tokens"] * k
        assert d["baseline"] == pytest.approx(k / num_experts)
    (coactivation,) = _query(served, "coactivation", layer=1)
    assert sum(coactivation["counts"]) == tokens * k
    assert len(coactivation["pairs"]) == num_experts
    assert coactivation["baseline"] == pytest.approx((k - 1) / (num_experts - 1))
    consecutive = _query(served, "consecutive")
    assert [c["layer"] for c in consecutive] == [1, 2]
    assert consecutive[0]["same_top1"]["baseline"] == pytest.approx(1 / num_experts)
    (transitions,) = _query(served, "transitions", src=1, dst=2)
    assert np.asarray(transitions["counts"]).shape == (num_experts, num_experts)
    assert np.sum(transitions["counts"]) == tokens
    positions = _query(served, "positions", layer=1)
    assert sum(p["tokens"] for p in positions) == tokens
    assert all(p["drop_rate"]["value"] == 0 for p in positions)
    first = served.runs["prose"]["documents"][0]["tokens"][0]
    top1 = first["routes"][0]["experts"][0]
    vocab = _query(served, "vocab", layer=1, expert=top1, min_count=1)
    (shares,) = vocab
    assert shares["baseline"] == pytest.approx(k / num_experts)
    assert first["token_id"] in [t["token_id"] for t in shares["tokens"]]


def test_export_has_one_row_per_token_layer_and_choice(served):
    run = served.runs["code"]
    response = served.client.get(f"/v1/runs/{run['run_id']}/export")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    tokens = sum(d["n_tokens"] for d in run["documents"])
    assert len(rows) == tokens * 2 * served.k
    assert {int(r["rank"]) for r in rows} == set(range(served.k))


def test_saturation_between_two_runs_of_the_same_texts(served):
    texts = TEXTS["prose"]
    again = served.client.post("/v1/analyze", json={"texts": texts, "domain": "prose"}).json()
    layers = _query(
        served, "saturation", run_a=served.runs["prose"]["run_id"], run_b=again["run_id"]
    )
    assert [s["layer"] for s in layers] == [1, 2]
    for layer in layers:
        assert layer["saturation"]["value"] == pytest.approx(1.0)
        assert layer["saturation"]["baseline"] == pytest.approx(served.k / served.num_experts)
    served.client.delete(f"/v1/runs/{again['run_id']}")


def test_a_capacity_factor_is_refused_for_a_dropless_model(served):
    body = {"texts": ["the gate"], "store": False}
    response = served.client.post("/v1/analyze", json={**body, "capacity_factor": 1.0})
    assert response.status_code == 422 and "dropless" in response.text
    response = served.client.post("/v1/analyze", json={**body, "capacity_factor": "no-drops"})
    assert response.status_code == 200


def test_saturation_against_an_early_checkpoint_of_the_same_shape(checkpoints, tmp_path):
    final, early = checkpoints["qwen3-moe-16e-top4"], checkpoints["qwen3-early"]
    settings = _settings(tmp_path / "api.sqlite", final, early_checkpoint=early)
    with TestClient(create_app(settings)) as client:
        card = client.get("/v1/model").json()
        assert [c["name"] for c in card["checkpoints"]] == ["final", "early"]
        assert card["checkpoints"][1]["sha256"] == weights_sha256(early)
        response = client.post(
            "/v1/experiments/saturation", json={"texts": [t for ts in TEXTS.values() for t in ts]}
        )
    assert response.status_code == 200, response.text
    layers = response.json()["layers"]
    assert [s["layer"] for s in layers] == [1, 2]
    assert all(s["baseline"] == pytest.approx(4 / 16) for s in layers)
    assert all(0.0 <= s["saturation"] < 1.0 for s in layers)  # other weights, other choices


def test_the_shipped_early_checkpoint_is_not_paired_with_an_imported_model(
    checkpoints, tmp_path, monkeypatch
):
    shipped = tmp_path / "shipped"
    (shipped / "glam-64e" / "early").mkdir(parents=True)
    monkeypatch.setenv("GLAM_CHECKPOINTS", str(shipped))
    settings = _settings(tmp_path / "api.sqlite", checkpoints["qwen3-moe-16e-top4"])
    with TestClient(create_app(settings)) as client:
        card = client.get("/v1/model").json()
    assert [c["name"] for c in card["checkpoints"]] == ["final"]


def test_builtin_corpus_analysis_is_off_by_default_for_an_imported_model(checkpoints, tmp_path):
    model = shutil.copytree(checkpoints["qwen3-moe-16e-top4"], tmp_path / "model")
    records = [{"text": "the gate", "domain": "prose", "source": "t", "split": "validation"}]
    with gzip.open(tmp_path / "corpus.jsonl.gz", "wt") as corpus:
        corpus.writelines(json.dumps(r) + "\n" for r in records)
    for setting, jobs in ((None, 0), (True, 1)):
        settings = _settings(
            tmp_path / f"api-{setting}.sqlite", model, analyze_builtin_on_start=setting
        )
        with TestClient(create_app(settings)) as client:
            assert len(client.get("/v1/jobs").json()) == jobs


def test_ablation_reroutes_over_all_experts(served):
    first = served.runs["prose"]["documents"][0]["tokens"][0]["routes"][0]["experts"][0]
    response = served.client.post(
        "/v1/experiments/ablation", json={"texts": TEXTS["prose"], "ablate": {"1": [first]}}
    )
    assert response.status_code == 200, response.text
    rerouting = {r["layer"]: r for r in response.json()["rerouting"]}
    assert rerouting[1]["affected_tokens"] >= 1
    assert len(rerouting[1]["new_experts"]) == served.num_experts
    assert rerouting[1]["new_experts"][first] == 0  # switched off: nothing goes there

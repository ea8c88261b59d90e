"""Routing over training: one fixed probe set routed by every saved checkpoint of a run.

    glam probe --run runs/glam-64e --corpus checkpoints/corpus/validation.jsonl.gz \
        --out checkpoints/glam-64e/training_routing.npz

The probe set is the first `tokens_per_domain` tokens of each domain's validation text
(documents in corpus order, each followed by EOS, as in training), cut into rows of
`seq_len`. Every checkpoint routes the same rows with its training capacity factor, so
the traces differ only by the weights. `curves` turns the traces into per-step, per-layer
(and per-domain) statistics: router saturation against the last checkpoint (OLMoE eq. 5),
load balance, drop rate, router entropy and loss (docs/ROUTING.md, "Training history").
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from glam import checkpoint
from glam.corpus import VALIDATION, Record
from glam.model import Glam, forward
from glam.tokenizer import Tokenizer

STEP_DIR = re.compile(r"step-(\d+)$")
# A shipped model's traces lie beside its checkpoints: <model>/final, <model>/early and
# <model>/training_routing.npz.
TRACES_FILE = "training_routing.npz"
ALL_DOMAINS = ""  # the domain label of statistics over the whole probe set


@dataclasses.dataclass(frozen=True)
class ProbeSet:
    tokens: np.ndarray  # [B, S] int32
    mask: np.ndarray  # [B, S] bool
    row_domain: np.ndarray  # [B] int index into domains
    domains: tuple[str, ...]


def probe_set(
    records: Sequence[Record],
    tokenizer: Tokenizer,
    *,
    tokens_per_domain: int = 2000,
    seq_len: int = 256,
) -> ProbeSet:
    """The first `tokens_per_domain` validation tokens of every domain, in rows."""
    by_domain: dict[str, list[Record]] = {}
    for record in records:
        if record.split == VALIDATION:
            by_domain.setdefault(record.domain, []).append(record)
    if not by_domain:
        raise ValueError("the corpus has no validation documents to probe with")
    rows, masks, row_domain = [], [], []
    domains = tuple(sorted(by_domain))
    for index, domain in enumerate(domains):
        stream: list[int] = []
        for record in by_domain[domain]:
            stream += [*tokenizer.encode(record.text), tokenizer.eos_id]
            if len(stream) >= tokens_per_domain:
                break
        stream = stream[:tokens_per_domain]
        for start in range(0, len(stream), seq_len):
            piece = stream[start : start + seq_len]
            row = np.zeros(seq_len, np.int32)
            row[: len(piece)] = piece
            rows.append(row)
            masks.append(np.arange(seq_len) < len(piece))
            row_domain.append(index)
    return ProbeSet(
        tokens=np.stack(rows),
        mask=np.stack(masks),
        row_domain=np.asarray(row_domain, np.int32),
        domains=domains,
    )


def route(model: Glam, probes: ProbeSet, *, batch_size: int = 32) -> dict[str, np.ndarray]:
    """One checkpoint's routing of the probe set: expert/gate/kept [L, B, S, k],
    entropy [L, B, S] and next-token loss [B, S] (NaN where there is no next token)."""
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, probes.tokens.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        _, trace = forward(model, probes.tokens[rows], probes.mask[rows], capture=True)
        parts.append(
            {
                "expert": trace.expert.astype(np.uint8),
                "gate": trace.gate.astype(np.float16),
                "kept": trace.kept,
                "entropy": trace.entropy.astype(np.float16),
                "nll": trace.nll.astype(np.float16),
            }
        )
    return {
        name: np.concatenate([p[name] for p in parts], axis=0 if name == "nll" else 1)
        for name in parts[0]
    }


def checkpoints_of(run: Path) -> list[Path]:
    """A run's model directories in step order: step-NNNNNN/ then final/."""
    steps = sorted(
        (int(m.group(1)), p) for p in run.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()
    )
    dirs = [p for _, p in steps]
    if (run / "final").is_dir():
        dirs.append(run / "final")
    if not dirs:
        raise ValueError(f"{run} holds no model directories (step-NNNNNN/ or final/)")
    return dirs


def record_run(run: Path, probes: ProbeSet, out: Path) -> dict[str, Any]:
    """Route the probe set with every checkpoint of `run`; write the traces to `out` (.npz)."""
    return record_checkpoints(checkpoints_of(Path(run)), probes, out)


def record_checkpoints(directories: Sequence[Path], probes: ProbeSet, out: Path) -> dict[str, Any]:
    """Route the probe set with each model directory, in training order; write the traces."""
    traces, steps, tokens_seen, moe_layers, num_experts = [], [], [], None, None
    for directory in directories:
        loaded = checkpoint.load(directory)
        traces.append(route(loaded.model, probes))
        steps.append(int(loaded.meta["step"]))
        tokens_seen.append(int(loaded.meta["tokens_seen"]))
        moe_layers, num_experts = loaded.config.moe_layers, loaded.config.num_experts
    arrays = {name: np.stack([t[name] for t in traces]) for name in traces[0]}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        **arrays,
        steps=np.asarray(steps, np.int64),
        tokens_seen=np.asarray(tokens_seen, np.int64),
        tokens=probes.tokens,
        mask=probes.mask,
        row_domain=probes.row_domain,
        domains=np.asarray(probes.domains),
        moe_layers=np.asarray(moe_layers, np.int32),
        num_experts=np.asarray(num_experts, np.int32),
    )
    return {"checkpoints": len(steps), "steps": steps, "rows": int(probes.tokens.shape[0])}


def _layer_stats(
    expert_tsk: np.ndarray,
    kept_tsk: np.ndarray,
    entropy_t: np.ndarray,
    nll_t: np.ndarray,
    final_tsk: np.ndarray,
    num_experts: int,
) -> dict[str, float]:
    """Statistics of one layer at one checkpoint over tokens t (already masked)."""
    tokens = expert_tsk.shape[0]
    # |top-k now ∩ top-k final| / k: the k choices of a token are distinct experts.
    k = expert_tsk.shape[1]
    overlap = (expert_tsk[:, :, None] == final_tsk[:, None, :]).any(axis=2).sum(axis=1)
    load = np.bincount(expert_tsk[kept_tsk].astype(np.int64), minlength=num_experts)
    mean_load = load.mean() if load.size else 0.0
    finite = nll_t[np.isfinite(nll_t)]
    return {
        "tokens": int(tokens),
        "saturation": float(overlap.mean() / k) if tokens else float("nan"),
        "top1_agreement": float((expert_tsk[:, 0] == final_tsk[:, 0]).mean())
        if tokens
        else float("nan"),
        "load_cv": float(load.std() / mean_load) if mean_load else float("nan"),
        "max_vio": float((load.max() - mean_load) / mean_load) if mean_load else float("nan"),
        "dead_experts": int((load == 0).sum()),
        "drop_rate": float(1.0 - kept_tsk.mean()) if tokens else float("nan"),
        "router_entropy": float(entropy_t.astype(np.float64).mean()) if tokens else float("nan"),
        "loss": float(finite.astype(np.float64).mean()) if finite.size else float("nan"),
    }


def curves(traces: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Rows (step, tokens_seen, layer, domain, statistics...) for every checkpoint, MoE
    layer, and domain (`ALL_DOMAINS` for the whole probe set); saturation is against the
    last checkpoint of the traces."""
    steps, seen = traces["steps"], traces["tokens_seen"]
    mask, row_domain = traces["mask"].astype(bool), traces["row_domain"]
    domains = [str(d) for d in traces["domains"]]
    moe_layers, num_experts = traces["moe_layers"], int(traces["num_experts"])
    selections = [(ALL_DOMAINS, mask)] + [
        (name, mask & (row_domain == index)[:, None]) for index, name in enumerate(domains)
    ]
    rows = []
    for c, step in enumerate(steps):
        for li, layer in enumerate(moe_layers):
            for domain, where in selections:
                stats = _layer_stats(
                    traces["expert"][c, li][where],
                    traces["kept"][c, li][where],
                    traces["entropy"][c, li][where],
                    traces["nll"][c][where],
                    traces["expert"][-1, li][where],
                    num_experts,
                )
                rows.append(
                    {
                        "step": int(step),
                        "tokens_seen": int(seen[c]),
                        "layer": int(layer),
                        "domain": domain,
                        **stats,
                    }
                )
    return rows


def traces_beside(model_dir: Path) -> Path | None:
    """The training traces shipped with the model directory `model_dir`, if there are any."""
    path = Path(model_dir).parent / TRACES_FILE
    return path if path.is_file() else None


def load_traces(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files}

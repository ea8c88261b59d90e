"""Ship a trained model: copy its checkpoints and corpus, evaluate, write its model card.

    glam ship --run runs/tiny-moe --dense-run runs/tiny-dense --early step-000025 \
        --corpus data/corpus.jsonl --out checkpoints/glam-tiny

writes OUT/final, OUT/early (model directories), OUT/corpus.jsonl.gz (the exact corpus,
so `glam eval` reproduces the card anywhere), OUT/model_card.json and OUT/MODEL_CARD.md.
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path
from typing import Any

from glam import checkpoint
from glam.corpus import read_corpus, summarize
from glam.evaluate import EvalResult, evaluate
from glam.params import count_params

CORPUS_FILE = "corpus.jsonl.gz"


def _copy_model(source: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


def _compress(corpus: Path, target: Path) -> None:
    # mtime=0 keeps the archive byte-identical across rebuilds.
    with corpus.open("rb") as src, gzip.GzipFile(target, "wb", compresslevel=9, mtime=0) as dst:
        shutil.copyfileobj(src, dst)


def _eval_summary(result: EvalResult) -> dict[str, Any]:
    return {
        "overall_loss": round(result.overall.loss, 4),
        "overall_perplexity": round(result.overall.perplexity, 2),
        "validation_tokens": result.overall.tokens,
        "loss_by_domain": {d.domain: round(d.loss, 4) for d in result.domains},
        "drop_rate": round(result.drop_rate, 4),
        "aux_loss": round(result.aux_loss, 4),
    }


def ship(
    *, run: Path, dense_run: Path | None, early: str, corpus: Path, out: Path
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    _copy_model(run / "final", out / "final")
    _copy_model(run / early, out / "early")
    _compress(corpus, out / CORPUS_FILE)
    records = read_corpus(out / CORPUS_FILE)

    final = checkpoint.load(out / "final")
    cfg = final.config
    counts = count_params(cfg)
    moe_eval = evaluate(final.model, final.tokenizer, records)
    early_meta = checkpoint.load(out / "early").meta
    card: dict[str, Any] = {
        "name": cfg.name,
        "preset": cfg.name,
        "config": cfg.to_dict(),
        "params": {"total": counts.total, "activated": counts.activated},
        "checkpoints": {
            "final": {
                "step": final.meta["step"],
                "sha256": checkpoint.params_sha256(out / "final"),
            },
            "early": {
                "step": early_meta["step"],
                "sha256": checkpoint.params_sha256(out / "early"),
            },
        },
        "training": {
            "steps": final.meta["step"],
            "tokens_seen": final.meta["tokens_seen"],
            "wall_seconds": final.meta["wall_seconds"],
            "recipe": final.meta["train"],
        },
        "corpus": {**summarize(records).to_dict(), "file": CORPUS_FILE},
        "validation": _eval_summary(moe_eval),
        "top1_share_by_domain": {str(k): v for k, v in moe_eval.top1_share.items()},
        "uniform_loss": round(math.log(cfg.vocab_size), 4),
    }
    if dense_run is not None:
        dense = checkpoint.load(dense_run / "final")
        dense_eval = evaluate(dense.model, dense.tokenizer, records)
        card["dense_equivalent"] = {
            "config": dense.config.to_dict(),
            "params": count_params(dense.config).to_dict(),
            "steps": dense.meta["step"],
            "tokens_seen": dense.meta["tokens_seen"],
            "wall_seconds": dense.meta["wall_seconds"],
            "validation": _eval_summary(dense_eval),
        }
    (out / "model_card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    (out / "MODEL_CARD.md").write_text(render_markdown(card))
    return card


def render_markdown(card: dict[str, Any]) -> str:
    cfg, val = card["config"], card["validation"]
    lines = [
        f"# {card['name']}: the shipped GLaM of GLaM Routing Lab",
        "",
        f"A {cfg['num_layers']}-layer decoder, MoE every other layer (layers "
        f"{', '.join(str(i) for i in range(cfg['first_moe_layer'], cfg['num_layers'], 2))}), "
        f"{cfg['num_experts']} experts per MoE layer, top-2 routing, capacity factor "
        f"{cfg['capacity_factor']}; d_model {cfg['d_model']}, d_ff {cfg['d_ff']}, "
        f"{cfg['num_heads']} heads x {cfg['head_dim']}, vocabulary {cfg['vocab_size']}.",
        "",
        f"- Parameters: {card['params']['total']:,} total, "
        f"{card['params']['activated']:,} activated per token",
        f"- Trained {card['training']['steps']} steps, {card['training']['tokens_seen']:,} "
        f"tokens, {card['training']['wall_seconds']:.0f} s on a 2-core CPU",
        f"- Checkpoints: `final` (step {card['checkpoints']['final']['step']}) and `early` "
        f"(step {card['checkpoints']['early']['step']}, for router-saturation analysis)",
        f"- Validation loss {val['overall_loss']:.3f} nats/token (perplexity "
        f"{val['overall_perplexity']:.1f}); uniform would be ln V = {card['uniform_loss']:.3f}",
        f"- Mean drop rate {val['drop_rate']:.4f}, mean aux loss {val['aux_loss']:.4f}",
        "",
        "## Validation loss by domain",
        "",
    ]
    dense = card.get("dense_equivalent")
    header = "| domain | train docs | val docs | MoE loss |" + (
        " dense-equivalent loss |" if dense else ""
    )
    lines += [header, "|---|---:|---:|---:|" + ("---:|" if dense else "")]
    corpus_domains = card["corpus"]["domains"]
    for domain, loss in val["loss_by_domain"].items():
        sizes = corpus_domains.get(domain, {})
        row = f"| {domain} | {sizes.get('train_docs', '')} | {sizes.get('val_docs', '')} |"
        row += f" {loss:.3f} |"
        if dense:
            row += f" {dense['validation']['loss_by_domain'][domain]:.3f} |"
        lines.append(row)
    overall = f"| **overall** | | | **{val['overall_loss']:.3f}** |"
    if dense:
        overall += f" **{dense['validation']['overall_loss']:.3f}** |"
    lines.append(overall)
    if dense:
        lines += [
            "",
            "The dense-equivalent replaces each MoE layer by one GELU FFN of hidden 2 x d_ff "
            "(equal activated parameters and FLOPs per token) and trained on the same tokens "
            f"for the same {dense['steps']} steps ({dense['wall_seconds']:.0f} s).",
        ]
    lines += [
        "",
        "## Corpus",
        "",
        f"`{card['corpus']['file']}`: {card['corpus']['docs']} documents, "
        f"{card['corpus']['chars']:,} characters; {val['validation_tokens']:,} validation "
        "tokens scored.",
        "",
        "## Reproduce",
        "",
        "```bash",
        "glam eval --checkpoint checkpoints/glam-tiny/final "
        "--corpus checkpoints/glam-tiny/corpus.jsonl.gz",
        "```",
        "",
    ]
    return "\n".join(lines)


def main_ship(run: str, dense_run: str | None, early: str, corpus: str, out: str) -> None:
    card = ship(
        run=Path(run),
        dense_run=Path(dense_run) if dense_run else None,
        early=early,
        corpus=Path(corpus),
        out=Path(out),
    )
    print(json.dumps(card["validation"], indent=2))

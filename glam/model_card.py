"""Ship a trained model: its checkpoints in bfloat16, its built-in corpus, its model card.

    glam ship --run runs/glam-64e --dense-run runs/glam-64e-dense --early step-000080 \
        --corpus checkpoints/corpus/validation.jsonl.gz --out checkpoints/glam-64e

writes OUT/final and OUT/early (model directories, weights stored in bfloat16), OUT/
corpus.jsonl.gz (the first 20,000 validation characters of every domain: the service's
built-in corpus), OUT/model_card.json and OUT/MODEL_CARD.md; the card is measured on the
whole validation split of `--corpus`. With `--dense-run`, the MoE
checkpoint saved at the dense run's last step (`RUN/step-NNNNNN`) is compared with it at
equal training tokens, overall and per domain. Traces written by `glam probe` into
OUT/training_routing.npz are summarised in the card.

A dense-equivalent trained after the MoE was shipped (with `--equal-step`) is added with

    glam ship --add-dense-run runs/glam-64e-dense --corpus VALIDATION --out checkpoints/glam-64e
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import json
import math
from pathlib import Path
from typing import Any

from glam import checkpoint, probes
from glam.corpus import VALIDATION, Record, read_corpus
from glam.evaluate import EvalResult, evaluate
from glam.params import count_params, forward_flops_per_token

CORPUS_FILE = "corpus.jsonl.gz"
BUILTIN_CHARS = 20_000  # per domain, in the service's built-in corpus
LANGUAGES_IN_CARD = 8  # the validation split's most frequent natural languages
DOCS_PER_LANGUAGE = 40


def _ship_model(source: Path, target: Path) -> None:
    loaded = checkpoint.load(source)
    checkpoint.save(target, loaded.model, loaded.tokenizer, loaded.meta, params_dtype="bfloat16")


def builtin_sample(records: list[Record], chars_per_domain: int = BUILTIN_CHARS) -> list[Record]:
    """Each domain's first validation documents up to `chars_per_domain` characters (the
    last one cut to fit): every domain in a corpus the service analyses in about a minute."""
    taken: collections.Counter[str] = collections.Counter()
    sample = []
    for record in records:
        room = chars_per_domain - taken[record.domain]
        if room <= 0:
            continue
        text = record.text[:room]
        taken[record.domain] += len(text)
        sample.append(dataclasses.replace(record, text=text))
    return sample


def _write_corpus(records: list[Record], target: Path) -> None:
    """JSONL, gzipped with mtime=0 so that a rebuild is byte-identical."""
    with gzip.GzipFile(target, "wb", compresslevel=9, mtime=0) as dst:
        for record in records:
            dst.write((record.to_json() + "\n").encode())


def _eval_summary(result: EvalResult) -> dict[str, Any]:
    return {
        "overall_loss": round(result.overall.loss, 4),
        "overall_perplexity": round(result.overall.perplexity, 2),
        "validation_tokens": result.overall.tokens,
        "loss_by_domain": {d.domain: round(d.loss, 4) for d in result.domains},
        "tokens_by_domain": {d.domain: d.tokens for d in result.domains},
        "drop_rate": round(result.drop_rate, 4),
        "aux_loss": round(result.aux_loss, 4),
    }


def _top_experts(shares: dict[int, dict[str, list[float]]], top: int = 3) -> dict[str, Any]:
    """Per MoE layer and group, its `top` most chosen top-1 experts with their shares."""
    return {
        str(layer): {
            group: [
                [expert, round(share[expert], 3)]
                for expert in sorted(range(len(share)), key=lambda e: -share[e])[:top]
            ]
            for group, share in per_group.items()
        }
        for layer, per_group in shares.items()
    }


def _by_language(records: list[Record]) -> list[Record]:
    """The first documents of the most frequent natural languages, labelled by language."""
    counts = collections.Counter(r.lang for r in records if r.lang not in ("", "zxx"))
    chosen = [lang for lang, _ in counts.most_common(LANGUAGES_IN_CARD)]
    taken: collections.Counter[str] = collections.Counter()
    picked = []
    for record in records:
        if record.lang in chosen and taken[record.lang] < DOCS_PER_LANGUAGE:
            taken[record.lang] += 1
            picked.append(dataclasses.replace(record, domain=record.lang))
    return picked


def spot_check_records(records: list[Record], chars: int = 2000) -> list[Record]:
    """The first `chars` characters of each domain's first validation document: a check
    of the shipped weights that a test can rerun in seconds."""
    first: dict[str, Record] = {}
    for record in records:
        first.setdefault(record.domain, dataclasses.replace(record, text=record.text[:chars]))
    return [first[d] for d in sorted(first)]


def _training_routing(traces_path: Path) -> dict[str, Any]:
    traces = probes.load_traces(traces_path)
    rows = [r for r in probes.curves(traces) if r["domain"] == probes.ALL_DOMAINS]
    by_layer: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in rows:
        by_layer[str(row["layer"])].append(
            {
                k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in row.items()
                if k not in ("layer", "domain")
            }
        )
    return {
        "file": probes.TRACES_FILE,
        "steps": [int(s) for s in traces["steps"]],
        "probe_tokens": int(traces["mask"].sum()),
        "by_layer": dict(by_layer),
    }


def ship(
    *,
    run: Path,
    dense_run: Path | None,
    early: str,
    corpus: Path,
    out: Path,
    equal_step: int | None = None,
) -> dict[str, Any]:
    """Ship `run` into `out` (see the module docstring). Without a dense run, `equal_step`
    still evaluates the MoE checkpoint the dense-equivalent will be compared with."""
    out.mkdir(parents=True, exist_ok=True)
    _ship_model(run / "final", out / "final")
    _ship_model(run / early, out / "early")
    records = read_corpus(corpus, VALIDATION)
    if not records:
        raise ValueError(f"{corpus} has no validation documents")
    _write_corpus(builtin_sample(records), out / CORPUS_FILE)

    final = checkpoint.load(out / "final")  # the bfloat16 weights, as served
    cfg = final.config
    counts = count_params(cfg)
    moe_eval = evaluate(final.model, final.tokenizer, records)
    by_language = _by_language(records)
    language_eval = (
        evaluate(final.model, final.tokenizer, by_language, split=None) if by_language else None
    )
    early_meta = json.loads((out / "early" / checkpoint.META_FILE).read_text())
    recipe = final.meta["train"]
    train_flops = 3 * forward_flops_per_token(cfg, recipe["seq_len"]) * final.meta["tokens_seen"]
    card: dict[str, Any] = {
        "name": cfg.name,
        "preset": cfg.name,
        "config": cfg.to_dict(),
        "params": {"total": counts.total, "activated": counts.activated},
        "params_dtype": "bfloat16",
        "checkpoints": {
            name: {"step": meta["step"], "sha256": checkpoint.params_sha256(out / name)}
            for name, meta in (("final", final.meta), ("early", early_meta))
        },
        "training": {
            "steps": final.meta["step"],
            "tokens_seen": final.meta["tokens_seen"],
            "wall_seconds": final.meta["wall_seconds"],
            "train_flops": train_flops,
            "achieved_flop_per_s": round(train_flops / final.meta["wall_seconds"]),
            "recipe": recipe,
            "final_metrics": final.meta.get("last_metrics", {}),
        },
        "corpus": {
            "training": final.meta["corpus"],
            "validation_file": str(corpus),
            "builtin_file": CORPUS_FILE,
            "builtin_chars_per_domain": BUILTIN_CHARS,
        },
        "validation": _eval_summary(moe_eval),
        "experts_by_domain": _top_experts(moe_eval.top1_share),
        "experts_by_language": _top_experts(language_eval.top1_share) if language_eval else {},
        "language_tokens": {d.domain: d.tokens for d in language_eval.domains}
        if language_eval
        else {},
        "uniform_loss": round(math.log(cfg.vocab_size), 4),
        "spot_check": _eval_summary(
            evaluate(final.model, final.tokenizer, spot_check_records(builtin_sample(records)))
        ),
    }
    dense = checkpoint.load(dense_run / "final") if dense_run is not None else None
    if dense is not None:
        if equal_step not in (None, dense.meta["step"]):
            raise ValueError(f"the dense run ended at step {dense.meta['step']}, not {equal_step}")
        equal_step = dense.meta["step"]
    if equal_step is not None:
        equal_dir = run / f"step-{equal_step:06d}"
        if not equal_dir.is_dir():
            raise ValueError(f"no MoE checkpoint at the dense run's last step: {equal_dir}")
        moe_equal = checkpoint.load(equal_dir)
        moe_by = _eval_summary(evaluate(moe_equal.model, moe_equal.tokenizer, records))
        card["equal_tokens"] = {
            "step": moe_equal.meta["step"],
            "tokens_seen": moe_equal.meta["tokens_seen"],
            "moe": moe_by,
            "dense": None,  # until the dense-equivalent has trained this far
        }
    if dense is not None:
        if moe_equal.meta["tokens_seen"] != dense.meta["tokens_seen"]:
            raise ValueError("the MoE checkpoint and the dense run saw different token counts")
        compare_with_dense(card, dense, records)
    traces = out / probes.TRACES_FILE
    if traces.exists():
        card["training_routing"] = _training_routing(traces)
    (out / "model_card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    (out / "MODEL_CARD.md").write_text(render_markdown(card))
    return card


def compare_with_dense(
    card: dict[str, Any], dense: checkpoint.Loaded, records: list[Record]
) -> None:
    """Fill `card["dense_equivalent"]` and the dense side of `card["equal_tokens"]` (whose
    MoE side is the MoE's checkpoint at the dense run's last step, already measured on the
    same validation records)."""
    equal = card["equal_tokens"]
    if equal["tokens_seen"] != dense.meta["tokens_seen"]:
        raise ValueError(
            f"the dense run saw {dense.meta['tokens_seen']:,} tokens; the MoE checkpoint it is "
            f"compared with saw {equal['tokens_seen']:,}"
        )
    moe_by = equal["moe"]
    dense_by = _eval_summary(evaluate(dense.model, dense.tokenizer, records))
    if dense_by["validation_tokens"] != moe_by["validation_tokens"]:
        raise ValueError("the dense run was measured on other validation tokens than the MoE")
    dense_losses = dense_by["loss_by_domain"]
    ahead = [d for d, loss in moe_by["loss_by_domain"].items() if loss < dense_losses[d]]
    card["dense_equivalent"] = {
        "config": dense.config.to_dict(),
        "params": count_params(dense.config).to_dict(),
        "steps": dense.meta["step"],
        "tokens_seen": dense.meta["tokens_seen"],
        "wall_seconds": dense.meta["wall_seconds"],
        "validation": dense_by,
    }
    equal.update(
        dense=dense_by,
        moe_ahead_nats=round(dense_by["overall_loss"] - moe_by["overall_loss"], 4),
        domains_moe_ahead=sorted(ahead),
    )


def add_dense_comparison(model_dir: Path, dense_run: Path, corpus: Path) -> dict[str, Any]:
    """Complete a shipped model's card with its dense-equivalent, trained after the MoE was
    shipped: the card's `equal_tokens` already holds the MoE side (`glam ship --equal-step`),
    so only the dense run's final checkpoint is measured. Rewrites the card, JSON and text."""
    card_file = model_dir / "model_card.json"
    card = json.loads(card_file.read_text())
    if "equal_tokens" not in card:
        raise ValueError(f"{card_file} has no equal_tokens: ship it with --equal-step first")
    dense = checkpoint.load(dense_run / "final")
    if dense.meta["step"] != card["equal_tokens"]["step"]:
        raise ValueError(
            f"the dense run ended at step {dense.meta['step']}; the card's MoE side is step "
            f"{card['equal_tokens']['step']}"
        )
    records = read_corpus(corpus, VALIDATION)
    if not records:
        raise ValueError(f"{corpus} has no validation documents")
    compare_with_dense(card, dense, records)
    card_file.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    (model_dir / "MODEL_CARD.md").write_text(render_markdown(card))
    return card


def _experts_table(
    title: str, by_layer: dict[str, Any], tokens: dict[str, int] | None
) -> list[str]:
    layers = sorted(by_layer, key=int)
    if not layers:
        return []
    lines = ["", f"## {title}", "", "Top-1 experts (share of the tokens) per MoE layer.", ""]
    lines.append("| group | " + " | ".join(f"layer {layer}" for layer in layers) + " |")
    lines.append("|---|" + "---|" * len(layers))
    for group in sorted(by_layer[layers[0]]):
        label = group if tokens is None else f"{group} ({tokens.get(group, 0):,} tokens)"
        cells = [
            ", ".join(f"{e} ({share:.0%})" for e, share in by_layer[layer][group])
            for layer in layers
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(card: dict[str, Any]) -> str:
    cfg, val, training = card["config"], card["validation"], card["training"]
    moe_layers = ", ".join(str(i) for i in range(cfg["first_moe_layer"], cfg["num_layers"], 2))
    lines = [
        f"# {card['name']}: the shipped GLaM of GLaM Routing Lab",
        "",
        f"A {cfg['num_layers']}-layer decoder, MoE every other layer (layers {moe_layers}), "
        f"{cfg['num_experts']} experts per MoE layer, top-2 routing, capacity factor "
        f"{cfg['capacity_factor']}; d_model {cfg['d_model']}, d_ff {cfg['d_ff']}, "
        f"{cfg['num_heads']} heads x {cfg['head_dim']}, vocabulary {cfg['vocab_size']}.",
        "",
        f"- Parameters: {card['params']['total']:,} total, "
        f"{card['params']['activated']:,} activated per token; weights stored in "
        f"{card['params_dtype']}, computed in float32",
        f"- Trained {training['steps']} steps, {training['tokens_seen']:,} tokens, "
        f"{training['wall_seconds']:.0f} s on a 2-core CPU: "
        f"{training['achieved_flop_per_s'] / 1e9:.1f} GFLOP/s of model FLOPs on average",
        f"- Recipe: batch {training['recipe']['batch_size']} x {training['recipe']['seq_len']}, "
        f"AdamW peak learning rate {training['recipe']['peak_lr']}, "
        f"{training['recipe']['warmup_steps']} warm-up steps",
        f"- Checkpoints: `final` (step {card['checkpoints']['final']['step']}) and `early` "
        f"(step {card['checkpoints']['early']['step']}, for router saturation)",
        f"- Validation loss {val['overall_loss']:.3f} nats/token (perplexity "
        f"{val['overall_perplexity']:.1f}) over {val['validation_tokens']:,} tokens; uniform "
        f"would be ln V = {card['uniform_loss']:.3f}",
        f"- Mean drop rate {val['drop_rate']:.4f}, mean aux loss {val['aux_loss']:.4f}",
    ]
    equal = card.get("equal_tokens")
    if equal and equal["dense"] is None:
        lines += [
            "",
            f"## MoE vs its dense-equivalent at equal tokens ({equal['tokens_seen']:,})",
            "",
            "The dense-equivalent has not been trained yet. The MoE's own checkpoint at step "
            f"{equal['step']}, the one it will be compared with, has validation loss "
            f"{equal['moe']['overall_loss']:.3f}.",
        ]
    elif equal:
        dense = card["dense_equivalent"]
        moe_by, dense_by = equal["moe"]["loss_by_domain"], equal["dense"]["loss_by_domain"]
        lines += [
            "",
            f"## MoE vs its dense-equivalent at equal tokens ({equal['tokens_seen']:,})",
            "",
            "The dense-equivalent replaces each MoE layer by one GELU FFN of hidden 2 x d_ff "
            "(equal activated parameters and FLOPs per token) and trained on the same batches "
            f"for {dense['steps']} steps ({dense['wall_seconds']:.0f} s). Compared with the "
            f"MoE's own checkpoint at step {equal['step']}: the MoE is ahead by "
            f"{equal['moe_ahead_nats']:.3f} nats overall and on "
            f"{len(equal['domains_moe_ahead'])} of {len(moe_by)} domains.",
            "",
            "| domain | MoE loss | dense loss | MoE ahead by |",
            "|---|---:|---:|---:|",
        ]
        for domain in sorted(moe_by):
            lines.append(
                f"| {domain} | {moe_by[domain]:.3f} | {dense_by[domain]:.3f} | "
                f"{dense_by[domain] - moe_by[domain]:+.3f} |"
            )
        lines.append(
            f"| **overall** | **{equal['moe']['overall_loss']:.3f}** | "
            f"**{equal['dense']['overall_loss']:.3f}** | **{equal['moe_ahead_nats']:+.3f}** |"
        )
    lines += ["", "## Validation loss by domain (final)", ""]
    lines += ["| domain | validation tokens | loss | perplexity |", "|---|---:|---:|---:|"]
    for domain, loss in val["loss_by_domain"].items():
        tokens = val["tokens_by_domain"][domain]
        lines.append(f"| {domain} | {tokens:,} | {loss:.3f} | {math.exp(loss):.1f} |")
    routing = card.get("training_routing")
    if routing:
        lines += [
            "",
            "## Routing over training",
            "",
            f"`{routing['file']}`: {routing['probe_tokens']:,} probe tokens routed at steps "
            f"{', '.join(map(str, routing['steps']))} (`GET /v1/stats/training`). Saturation "
            f"against step {routing['steps'][-1]} (baseline {2 / cfg['num_experts']:.3f}), "
            "drop rate and load CV per MoE layer:",
            "",
            "| step | " + " | ".join(f"layer {layer}" for layer in routing["by_layer"]) + " |",
            "|---:|" + "---|" * len(routing["by_layer"]),
        ]
        for index, step in enumerate(routing["steps"]):
            cells = []
            for points in routing["by_layer"].values():
                p = points[index]
                cells.append(
                    f"sat {p['saturation']:.2f}, drop {p['drop_rate']:.2f}, cv {p['load_cv']:.2f}"
                )
            lines.append(f"| {step} | " + " | ".join(cells) + " |")
    lines += _experts_table("Which experts serve which domains", card["experts_by_domain"], None)
    lines += _experts_table(
        "Which experts serve which languages", card["experts_by_language"], card["language_tokens"]
    )
    corpus = card["corpus"]["training"]["domains"]
    lines += [
        "",
        "## Corpus",
        "",
        "Built by `glam corpus build` from Debian, npm and PyPI packages (docs/CORPUS.md has "
        "sources, licences and tokens per domain). Trained on the train split; the card is "
        f"measured on the whole validation split (`{card['corpus']['validation_file']}`). "
        f"`{card['corpus']['builtin_file']}` holds the first "
        f"{card['corpus']['builtin_chars_per_domain']:,} validation characters of every "
        "domain: the corpus the service analyses on its first start.",
        "",
        "| domain | train docs | train characters | validation docs | validation characters |",
        "|---|---:|---:|---:|---:|",
    ]
    for domain, sizes in sorted(corpus.items()):
        lines.append(
            f"| {domain} | {sizes.get('train_docs', 0):,} | {sizes.get('train_chars', 0):,} | "
            f"{sizes.get('val_docs', 0):,} | {sizes.get('val_chars', 0):,} |"
        )
    lines += [
        "",
        "## What it cannot do",
        "",
        f"- It is a {card['params']['activated'] / 1e6:.1f}M-activated-parameter model trained "
        f"on {training['tokens_seen'] / 1e6:.0f}M tokens: it continues text in the style of "
        "its domains (man pages, code, help pages, game dialogue) but does not follow "
        "instructions, answer questions reliably or hold facts.",
        "- Its knowledge is the corpus's: software documentation, source code, licences, "
        "dialogue. Languages other than English and Japanese are thin (Korean comes only "
        "from game translations and falls back to bytes 5.7% of the time).",
        "- Routing is GLaM's top-2 with capacity per sequence: tokens past an expert's "
        "capacity are dropped (the drop rates above); the capacity what-if shows the effect.",
        "",
        "## Reproduce",
        "",
        "```bash",
        f"glam eval --checkpoint checkpoints/{card['name']}/final "
        f"--corpus {card['corpus']['validation_file']}",
        "```",
        "",
    ]
    return "\n".join(lines)


def main_ship(
    run: str | None,
    dense_run: str | None,
    early: str,
    corpus: str,
    out: str,
    equal_step: int | None,
    add_dense_run: str | None = None,
) -> None:
    if add_dense_run is not None:
        card = add_dense_comparison(Path(out), Path(add_dense_run), Path(corpus))
        print(json.dumps({"equal_tokens": card["equal_tokens"]}, indent=2))
        return
    if run is None:
        raise ValueError("--run is required (or --add-dense-run to complete a shipped card)")
    card = ship(
        run=Path(run),
        dense_run=Path(dense_run) if dense_run else None,
        early=early,
        corpus=Path(corpus),
        out=Path(out),
        equal_step=equal_step,
    )
    print(json.dumps({"validation": card["validation"], "equal_tokens": card.get("equal_tokens")},
                     indent=2))  # fmt: skip

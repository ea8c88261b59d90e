"""The `glam` command line: presets, parameter counts, routing traces.

glam params glam-64b-64e --json
glam presets
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glam.config import PRESETS, PUBLISHED_PARAMS, GlamConfig
from glam.gather.manifest import DEFAULT_MANIFEST


class CliError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


def _human(count: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g}{unit}"
    return str(int(count))


def cmd_params(args: argparse.Namespace) -> None:
    from glam.params import count_params

    cfg = _preset(args.preset)
    counts = count_params(cfg)
    published = PUBLISHED_PARAMS.get(cfg.name)
    result = {"preset": cfg.name, **counts.to_dict()}
    if published:
        result["published_total"], result["published_activated"] = published
    if args.json:
        print(json.dumps(result))
        return
    print(f"{cfg.name}: {_human(counts.total)} total, {_human(counts.activated)} activated")
    print(
        f"  L={cfg.num_layers} d_model={cfg.d_model} d_ff={cfg.d_ff} heads={cfg.num_heads}"
        f"x{cfg.head_dim} experts={cfg.num_experts} vocab={cfg.vocab_size}"
        f" moe_layers={len(cfg.moe_layers)}"
    )
    if published:
        total, activated = published
        line = f"  paper: {_human(total)} total"
        if activated:
            line += f", {_human(activated)} activated"
        print(line)


def cmd_presets(args: argparse.Namespace) -> None:
    for name, cfg in PRESETS.items():
        print(
            f"{name:16s} L={cfg.num_layers:<3d} d_model={cfg.d_model:<5d} d_ff={cfg.d_ff:<6d} "
            f"experts={cfg.num_experts}"
        )


def _preset(name: str) -> GlamConfig:
    try:
        return GlamConfig.preset(name)
    except ValueError as error:
        raise CliError(str(error)) from None


def _records(path: str, split: str | None = None) -> list:
    from glam.corpus import CorpusError, read_corpus

    try:
        return read_corpus(path, split)
    except CorpusError as error:
        raise CliError(str(error)) from None


def _load(path: str | None):
    from glam.checkpoint import CheckpointError, load

    try:
        return load(path)
    except CheckpointError as error:
        raise CliError(str(error)) from None


def cmd_corpus_build(args: argparse.Namespace) -> None:
    from glam.gather.build import build
    from glam.gather.extractors import EXTRACTORS
    from glam.gather.manifest import ManifestError, load_manifest

    try:
        manifest = load_manifest(args.manifest, set(EXTRACTORS))
        if args.only:
            manifest = manifest.only({n.strip() for n in args.only.split(",") if n.strip()})
    except ManifestError as error:
        raise CliError(str(error)) from None
    summary = build(
        Path(args.out), manifest=manifest, manifest_path=Path(args.manifest),
        cache=Path(args.cache), refresh=args.refresh, progress=not args.quiet,
    )  # fmt: skip
    totals = summary["totals"]
    print(f"wrote {args.out}: {totals['docs']} records, {totals['chars']:,} characters"
          f" ({totals['bytes'] / 1e6:.1f} MB), {totals['domains']} domains,"
          f" {totals['langs']} languages")  # fmt: skip
    for name in summary["failed_sources"]:
        print(f"missing: source {name} could not be fetched (see manifest.json)")


def cmd_corpus_builtin(args: argparse.Namespace) -> None:
    from glam.corpus import build_corpus

    stats = build_corpus(Path(args.out), max_chars_per_domain=args.max_chars, seed=args.seed)
    print(json.dumps(stats.to_dict(), indent=2) if args.json else f"wrote {args.out}: "
          f"{stats.docs} documents, {stats.chars} characters, {len(stats.to_dict()['domains'])}"
          " domains")  # fmt: skip


def cmd_tokenizer_train(args: argparse.Namespace) -> None:
    from glam.tokenizer import train_tokenizer
    from glam.tokenizer_report import sample_by_domain

    records = _records(args.corpus, "train")
    if args.sample_chars_per_domain:
        records = sample_by_domain(records, args.sample_chars_per_domain)
    try:
        coverage = (
            {}
            if args.character_coverage is None
            else {"character_coverage": args.character_coverage}
        )
        path = train_tokenizer(records, Path(args.out), vocab_size=args.vocab_size, **coverage)
    except ValueError as error:
        raise CliError(str(error)) from None
    print(f"wrote {path}")


def cmd_tokenizer_measure(args: argparse.Namespace) -> None:
    from glam.tokenizer import Tokenizer
    from glam.tokenizer_report import measure

    try:
        tokenizer = Tokenizer.load(args.tokenizer)
    except FileNotFoundError as error:
        raise CliError(str(error)) from None
    records = _records(args.corpus, args.split)
    # A file of one split (the shipped validation.jsonl.gz) is recorded as that split, never
    # as the whole corpus.
    splits = {record.split for record in records}
    split = args.split or (next(iter(splits)) if len(splits) == 1 else None)
    report = {key: measure(tokenizer, records, key) for key in ("domain", "lang")}
    result = {
        "vocab_size": tokenizer.vocab_size,
        "corpus": args.corpus,
        "split": split,
        **{
            f"by_{key}": {k: fit.to_dict() for k, fit in fits.items()}
            for key, fits in report.items()
        },
    }
    if args.manifest:
        path = Path(args.manifest)
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise CliError(f"cannot read the corpus manifest {path}: {error}") from None
        key = f"vocab_{tokenizer.vocab_size}_{split or 'all'}"
        manifest.setdefault("tokenizer", {})[key] = result
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        tmp.replace(path)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return
    print(f"vocabulary {tokenizer.vocab_size}, {args.corpus} ({args.split or 'all'} records)")
    for key, fits in report.items():
        print(f"{key:24s} {'chars':>12s} {'tokens':>11s} {'chars/tok':>9s} {'bytes':>8s}")
        for name, fit in fits.items():
            print(f"{name:24s} {fit.chars:12,d} {fit.tokens:11,d} {fit.chars_per_token:9.2f}"
                  f" {fit.byte_share:8.3%}")  # fmt: skip


def _save_at(text: str) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError("--save-at takes comma-separated step numbers") from None


def cmd_train(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from glam.tokenizer import Tokenizer
    from glam.train import TrainConfig, train

    cfg = _preset(args.preset)
    if args.dense_equivalent:
        cfg = cfg.dense_equivalent()
    records = _records(args.corpus)
    tokenizer_path = Path(args.tokenizer)
    if not tokenizer_path.exists():
        raise CliError(f"tokenizer not found: {tokenizer_path} (run `glam tokenizer train`)")
    tokenizer = Tokenizer.load(tokenizer_path)
    train_cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        peak_lr=args.lr,
        warmup_steps=args.warmup,
        seed=args.seed,
        save_at=args.save_at,
    )
    # tqdm shows the steps, their rate and the time left; the postfix adds tokens/s.
    bar = tqdm(total=args.steps, desc=cfg.name, unit="step", disable=args.quiet)
    tokens_per_step = args.batch_size * args.seq_len

    def progress(step: int, row: dict[str, float]) -> None:
        bar.update(step - bar.n)
        rate = bar.format_dict.get("rate") or 0.0  # steps/s, smoothed
        bar.set_postfix(
            loss=f"{row['loss']:.3f}", aux=f"{row['aux_loss']:.3f}",
            drop=f"{row['drop_rate']:.3f}", tok_s=f"{rate * tokens_per_step:,.0f}",
        )  # fmt: skip

    try:
        result = train(cfg, records, tokenizer, Path(args.out), train_cfg,
                       resume=args.resume, progress=progress)  # fmt: skip
    except ValueError as error:
        raise CliError(str(error)) from None
    finally:
        bar.close()
    final = result.history[-1]
    print(
        f"trained {cfg.name} for {result.steps} steps ({result.tokens_seen} tokens) in "
        f"{result.wall_seconds:.0f}s: loss {final['loss']:.3f}; saved "
        + ", ".join(str(p) for p in result.saved.values())
    )


def cmd_eval(args: argparse.Namespace) -> None:
    from glam.evaluate import evaluate

    loaded = _load(args.checkpoint)
    records = _records(args.corpus)
    try:
        result = evaluate(loaded.model, loaded.tokenizer, records, seq_len=args.seq_len)
    except ValueError as error:
        raise CliError(str(error)) from None
    if args.json:
        print(json.dumps(result.to_dict()))
        return
    for row in (*result.domains, result.overall):
        print(f"{row.domain:14s} loss {row.loss:6.3f}  ppl {row.perplexity:9.2f}  ({row.tokens})")
    print(f"drop rate {result.drop_rate:.4f}  aux loss {result.aux_loss:.4f}")


def cmd_probe(args: argparse.Namespace) -> None:
    from glam import probes
    from glam.checkpoint import CheckpointError
    from glam.checkpoint import load as load_model

    run = Path(args.run)
    if not run.is_dir():
        raise CliError(f"no run directory at {run}")
    records = _records(args.corpus)
    try:
        first = load_model(probes.checkpoints_of(run)[0])
        probe_set = probes.probe_set(records, first.tokenizer,
                                     tokens_per_domain=args.tokens_per_domain,
                                     seq_len=args.seq_len)  # fmt: skip
        summary = probes.record_run(run, probe_set, Path(args.out))
    except (ValueError, CheckpointError) as error:
        raise CliError(str(error)) from None
    print(f"routed {summary['rows']} probe rows with {summary['checkpoints']} checkpoints "
          f"(steps {', '.join(map(str, summary['steps']))}) -> {args.out}")  # fmt: skip


def cmd_generate(args: argparse.Namespace) -> None:
    from glam.generate import generate

    loaded = _load(args.checkpoint)
    try:
        out = generate(loaded.model, loaded.tokenizer, args.prompt,
                       max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                       top_p=args.top_p, seed=args.seed)  # fmt: skip
    except ValueError as error:
        raise CliError(str(error)) from None
    if args.json:
        print(json.dumps({"text": out.text, **_trace_json(loaded, out.trace)}))
    else:
        print(args.prompt + out.text)


def _trace_json(loaded, trace) -> dict:
    pieces = loaded.tokenizer.pieces(trace.tokens[0].tolist())
    tokens = []
    for pos, piece in enumerate(pieces):
        tokens.append({
            "piece": piece,
            "token_id": int(trace.tokens[0, pos]),
            "nll": None if np.isnan(trace.nll[0, pos]) else float(trace.nll[0, pos]),
            "routes": [
                {
                    "layer": int(layer),
                    "experts": trace.expert[i, 0, pos].tolist(),
                    "gates": trace.gate[i, 0, pos].round(4).tolist(),
                    "kept": trace.kept[i, 0, pos].tolist(),
                }
                for i, layer in enumerate(trace.moe_layers)
            ],
        })  # fmt: skip
    return {"tokens": tokens}


def cmd_trace(args: argparse.Namespace) -> None:
    from glam.model import forward

    loaded = _load(args.checkpoint)
    ids = loaded.tokenizer.encode(args.text)
    if not ids:
        raise CliError("the text is empty")
    if len(ids) > loaded.config.max_len:
        raise CliError(f"the text is {len(ids)} tokens; the model takes {loaded.config.max_len}")
    _, trace = forward(loaded.model, np.asarray([ids], np.int32), capture=True)
    if args.json:
        print(json.dumps(_trace_json(loaded, trace)))
        return
    layers = trace.moe_layers.tolist()
    width = 4 * trace.top_k + 2
    header = "  ".join(f"layer {layer} (top-{trace.top_k})".ljust(width) for layer in layers)
    print(f"{'token':>16s}  {header}")
    for pos, piece in enumerate(loaded.tokenizer.pieces(ids)):
        cells = [
            " ".join(
                f"{int(e):>3d}" + (" " if kept else "x")
                for e, kept in zip(trace.expert[i, 0, pos], trace.kept[i, 0, pos], strict=True)
            ).ljust(width)
            for i in range(len(layers))
        ]
        print(f"{piece!r:>16s}  " + "  ".join(cells))
    print("(x: dropped by capacity)")


def cmd_ship(args: argparse.Namespace) -> None:
    from glam.model_card import main_ship

    try:
        main_ship(
            args.run, args.dense_run, args.early, args.corpus, args.out, args.equal_step,
            args.add_dense_run,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as error:
        raise CliError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glam", description="GLaM routing lab: the model.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("params", help="total and activated parameter counts of a preset")
    p.add_argument("preset", help=f"one of: {', '.join(PRESETS)}")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("presets", help="list the presets")
    p.set_defaults(func=cmd_presets)

    corpus = sub.add_parser("corpus", help="the training corpus").add_subparsers(
        dest="action", required=True
    )
    p = corpus.add_parser(
        "build", help="fetch the manifest's packages and build the corpus into a folder"
    )
    p.add_argument("--out", required=True, help="folder: corpus.jsonl, validation, manifest")
    p.add_argument("--manifest", default=str(DEFAULT_MANIFEST), help="sources (TOML)")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "glam-corpus"),
                   help="downloaded and unpacked packages, reused by the next build")  # fmt: skip
    p.add_argument("--only", default="", help="comma-separated source names (a partial build)")
    p.add_argument("--refresh", action="store_true", help="download every package anew")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_corpus_build)

    p = corpus.add_parser("builtin", help="glam-tiny's small corpus from this Python (JSONL)")
    p.add_argument("--out", required=True)
    p.add_argument("--max-chars", type=int, default=400_000, help="cap per domain")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_corpus_builtin)

    tok = sub.add_parser("tokenizer", help="the SentencePiece tokenizer").add_subparsers(
        dest="action", required=True
    )
    p = tok.add_parser("train", help="train a tokenizer on a corpus")
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--vocab-size", type=int, default=8192)
    p.add_argument("--sample-chars-per-domain", type=int, default=0,
                   help="at most this many characters of each domain (0: all)")  # fmt: skip
    p.add_argument("--character-coverage", type=float, default=None,
                   help="share of the sample's characters that get pieces of their own "
                   "(default 0.9995); the rest are spelled in bytes")  # fmt: skip
    p.set_defaults(func=cmd_tokenizer_train)

    p = tok.add_parser("measure", help="characters per token and byte-fallback share")
    p.add_argument("--tokenizer", required=True, help="tokenizer.model or its directory")
    p.add_argument("--corpus", required=True)
    p.add_argument("--split", default=None, choices=["train", "validation"])
    p.add_argument("--manifest", default=None, help="a corpus manifest.json to record it in")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tokenizer_measure)

    p = sub.add_parser("train", help="train a model")
    p.add_argument("--preset", required=True)
    p.add_argument("--corpus", required=True)
    p.add_argument("--tokenizer", required=True, help="tokenizer.model or its directory")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-at", type=_save_at, default=(), help="e.g. 25,100")
    p.add_argument("--dense-equivalent", action="store_true",
                   help="train the preset's dense-equivalent instead")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue from OUT/state")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="validation loss per domain")
    p.add_argument("--checkpoint", default=None, help="model directory (default: shipped)")
    p.add_argument("--corpus", required=True)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("probe", help="route a fixed probe set with every checkpoint of a run")
    p.add_argument("--run", required=True, help="training output directory")
    p.add_argument("--corpus", required=True, help="a corpus with a validation split")
    p.add_argument("--out", required=True, help="the traces (.npz)")
    p.add_argument("--tokens-per-domain", type=int, default=2000)
    p.add_argument("--seq-len", type=int, default=256)
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("generate", help="generate text, with its routing")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("ship", help="copy a run into checkpoints/ with its model card")
    p.add_argument("--run", default=None, help="training output directory")
    p.add_argument("--dense-run", default=None, help="the dense-equivalent's run, to compare")
    p.add_argument("--add-dense-run", default=None,
                   help="complete OUT's card with this dense run (no --run needed)")  # fmt: skip
    p.add_argument("--early", default="step-000150", help="e.g. step-000025")
    p.add_argument("--equal-step", type=int, default=None,
                   help="MoE step to compare with the dense run (default: its last)")  # fmt: skip
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_ship)

    p = sub.add_parser("trace", help="each token's experts per MoE layer")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--text", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_trace)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and args.command == "train":
        from glam.allocator import reexec_with_jemalloc

        reexec_with_jemalloc()  # training on the CPU is 1.6x faster under it (allocator.py)
    try:
        args.func(args)
    except CliError as error:
        print(f"glam {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `glam` command line: presets, parameter counts, routing traces.

glam params glam-64b-64e --json
glam presets
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from glam.config import PRESETS, PUBLISHED_PARAMS, GlamConfig


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glam", description="GLaM routing lab: the model.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("params", help="total and activated parameter counts of a preset")
    p.add_argument("preset", help=f"one of: {', '.join(PRESETS)}")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("presets", help="list the presets")
    p.set_defaults(func=cmd_presets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except CliError as error:
        print(f"glam {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

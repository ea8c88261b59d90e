"""The corpus table of a built corpus's manifest, as Markdown (for a model card or a note).

python -m glam.gather.report data/corpus/manifest.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _tokens_by_domain(manifest: dict) -> tuple[int, dict[str, dict]]:
    """The whole-corpus measurement of the largest tokenizer recorded, if there is one."""
    runs = [v for v in manifest.get("tokenizer", {}).values() if v.get("split") is None]
    if not runs:
        return 0, {}
    best = max(runs, key=lambda v: v["vocab_size"])
    return best["vocab_size"], best["by_domain"]


def table(manifest: dict) -> str:
    """One row per domain: languages, sources, licences, characters, tokens, shares."""
    vocab, tokens = _tokens_by_domain(manifest)
    total_tokens = sum(t["tokens"] for t in tokens.values())
    head = ["domain", "languages", "sources", "licences", "characters", "validation"]
    if tokens:
        head[5:5] = [f"tokens ({vocab // 1000}k vocab)", "token share"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, d in sorted(manifest["domains"].items()):
        langs = list(d["langs"])
        shown = ", ".join(langs[:4]) + (f" +{len(langs) - 4}" if len(langs) > 4 else "")
        sources = ", ".join(s.split(":", 1)[1] for s in d["sources"][:3])
        if len(d["sources"]) > 3:
            sources += f" +{len(d['sources']) - 3}"
        licences = "; ".join(d["licenses"])[:60]
        row = [name, shown, sources, licences, f"{d['chars']:,}", f"{d['val_share']:.1%}"]
        if tokens:
            t = tokens.get(name, {}).get("tokens", 0)
            row[5:5] = [f"{t:,}", f"{t / total_tokens:.1%}" if total_tokens else "-"]
        lines.append("| " + " | ".join(row) + " |")
    totals = manifest["totals"]
    lines.append(
        f"\n{totals['docs']:,} records, {totals['chars']:,} characters"
        f" ({totals['bytes'] / 1e6:.1f} MB of UTF-8), {totals['domains']} domains,"
        f" {totals['langs']} languages" + (f", {total_tokens:,} tokens" if tokens else "")
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.loads(Path(sys.argv[1]).read_text())))

"""One summary of an accelerator check's logs (bench/accelerator.sh writes them).

    python -m bench.accelerator_summary OUT_DIR

Reads OUT_DIR/{device,forward,api,jobs}.txt as the benches print them; a step whose log is
missing or holds no figure is reported as such, so a partial run still says what it got.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_FORWARD = {
    "header": r"^(\S+) x(\d+) \| (.+?) \| batch (\d+) x (\d+)",
    "moe": r"^\s+moe\s+(\d+) tokens/s",
    "dense": r"^\s+dense-equivalent\s+(\d+) tokens/s",
    "ratio": r"MoE / dense-equivalent throughput: ([\d.]+)x",
    "capture": r"capture cost: ([+-][\d.]+)%",
    "mfu": r"model FLOP/s: ([\d.]+) G of a (\d+)\^2 f32 matmul's ([\d.]+) G: utilisation ([\d.]+)%",
}
_API = {
    "one": r"one client:.*?([\d.]+) req/s",
    "many": r"(\d+) clients:\s+p50\s+([\d.]+) ms\s+p95\s+([\d.]+) ms\s+([\d.]+) req/s",
    "gain": r"throughput gain from batching: ([\d.]+)x",
}
_JOBS = (
    r"^\s+(\w+)\s+(\d+) documents\s+([\d,]+) tokens\s+model alone\s+([\d,]+)\s+"
    r"job\s+([\d,]+)\s+ratio ([\d.]+)"
)


def _find(pattern: str, text: str) -> tuple[str, ...] | None:
    match = re.search(pattern, text, re.MULTILINE)
    return match.groups() if match else None


def _read(out: Path, name: str) -> str | None:
    path = out / f"{name}.txt"
    return path.read_text(errors="replace") if path.is_file() else None


def summary(out: Path) -> str:
    lines = []
    device = _read(out, "device")
    lines.append(f"accelerator check: {device.strip() if device else 'device unknown'}")
    forward = _read(out, "forward")
    f = {k: _find(p, forward) for k, p in _FORWARD.items()} if forward else {}
    if f.get("header") and f.get("moe"):
        platform, count, model, batch, seq = f["header"]
        line = (f"forward: {platform} x{count}, {model}, batch {batch} x {seq}: MoE"
                f" {int(f['moe'][0]):,} tokens/s")  # fmt: skip
        if f.get("mfu"):
            achieved, n, peak, share = f["mfu"]
            line += (
                f", model FLOP utilisation {share}% ({achieved} of {peak} GFLOP/s, {n}^2 matmul)"
            )
        if f.get("ratio"):
            line += f"; MoE / dense-equivalent {f['ratio'][0]}x"
        if f.get("capture"):
            line += f"; capture {f['capture'][0]}%"
        lines.append(line)
    else:
        lines.append("forward: no figures (missing or failed: see forward.txt)")
    api = _read(out, "api")
    a = {k: _find(p, api) for k, p in _API.items()} if api else {}
    if a.get("gain") and a.get("many"):
        clients, p50, p95, rate = a["many"]
        lines.append(f"api: {clients} clients {rate} req/s (p50 {p50} ms, p95 {p95} ms),"
                     f" one client {a['one'][0] if a.get('one') else '?'} req/s:"
                     f" batching gain {a['gain'][0]}x (expected >= 4)")  # fmt: skip
    else:
        lines.append("api: no figures (missing or failed: see api.txt)")
    jobs = _read(out, "jobs")
    rows = re.findall(_JOBS, jobs, re.MULTILINE) if jobs else []
    for backend, docs, tokens, model, job, ratio in rows:
        lines.append(f"jobs: {backend}, {docs} documents ({tokens} tokens): job {job} tokens/s"
                     f" vs model alone {model}: {ratio}x (target >= 0.7)")  # fmt: skip
    if not rows:
        lines.append("jobs: no figures (missing or failed: see jobs.txt)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(Path(sys.argv[1])))

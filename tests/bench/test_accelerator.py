"""The accelerator check parses, and its summary renders from a run's logs (a fake run here:
no GPU on CI); a missing step is named, never silently dropped."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from bench.accelerator_summary import summary

SCRIPT = Path(__file__).parents[2] / "bench" / "accelerator.sh"

# As bench/forward.py, bench/api.py and bench/jobs.py print them.
FORWARD = (
    (
        "gpu x1 | glam-small: d_model=256 d_ff=1024 layers=8 experts=16 cf=2.0 | batch 32 x 512"
        " | 10 rounds\n"
    )
    + """  moe                   812345 tokens/s  (   20.2 ms)
  moe+capture           790000 tokens/s  (   20.7 ms)
  dense-equivalent      900000 tokens/s  (   18.2 ms)
  MoE / dense-equivalent throughput: 0.903x  (target >= 0.8)
  capture cost: +2.8%  (target <= 5%)
  model FLOP/s: 41234.5 G of a 8192^2 f32 matmul's 51000.0 G: utilisation 80.9%
"""
)
API = """analyse of one 128-token text, store=False, 128 requests
  one client:   p50   12.0 ms  p95   14.0 ms    80.0 req/s
  16 clients:   p50   40.0 ms  p95   55.0 ms   400.0 req/s
  throughput gain from batching: 5.00x  (target >= 4)
"""
JOBS = (
    "corpus job through the service vs the model alone on the same chunks (tokens/s)\n"
    "  sqlite        655 documents  120,000 tokens   model alone   50,000   job   45,000"
    "   ratio 0.90 (target >= 0.7)\n"
)


def test_the_script_is_valid_bash_and_writes_the_logs_the_summary_reads() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    for name in ("device", "forward", "api", "jobs"):
        assert f'"$OUT/{name}.txt"' in text, name
    assert "bench.accelerator_summary" in text
    assert re.search(r"bench/api\.py --clients 16", text)


def test_the_summary_reports_every_figure_of_a_run(tmp_path: Path) -> None:
    for name, text in {"device": "NVIDIA H200 (gpu x1, jax 0.11.2)\n", "forward": FORWARD,
                       "api": API, "jobs": JOBS}.items():  # fmt: skip
        (tmp_path / f"{name}.txt").write_text(text)
    lines = summary(tmp_path).splitlines()
    assert lines[0] == "accelerator check: NVIDIA H200 (gpu x1, jax 0.11.2)"
    assert "812,345 tokens/s" in lines[1] and "utilisation 80.9%" in lines[1]
    assert "0.903x" in lines[1] and "+2.8%" in lines[1]
    assert "16 clients 400.0 req/s" in lines[2] and "batching gain 5.00x" in lines[2]
    assert "job 45,000 tokens/s vs model alone 50,000: 0.90x" in lines[3]


def test_a_step_that_failed_is_named_in_the_summary(tmp_path: Path) -> None:
    (tmp_path / "forward.txt").write_text(FORWARD)
    (tmp_path / "api.txt").write_text("Traceback (most recent call last):\n  ...\n")
    lines = summary(tmp_path).splitlines()
    assert lines[0] == "accelerator check: device unknown"
    assert lines[1].startswith("forward: gpu x1")
    assert lines[2] == "api: no figures (missing or failed: see api.txt)"
    assert lines[3] == "jobs: no figures (missing or failed: see jobs.txt)"

"""API latency and the gain from dynamic batching, against a real `glamlab serve`.

    python bench/api.py                       # shipped model, temporary SQLite
    python bench/api.py --checkpoint runs/tiny-moe/final --requests 96

Prints p50/p95 latency of a single 128-token analyse (one client), then the throughput of
16 concurrent clients against one at a time, measured in the same run on the same server.
Target: >= 4x.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
WORDS = [
    "the",
    "router",
    "sends",
    "every",
    "token",
    "to",
    "two",
    "experts",
    "and",
    "the",
    "capacity",
    "of",
    "each",
    "expert",
    "is",
    "limited",
    "so",
    "some",
    "tokens",
    "are",
    "dropped",
    "when",
    "too",
    "many",
    "choose",
    "the",
    "same",
    "expert",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _text(client: httpx.Client, base: str, tokens: int, seed: int) -> str:
    """A text of exactly about `tokens` tokens (checked through the API's own tokenizer)."""
    words = [WORDS[(seed + i) % len(WORDS)] for i in range(tokens)]
    while True:
        body = client.post(f"{base}/v1/analyze", json={"texts": [" ".join(words)],
                                                       "store": False}).json()  # fmt: skip
        n = body["documents"][0]["n_tokens"]
        if n <= tokens:
            return " ".join(words)
        words = words[: len(words) - max(1, (n - tokens) // 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--store", action="store_true", help="also write every run")
    args = parser.parse_args()

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite",
            "GLAMLAB_ANALYZE_BUILTIN_ON_START": "false",
        }
        if args.checkpoint:
            env["GLAMLAB_CHECKPOINT"] = str(Path(args.checkpoint).resolve())
        subprocess.run([sys.executable, "-m", "backend.cli", "db", "upgrade"], env=env,
                       check=True, cwd=ROOT, capture_output=True)  # fmt: skip
        server = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "serve", "--port", str(port),
             "--log-level", "warning"],
            env=env, cwd=ROOT,
        )  # fmt: skip
        try:
            with httpx.Client(timeout=60) as client:
                for _ in range(600):
                    try:
                        if client.get(f"{base}/readyz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.2)
                texts = [_text(client, base, args.tokens, seed) for seed in range(4)]
                payload = lambda i: {"texts": [texts[i % 4]], "store": args.store}

                def one(i: int) -> float:
                    started = time.perf_counter()
                    response = client.post(f"{base}/v1/analyze", json=payload(i))
                    response.raise_for_status()
                    return time.perf_counter() - started

                # Compile every batch shape up front (rows are padded to powers of two):
                # compiling is start-up cost, not throughput.
                for rows in (1, 2, 4, 8, 16, 32):
                    warm = {"texts": [texts[0]] * rows, "store": False}
                    client.post(f"{base}/v1/analyze", json=warm).raise_for_status()
                for i in range(8):
                    one(i)
                started = time.perf_counter()
                latencies = [one(i) for i in range(args.requests)]
                sequential = time.perf_counter() - started
                with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                    list(pool.map(one, range(args.clients * 2)))  # warm the batch shapes
                    started = time.perf_counter()
                    concurrent_latencies = list(pool.map(one, range(args.requests)))
                    parallel = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=30)

    q = lambda xs, p: statistics.quantiles(xs, n=100)[p - 1] * 1e3
    print(f"analyse of one {args.tokens}-token text, store={args.store}, "
          f"{args.requests} requests")  # fmt: skip
    print(f"  one client:   p50 {q(latencies, 50):6.1f} ms  p95 {q(latencies, 95):6.1f} ms  "
          f"{args.requests / sequential:6.1f} req/s")  # fmt: skip
    print(
        f"  {args.clients} clients:   p50 {q(concurrent_latencies, 50):6.1f} ms  "
        f"p95 {q(concurrent_latencies, 95):6.1f} ms  {args.requests / parallel:6.1f} req/s"
    )
    print(f"  throughput gain from batching: {sequential / parallel:.2f}x  (target >= 4)")


if __name__ == "__main__":
    main()

"""Prometheus metrics of the service (one registry per app, so tests stay independent)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_latency = Histogram(
            "glamlab_request_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.tokens_analysed = Counter(
            "glamlab_tokens_analysed_total", "tokens run through the model", registry=self.registry
        )
        self.batch_requests = Histogram(
            "glamlab_batch_requests",
            "requests merged into one forward pass",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64),
        )
        self.batch_rows = Histogram(
            "glamlab_batch_rows",
            "sequences in one forward pass",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.job_done = Gauge(
            "glamlab_job_documents_done", "documents analysed by a job", ["job"],
            registry=self.registry,
        )  # fmt: skip
        self.job_total = Gauge(
            "glamlab_job_documents_total", "documents a job will analyse", ["job"],
            registry=self.registry,
        )  # fmt: skip

    def observe_batch(self, requests: int, rows: int) -> None:
        self.batch_requests.observe(requests)
        self.batch_rows.observe(rows)

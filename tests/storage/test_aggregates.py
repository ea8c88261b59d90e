"""Aggregates add up: summing the frames of two halves of a batch gives the whole's frames.

This is what lets a corpus job write its aggregates once (`AggregateBuffer`) and what makes
incremental model-wide tables correct; it needs no database.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.aggregates import AggregateBuffer, summarize
from storage.schema_aggregates import FAMILIES
from tests.storage.traces import random_trace

NAMES = ["web", "code", "wiki"]


def _rows(frames: dict, name: str) -> dict[tuple, tuple]:
    family = FAMILIES[name]
    frame = frames[name]
    keys = zip(*(frame[k].tolist() for k in family.keys), strict=True)
    values = zip(*(np.round(frame[v], 6).tolist() for v in family.values), strict=True)
    return dict(zip(keys, values, strict=True))


@given(
    seed=st.integers(0, 2**32 - 1),
    batch=st.integers(2, 6),
    seq=st.integers(1, 70),
    experts=st.integers(3, 8),
)
def test_frames_of_parts_sum_to_the_frames_of_the_whole(seed, batch, seq, experts) -> None:
    rng = np.random.default_rng(seed)
    trace = random_trace(rng, batch=batch, seq=seq, num_experts=experts)
    domains = rng.integers(0, len(NAMES), size=batch)
    split = int(rng.integers(1, batch))
    whole = summarize(trace, domains, NAMES, experts)
    buffer = AggregateBuffer()
    for rows in (slice(0, split), slice(split, batch)):
        buffer.add(summarize(trace.select(rows), domains[rows], NAMES, experts))
    merged = buffer.frames()
    for name in FAMILIES:
        assert _rows(merged, name) == _rows(whole, name), name


def test_padding_contributes_nothing() -> None:
    rng = np.random.default_rng(0)
    trace = random_trace(rng, batch=4, seq=20, num_experts=5)
    # Scramble everything at padding positions: no aggregate may change.
    pad = ~trace.mask
    scrambled = dataclasses.replace(
        trace,
        tokens=np.where(pad, 7, trace.tokens),
        expert=np.where(pad[None, :, :, None], 4, trace.expert),
        kept=np.where(pad[None, :, :, None], True, trace.kept),
        entropy=np.where(pad[None], 99.0, trace.entropy),
        predicted=np.where(pad, 3, trace.predicted),
        nll=np.where(pad, 1.0, trace.nll),
    )
    domains = np.array([0, 1, 0, 2])
    before, after = summarize(trace, domains, NAMES, 5), summarize(scrambled, domains, NAMES, 5)
    for name in FAMILIES:
        assert _rows(before, name) == _rows(after, name), name


def test_each_domain_gets_the_losses_of_its_own_rows() -> None:
    # Two documents of two domains batched together: each row carries its own aux and z
    # loss, and a domain's token-weighted loss must be that of its rows, not the batch's mix.
    rng = np.random.default_rng(3)
    trace = random_trace(rng, batch=2, seq=12, num_experts=4)
    n_layers = trace.num_layers
    own_aux = np.array([[1.0, 3.0]] * n_layers, dtype=np.float32)
    own_z = np.array([[2.0, 6.0]] * n_layers, dtype=np.float32)
    trace = dataclasses.replace(trace, group_aux_loss=own_aux, group_z_loss=own_z)
    layer = summarize(trace, np.array([0, 1]), NAMES, 4)["layer"]
    for i, domain in enumerate(layer["domain"]):
        row = NAMES.index(domain)
        assert layer["aux_sum"][i] / layer["tokens"][i] == pytest.approx(own_aux[0, row]), domain
        assert layer["z_sum"][i] / layer["tokens"][i] == pytest.approx(own_z[0, row]), domain

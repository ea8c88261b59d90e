"""Long documents as overlapping windows (glam/windows.py): every token reported once, with
the routing and next-token loss of the window that reports it, positions continuous."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from glam import windows
from glam.config import GlamConfig
from glam.model import build, forward

CFG = GlamConfig(
    name="test-windows", vocab_size=61, d_model=32, d_ff=64, num_layers=4, num_heads=2,
    head_dim=16, num_experts=4, capacity_factor=2.0, max_len=64,
)  # fmt: skip


@given(n=st.integers(0, 300), max_len=st.integers(1, 40), data=st.data())
def test_windows_report_every_token_once_with_context(n, max_len, data):
    overlap = data.draw(st.integers(0, max_len - 1))
    plan = windows.plan(n, max_len, overlap)
    reported = [t for w in plan for t in range(w.reports_from, w.stop)]
    assert reported == list(range(n))
    assert all(0 < w.stop - w.start <= max_len or n == 0 for w in plan)
    assert len(plan) == 1 or all(w.reports_from - w.start == overlap for w in plan[1:])
    assert (len(plan) == 1) == (n <= max_len)


def test_a_bad_overlap_is_refused():
    with pytest.raises(ValueError, match="overlap"):
        windows.plan(10, 4, overlap=4)


@pytest.fixture(scope="module")
def model():
    return build(CFG, seed=2)


def _nll(logits: np.ndarray, tokens: np.ndarray, position: int) -> float:
    row = logits[position].astype(np.float64)
    log_z = np.log(np.exp(row - row.max()).sum()) + row.max()
    return float(log_z - row[tokens[position + 1]])


def test_a_stitched_document_has_each_token_from_its_window(model):
    rng = np.random.default_rng(4)
    ids = rng.integers(0, CFG.vocab_size, 50).tolist()
    max_len, overlap = 16, 4
    plan = windows.plan(len(ids), max_len, overlap)
    assert len(plan) == 4
    # The windows run as one batch (padded), as a job runs them.
    parts = windows.split(ids, max_len, overlap)
    batch = np.zeros((len(parts), max_len), np.int32)
    mask = np.zeros_like(batch, bool)
    for row, part in enumerate(parts):
        batch[row, : len(part)], mask[row, : len(part)] = part, True
    _, trace = forward(model, batch, mask, capture=True)
    doc = windows.stitch([trace.select([r]) for r in range(len(parts))], plan)

    assert doc.tokens.shape == (1, len(ids)) and doc.tokens[0].tolist() == ids
    assert doc.mask.all()
    for window, part in zip(plan, parts, strict=True):
        logits, alone = forward(model, np.asarray([part]), capture=True)
        logits = np.asarray(logits)[0]
        local = slice(window.reports_from - window.start, len(part))
        document = slice(window.reports_from, window.stop)
        np.testing.assert_array_equal(doc.expert[:, 0, document], alone.expert[:, 0, local])
        np.testing.assert_allclose(doc.gate[:, 0, document], alone.gate[:, 0, local], atol=1e-5)
        # The prediction of each reported token (made one position earlier) is this window's.
        for t in range(max(window.reports_from, 1), window.stop):
            assert doc.nll[0, t - 1] == pytest.approx(
                _nll(logits, np.asarray(part), t - 1 - window.start), abs=1e-4
            )
            assert doc.predicted[0, t - 1] == int(np.argmax(logits[t - 1 - window.start]))
    # Every position predicts its next token, the last has none: no loss lost at boundaries.
    assert not np.isnan(doc.nll[0, :-1]).any() and np.isnan(doc.nll[0, -1])


def test_stacked_documents_keep_their_rows_and_losses(model):
    rng = np.random.default_rng(5)
    docs = [rng.integers(0, CFG.vocab_size, n).tolist() for n in (30, 9)]
    traces = []
    for ids in docs:
        plan = windows.plan(len(ids), 16)
        rows = [forward(model, np.asarray([p]), capture=True)[1] for p in windows.split(ids, 16)]
        traces.append(windows.stitch(rows, plan))
    both = windows.stack(traces)
    assert both.tokens.shape == (2, 30)
    assert both.mask.sum(axis=1).tolist() == [30, 9]
    np.testing.assert_array_equal(both.select([1]).expert[:, 0, :9], traces[1].expert[:, 0])
    assert np.isnan(both.nll[1, 9:]).all()
    # The batch's aux loss is the mean of the documents' own (select's rule).
    np.testing.assert_allclose(
        both.aux_loss, (traces[0].group_aux_loss[:, 0] + traces[1].group_aux_loss[:, 0]) / 2,
        rtol=1e-6,
    )  # fmt: skip

"""The streamed export holds every token x layer x choice of a run, equal to its trace."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from storage import export
from storage.errors import NotFound
from tests.storage.conftest import PIECES


def _table(session, run_id: int) -> pa.Table:
    return pa.Table.from_batches(list(export.run_batches(session, run_id)), export.SCHEMA)


def test_the_export_is_the_trace_in_long_format(session, store, corpus, monkeypatch):
    monkeypatch.setattr(export, "CHUNK_ROWS", 50)  # many chunks: their seams are tested too
    _, ids, _ = store
    trace, domains, _ = corpus["b"][0]
    table = _table(session, ids["b"]).to_pydict()
    rows, cols = np.nonzero(trace.mask)
    k, layers = trace.top_k, trace.moe_layers
    assert len(table["rank"]) == len(rows) * len(layers) * k
    i = 0
    for b, s in zip(rows, cols, strict=True):  # token-major, then layer, then rank
        for j, layer in enumerate(layers):
            for r in range(k):
                assert (table["position"][i], table["layer"][i], table["rank"][i]) == (s, layer, r)
                assert table["domain"][i] == domains[b]
                assert table["expert"][i] == trace.expert[j, b, s, r]
                assert table["kept"][i] == bool(trace.kept[j, b, s, r])
                assert table["gate"][i] == pytest.approx(trace.gate[j, b, s, r])
                assert table["entropy"][i] == pytest.approx(trace.entropy[j, b, s])
                assert table["token_id"][i] == trace.tokens[b, s]
                assert table["piece"][i] == PIECES[trace.tokens[b, s]]
                nll = trace.nll[b, s]
                assert (table["nll"][i] is None) if np.isnan(nll) else table["nll"][i] == nll
                i += 1


def test_parquet_and_csv_streams_read_back_as_the_same_rows(session, store):
    _, ids, _ = store
    table = _table(session, ids["a"])
    parquet = b"".join(export.parquet_stream(export.run_batches(session, ids["a"])))
    back = pq.read_table(io.BytesIO(parquet))
    assert back.num_rows == table.num_rows and back.column("expert") == table.column("expert")
    text = b"".join(export.csv_stream(export.run_batches(session, ids["a"])))
    csv = pa_csv.read_csv(io.BytesIO(text))
    assert csv.column_names == list(export.COLUMNS) and csv.num_rows == table.num_rows
    assert csv.column("gate").to_pylist() == pytest.approx(table.column("gate").to_pylist())


def test_an_unknown_run_is_not_found(session, store):
    with pytest.raises(NotFound):
        list(export.run_batches(session, 10**6))

"""A run's routing as Arrow record batches, streamed: the notebook user's bulk path.

One row per valid token x MoE layer x choice (rank 0 = top-1), in primary-key order:

    document_id, domain, position, token_id, piece, nll, predicted, layer, entropy,
    rank, expert, gate, prob, kept

`run_batches` reads a few documents at a time: their choices, tokens and routes by primary
key range (three plain scans, no per-row join), aligns them in numpy, and yields Arrow
batches. Memory holds one chunk, never the run. `parquet_stream` and `csv_stream` turn the
batches into the bytes of one Parquet or CSV file as they come.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from storage.errors import NotFound
from storage.schema import Document, Model, Run, Vocab

COLUMNS = (
    "document_id", "domain", "position", "token_id", "piece", "nll", "predicted", "layer",
    "entropy", "rank", "expert", "gate", "prob", "kept",
)  # fmt: skip
SCHEMA = pa.schema(
    [
        ("document_id", pa.int64()),
        ("domain", pa.dictionary(pa.int32(), pa.string())),
        ("position", pa.int32()),
        ("token_id", pa.int32()),
        ("piece", pa.string()),
        ("nll", pa.float32()),
        ("predicted", pa.int32()),
        ("layer", pa.int16()),
        ("entropy", pa.float32()),
        ("rank", pa.int16()),
        ("expert", pa.int16()),
        ("gate", pa.float32()),
        ("prob", pa.float32()),
        ("kept", pa.bool_()),
    ]
)
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
CHUNK_ROWS = 1 << 17  # choices per chunk of documents (about 10 MB of columns)


def _fetch(connection: Connection, sql: str, ids: Sequence[int], width: int) -> np.ndarray:
    """[rows, width] float64 of a query over the documents `ids` (`{marks}` in `sql`),
    streamed from the driver's tuples (no Row objects kept)."""
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    sql = sql.format(marks=", ".join(mark for _ in ids))
    rows = connection.exec_driver_sql(sql, tuple(ids)).fetchall()
    flat = np.fromiter(
        itertools.chain.from_iterable(rows), dtype=np.float64, count=len(rows) * width
    )
    return flat.reshape(len(rows), width)


def _chunks(documents: Sequence[tuple[int, int, int]]) -> Iterator[list[tuple[int, int, int]]]:
    """(id, domain index, choices) of each document, grouped into chunks of ~CHUNK_ROWS."""
    chunk: list[tuple[int, int, int]] = []
    rows = 0
    for document in documents:
        chunk.append(document)
        rows += document[2]
        if rows >= CHUNK_ROWS:
            yield chunk
            chunk, rows = [], 0
    if chunk:
        yield chunk


def _key(*columns: np.ndarray) -> np.ndarray:
    """One sortable int64 per row from (document, position[, layer]) columns."""
    key = columns[0].astype(np.int64)
    for column, bits in zip(columns[1:], (32, 16), strict=False):
        key = (key << bits) | column.astype(np.int64)
    return key


def run_batches(session: Session, run_id: int) -> Iterator[pa.RecordBatch]:
    """The run's rows (see the module docstring) as Arrow batches, in primary-key order."""
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    model = session.get(Model, run.model_id)
    assert model is not None
    n_layers, k = len(model.moe_layers or ()), model.top_k
    docs = session.execute(
        select(Document.id, Document.domain, Document.n_tokens)
        .where(Document.run_id == run_id)
        .order_by(Document.id)
    ).all()
    domains = sorted({d.domain for d in docs})
    domain_index = {name: i for i, name in enumerate(domains)}
    pieces = dict(
        session.execute(select(Vocab.token_id, Vocab.piece).where(Vocab.model_id == model.id)).all()
    )
    vocab = pa.array([pieces.get(i) for i in range(max(pieces, default=-1) + 1)], pa.string())
    connection = session.connection()
    documents = [(d.id, domain_index[d.domain], d.n_tokens * n_layers * k) for d in docs]
    for chunk in _chunks(documents):
        ids = [d[0] for d in chunk]
        choices = _fetch(
            connection,
            "SELECT document_id, position, layer, rank, expert, gate, prob, kept "
            "FROM route_choices WHERE document_id IN ({marks}) "
            "ORDER BY document_id, position, layer, rank",
            ids,
            8,
        )
        if not len(choices):
            continue
        tokens = _fetch(
            connection,
            "SELECT document_id, position, token_id, COALESCE(nll, 0), nll IS NULL, predicted "
            "FROM tokens WHERE document_id IN ({marks}) ORDER BY document_id, position",
            ids,
            6,
        )
        routes = _fetch(
            connection,
            "SELECT document_id, position, layer, entropy FROM routes "
            "WHERE document_id IN ({marks}) ORDER BY document_id, position, layer",
            ids,
            4,
        )
        doc, pos, layer = choices[:, 0], choices[:, 1], choices[:, 2]
        at_token = np.searchsorted(_key(tokens[:, 0], tokens[:, 1]), _key(doc, pos))
        at_route = np.searchsorted(
            _key(routes[:, 0], routes[:, 1], routes[:, 2]), _key(doc, pos, layer)
        )
        token_id = tokens[at_token, 2].astype(np.int32)
        nll = np.where(tokens[at_token, 4] > 0, np.nan, tokens[at_token, 3]).astype(np.float32)
        doc_ids = doc.astype(np.int64)
        # the chunk's documents are in id order, as are its rows: one lookup per row in numpy
        chunk_ids = np.asarray(ids, dtype=np.int64)
        chunk_domains = np.asarray([d[1] for d in chunk], dtype=np.int32)
        domain_codes = chunk_domains[np.searchsorted(chunk_ids, doc_ids)]
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(doc_ids),
                pa.DictionaryArray.from_arrays(pa.array(domain_codes), pa.array(domains)),
                pa.array(pos.astype(np.int32)),
                pa.array(token_id),
                vocab.take(pa.array(token_id)) if len(vocab) else pa.nulls(len(doc), pa.string()),
                pa.array(nll, from_pandas=True),
                pa.array(tokens[at_token, 5].astype(np.int32)),
                pa.array(layer.astype(np.int16)),
                pa.array(routes[at_route, 3].astype(np.float32)),
                pa.array(choices[:, 3].astype(np.int16)),
                pa.array(choices[:, 4].astype(np.int16)),
                pa.array(choices[:, 5].astype(np.float32)),
                pa.array(choices[:, 6].astype(np.float32)),
                pa.array(choices[:, 7] > 0),
            ],
            schema=SCHEMA,
        )


class _Sink:
    """A write-only file whose bytes are taken away as they are written."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._written = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def parquet_stream(batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    """One Parquet file, a row group per batch, yielded as its bytes are written."""
    sink = _Sink()
    with pq.ParquetWriter(sink, SCHEMA, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch)
            if data := sink.take():
                yield data
    yield sink.take()


def csv_stream(batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    """One CSV file (a header, then every row), yielded batch by batch."""
    sink = _Sink()
    plain = pa.schema([f.with_type(pa.string()) if f.name == "domain" else f for f in SCHEMA])
    # Arrow quotes every string value ("needed": any string may hold a comma or a quote);
    # the column names hold neither.
    options = pa_csv.WriteOptions(quoting_style="needed", quoting_header="none")
    with pa_csv.CSVWriter(sink, plain, write_options=options) as writer:
        for batch in batches:
            columns = [c.cast(pa.string()) if n == "domain" else c
                       for n, c in zip(batch.schema.names, batch.columns, strict=True)]  # fmt: skip
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=plain))
            if data := sink.take():
                yield data
    yield sink.take()

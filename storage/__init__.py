"""SQL persistence of routing traces (SQLAlchemy 2, Alembic); imports only `glam.trace`.

Where things are:
    db.py            engines (SQLite WAL pragmas, DATABASE_URL), sessions, migrations from code
    schema.py        catalogue and raw-row tables; schema_aggregates.py: the aggregate tables
    migrations/      Alembic environment and versions (`python -m storage upgrade|check`)
    aggregates.py    numpy: a trace -> the aggregate increments it contributes
    bulk.py          fast bulk writes (COPY on PostgreSQL, executemany on SQLite)
    ingest.py        register models and vocabularies, write runs, delete runs
    pipeline.py      corpus ingest on a writer thread, overlapped with the model
    scope.py         which runs/domains/layers a statistic covers, and which table answers
    queries.py       every routing statistic of DESIGN.md, with uniform baselines
    vocabulary.py    vocabulary specialisation; compare.py: router saturation (both
                     also exported by queries.py)
    runs.py          models, runs, documents, a document's tokens and routes (explorer)
    rows.py          fetched rows to numpy arrays, fast
    jobs.py          background job records
    errors.py        NotFound: what is missing, told apart from a bug's KeyError
    results.py       the plain typed results
"""

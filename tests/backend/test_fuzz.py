"""Schemathesis against the live OpenAPI schema: no operation answers with a 5xx.

A real `glamlab serve` on a free port (a tiny model, SQLite), every operation, a bounded
number of generated requests each. (Found: 64-bit overflow of ids in SQLite -> 500, now a
422 at the edge.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.ui import stack


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, model_dir):
    root = tmp_path_factory.mktemp("fuzz")
    database = f"sqlite:///{root / 'fuzz.sqlite'}"
    with stack.api_process(model_dir, database, root / "api.log", stack.free_port()) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_no_operation_answers_with_a_server_error(api_schema):
    failures = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 25  # every route of the API is in the schema

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), database=None)  # fmt: skip
        def check(case):
            response = case.call(timeout=60)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.query or ''} -> "
                    f"{response.status_code}: {response.text[:200]}"
                )

        check()
    assert not failures, "\n".join(failures[:10])

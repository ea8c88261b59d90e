"""Schemathesis against the live OpenAPI schema: no 5xx, and every answer is the documented one.

A real `glamlab serve` on a free port (a tiny model, SQLite, an API key configured, the built-in
corpus analysed on start), every operation of its `/openapi.json`, a bounded number of generated
requests each: valid requests (positive mode) and invalid ones (negative mode). Every response
goes through schemathesis's own checks: not a server error, a documented status code, a
documented content type, a body that validates against the declared schema, and (negative
mode) invalid data rejected.

Found by it: 64-bit overflow in SQLite of ids, and of a run's token offset and the statistics'
min_count (500s, now 422s at the edge); 422 bodies that carry FastAPI's list of field errors
where the schema declared a string; 400 for a body that is not UTF-8, undocumented; 503
(database down) undocumented on runs, jobs and statistics.
"""

from __future__ import annotations

import collections
import re
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.reliability import observations
from tests.ui import stack

# Per operation: enough to reach every documented status of most routes, bounded so the
# whole run (about 30 operations, some running the model) stays well under a minute.
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# The service as it runs on a shared machine: every /v1 route (writes, model compute, reads of
# stored texts) needs this key. Every generated request carries it, so the fuzzing reaches the
# routes behind it (a wrong or missing key is test_hostile's).
API_KEY = "fuzz-key"
# Invalid input must be refused; only asked of negative cases (a valid one may be a 404).
REJECTION = [*CONFORMANCE, negative_data_rejection]
# Ids that exist once the first-start job is done (its job and run are the first), so that
# routes behind an id answer with their documented success too, not only with 404.
EXISTING = {"run_id": 1, "job_id": 1, "layer": 1, "expert": 0}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, small_config, tokenizer, corpus_path):
    model_dir = stack.shared_model_dir(tmp_path_factory, small_config, tokenizer, corpus_path)
    root = tmp_path_factory.mktemp("fuzz")
    database = f"sqlite:///{root / 'fuzz.sqlite'}"
    log, port = root / "api.log", stack.free_port()
    with stack.api_process(model_dir, database, log, port, api_key=API_KEY) as url:
        # Statistics over stored runs answer more than "empty": let the first-start job finish.
        stack.wait_for_jobs(url, api_key=API_KEY)
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


def _passes(operation) -> list[tuple[GenerationMode, dict[str, int] | None]]:
    """Valid and invalid requests; first valid ones with existing ids, where it has ids."""
    passes = [(GenerationMode.POSITIVE, None), (GenerationMode.NEGATIVE, None)]
    names = re.findall(r"{(\w+)}", operation.path)
    if names and set(names) <= EXISTING.keys():
        passes.insert(0, (GenerationMode.POSITIVE, {name: EXISTING[name] for name in names}))
    return passes


def _fuzz(operation, mode, path_parameters, seen: collections.Counter, failures: dict[str, str]):
    checks = REJECTION if mode is GenerationMode.NEGATIVE else CONFORMANCE
    strategy = operation.as_strategy(
        generation_mode=mode, path_parameters=path_parameters, headers={"X-API-Key": API_KEY}
    )

    @given(case=strategy)
    @settings(max_examples=EXAMPLES[mode], deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck), database=None)  # fmt: skip
    def check(case):
        response = case.call(timeout=60)
        seen[response.status_code] += 1
        try:
            case.validate_response(response, checks=checks)
        except FailureGroup as group:  # collected, so one run reports every operation's
            for failure in group.exceptions:
                key = f"{operation.label} [{mode.value}] {failure.code} {failure.title}"
                failures.setdefault(key, f"{key}: {case.as_curl_command()}\n{failure.message}")

    try:
        check()
    except Unsatisfiable:
        # An operation without parameters or body (e.g. /healthz) has no invalid input.
        assert mode is GenerationMode.NEGATIVE, operation.label


def test_every_operation_answers_as_documented(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 25  # every route of the API is in the schema
    # Deletes last: the other operations' existing ids must still exist when they run.
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")

    started = time.perf_counter()
    per_operation: dict[str, dict[int, int]] = {}
    failures: dict[str, str] = {}  # distinct (operation, mode, failure) -> first example
    for operation in operations:
        seen: collections.Counter = collections.Counter()
        for mode, path_parameters in _passes(operation):
            _fuzz(operation, mode, path_parameters, seen, failures)
        per_operation[operation.label] = dict(sorted(seen.items()))

    statuses = collections.Counter()
    for seen in per_operation.values():
        statuses.update(seen)
    observations.record(
        "fuzz: every operation against the live schema",
        f"schemathesis {schemathesis.__version__} against a live `glamlab serve` "
        f"(SQLite): {len(operations)} operations, up to "
        f"{EXAMPLES[GenerationMode.POSITIVE]} valid and {EXAMPLES[GenerationMode.NEGATIVE]} "
        "invalid generated requests each (and valid ones naming an existing run, job, layer "
        "and expert); checks: not_a_server_error, status_code_conformance, "
        "content_type_conformance, response_schema_conformance, negative_data_rejection",
        {
            "operations": len(operations),
            "requests": sum(statuses.values()),
            "status codes seen": {str(code): n for code, n in sorted(statuses.items())},
            "5xx": sum(n for code, n in statuses.items() if code >= 500),
            "distinct non-conformances": len(failures),
            "seconds": round(time.perf_counter() - started, 1),
            "per operation": {
                label: " ".join(f"{code}x{n}" for code, n in seen.items())
                for label, seen in per_operation.items()
            },
        },
    )
    assert not failures, "\n\n".join(message[:800] for message in failures.values())

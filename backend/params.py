"""Bounds shared by every route's path and query parameters.

Ids are 64-bit in the database: a larger number must be a 422 at the edge, not an overflow
in the driver (so must any number that reaches SQL: offsets, minimum counts). Labels never
carry control characters (NUL breaks PostgreSQL text).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header
from pydantic import Field, StringConstraints

MAX_ID = 2**63 - 1
MAX_INDEX = 100_000  # layers and experts

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Index = Annotated[int, Field(ge=0, le=MAX_INDEX)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]

# A client's name for one write request (printable ASCII): the request stores its run at most
# once however often it is retried (e.g. after a 503 that left the commit in doubt).
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="Retry-safe writes: a request repeated with the same key (same texts, "
        "domains and parameters) returns the run stored the first time and stores nothing.",
    ),
]

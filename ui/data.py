"""The dashboard's reads, cached: every page gets its data through here.

Reads are cached for a few seconds (`st.cache_data`), long enough that a rerun of a page
(any widget change) does not hit the API again, short enough that new runs show up almost
at once. Writes go straight to `client()`, and `refresh()` drops the cached reads after one.
Failures are raised as ApiError and are never cached.
"""

from __future__ import annotations

import streamlit as st

from ui import schemas as s
from ui.client import POOLED, ApiClient, Scope

READ_TTL_S = 15
LIVE_TTL_S = 2  # job progress: fresh enough to watch a job advance
MAX_RUNS_LISTED = 500


@st.cache_resource
def client() -> ApiClient:
    """One client per dashboard process (configured by GLAMLAB_API_URL, GLAMLAB_API_KEY)."""
    return ApiClient.from_env()


def refresh() -> None:
    """Forget cached reads (after a write: a new run, a deleted run, a started job)."""
    st.cache_data.clear()


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def model_card() -> s.ModelCard:
    return client().model()


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def runs(limit: int = MAX_RUNS_LISTED) -> tuple[list[s.Run], bool]:
    """Newest runs (following the cursor), and whether there are more than `limit`."""
    found: list[s.Run] = []
    cursor = None
    while len(found) < limit:
        page = client().runs(limit=min(limit - len(found), 500), cursor=cursor)
        found += page.runs
        cursor = page.next_cursor
        if cursor is None:
            return found, False
    return found, True


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def run_document(run_id: int, offset: int) -> s.StoredDocument | None:
    documents = client().run_tokens(run_id, limit=1, offset=offset)
    return documents[0] if documents else None


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def jobs() -> list[s.Job]:
    return client().jobs()


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def load(scope: Scope) -> list[s.LayerLoadStats]:
    return client().load(scope)


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def balance(scope: Scope) -> s.BalanceStats:
    return client().balance(scope)


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def domains(scope: Scope) -> list[s.DomainSpecialization]:
    return client().domains(scope)


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def loss(scope: Scope) -> list[s.DomainLoss]:
    return client().loss(scope)


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def vocab(
    scope: Scope, expert: int, by: str, min_count: int, limit: int
) -> list[s.VocabSpecialization]:
    return client().vocab(scope, expert=expert, by=by, min_count=min_count, limit=limit)


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def coactivation(scope: Scope) -> list[s.Coactivation]:
    return client().coactivation(scope)


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def consecutive(scope: Scope) -> list[s.ConsecutiveRouting]:
    return client().consecutive(scope)


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def transitions(scope: Scope) -> list[s.Transitions]:
    return client().transitions(scope)


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def positions(scope: Scope, bucket: int) -> list[s.PositionDrops]:
    return client().positions(scope, bucket=bucket)


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def run_saturation(run_a: int, run_b: int, layers: tuple[int, ...]) -> list[s.RunSaturation]:
    return client().run_saturation(run_a, run_b, layers=layers)


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def expert(layer: int, expert: int, scope: Scope, min_count: int) -> s.ExpertProfile:
    return client().expert(layer, expert, scope, min_count=min_count)


def domain_names(scope: Scope = POOLED) -> list[str]:
    """Domains present in the store (for pickers)."""
    return [d.domain for d in loss(scope)]


@st.cache_data(ttl=READ_TTL_S, show_spinner=False)
def training_history(domains: tuple[str, ...] = ()) -> s.TrainingHistory:
    return client().training(domains)

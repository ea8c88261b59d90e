"""How pages report trouble: API errors as one clear message, empty data as what to do next.

Pages never let an ApiError escape (Streamlit would print a traceback); they call reads
through `need` (stop the page) or `attempt` (skip one section).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

import streamlit as st

from ui.client import ApiError

P = ParamSpec("P")
T = TypeVar("T")

TOKEN_EXPLORER = "pages/token_explorer.py"
JOBS = "pages/jobs.py"


def show_error(action: str, error: ApiError) -> None:
    hint = ""
    if error.status == 401:
        hint = " Set GLAMLAB_API_KEY for the dashboard to the API's key."
    st.error(f"{action} failed: {error}.{hint}", icon=":material/error:")


def need(action: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)`, or show why it failed and stop the page (it cannot go on)."""
    try:
        return fn(*args, **kwargs)
    except ApiError as error:
        show_error(action, error)
        st.stop()
        raise  # unreachable: st.stop raises; keeps type checkers sure we never return None


def attempt(action: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
    """`fn(*args, **kwargs)`, or show why it failed and return None (the page goes on)."""
    try:
        return fn(*args, **kwargs)
    except ApiError as error:
        show_error(action, error)
        return None


def empty(message: str, *, explore: bool = True, jobs: bool = True) -> None:
    """An empty state: what is missing and where to go to fill it."""
    st.info(message, icon=":material/info:")
    columns = st.columns(4)
    if explore:
        columns[0].page_link(TOKEN_EXPLORER, label="Analyse a text", icon=":material/search:")
    if jobs:
        columns[1].page_link(JOBS, label="Analyse a corpus", icon=":material/play_arrow:")


def no_routing_data() -> NoReturn:
    """The standard empty state of the statistics pages, then stop."""
    empty(
        "No routing statistics yet for this selection. Analyse a text in the token explorer "
        "(with 'store' on) or analyse the built-in corpus on the Jobs page, then come back."
    )
    st.stop()

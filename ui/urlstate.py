"""A page's view in its URL: the widgets that say what is shown keep their value in the query
string, so that a reload or a pasted link opens the same view.

Each shared widget reads its first value from the URL (`?profile_layer=3&profile_expert=12`,
a list as a repeated key: `?training_domains=code-c&training_domains=legal`) and writes its
current value back after every run. A value the URL names that the widget does not offer
(a stale link, a hand-edited URL) is ignored: the widget starts from its own default.

With a key, a Streamlit widget's identity is its key, so the default taken from the URL
only matters on the run that creates the widget; after that the widget keeps its state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import streamlit as st

T = TypeVar("T")


def _match(raw: str, options: Sequence[T]) -> T | None:
    for option in options:
        if str(option) == raw:
            return option
    return None


def index(key: str, options: Sequence[Any], default: int = 0) -> int:
    """The index of the option the URL names for `key` (for selectbox and radio)."""
    raw = st.query_params.get(key)
    if raw is not None:
        for i, option in enumerate(options):
            if str(option) == raw:
                return i
    return default


def option(key: str, options: Sequence[T], default: T) -> T:
    """The option the URL names for `key` (for segmented_control and select_slider)."""
    raw = st.query_params.get(key)
    found = None if raw is None else _match(raw, options)
    return default if found is None else found


def options(key: str, choices: Sequence[T], default: Sequence[T]) -> list[T]:
    """The options the URL names for `key` (for multiselect); unknown ones are dropped."""
    if key not in st.query_params:
        return list(default)
    found = [_match(raw, choices) for raw in st.query_params.get_all(key)]
    return [value for value in found if value is not None]


def number(key: str, default: T, cast: Callable[[str], T], low: Any = None, high: Any = None) -> T:
    """The number the URL gives for `key` (for number_input), within [low, high]."""
    raw = st.query_params.get(key)
    if raw is None:
        return default
    try:
        value = cast(raw)
    except ValueError:
        return default
    if (low is not None and value < low) or (high is not None and value > high):
        return default
    return value


def remember(key: str, value: Any) -> None:
    """Write the widget's current value into the URL (None or an empty list: remove it)."""
    if value is None or (isinstance(value, list | tuple) and not value):
        if key in st.query_params:
            del st.query_params[key]
        return
    encoded: str | list[str] = (
        [str(v) for v in value] if isinstance(value, list | tuple) else str(value)
    )
    current = st.query_params.get_all(key)
    if current != (encoded if isinstance(encoded, list) else [encoded]):
        st.query_params[key] = encoded

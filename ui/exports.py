"""Take it away: every chart downloadable as PNG and SVG, every table as CSV.

`chart` and `table` draw the element and, under it, small download buttons. The files are
made only when a button is clicked (Streamlit calls the data callable then, off the page's
run), so a page with ten charts does not render ten PNGs on every rerun. PNG and SVG come
from Altair's own export (vl-convert: the Vega-Lite spec rendered without a browser), so
the file is the chart the page shows, at twice the screen's resolution for print.
"""

from __future__ import annotations

import io
import re

import altair as alt
import pandas as pd
import streamlit as st

PNG_SCALE = 2.0  # print resolution


def file_stem(name: str) -> str:
    """A file name from a chart or table name: lowercase words joined by hyphens."""
    stem = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return stem[:80] or "chart"


def png_bytes(chart: alt.TopLevelMixin) -> bytes:
    buffer = io.BytesIO()
    chart.save(buffer, format="png", scale_factor=PNG_SCALE)
    return buffer.getvalue()


def svg_text(chart: alt.TopLevelMixin) -> str:
    buffer = io.StringIO()
    chart.save(buffer, format="svg")
    return buffer.getvalue()


def csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def chart(chart: alt.TopLevelMixin, name: str, *, where=st, **altair_kwargs) -> object:
    """`where.altair_chart(chart)` and PNG / SVG downloads named after `name` (unique on
    the page: it keys the buttons). Returns what `altair_chart` returns (a selection event
    when `on_select` is given)."""
    event = where.altair_chart(chart, **altair_kwargs)
    stem = file_stem(name)
    row = where.container(horizontal=True, gap="small")
    row.download_button(
        "PNG", lambda: png_bytes(chart), file_name=f"{stem}.png", mime="image/png",
        key=f"png-{stem}", on_click="ignore", type="tertiary", icon=":material/download:",
    )  # fmt: skip
    row.download_button(
        "SVG", lambda: svg_text(chart), file_name=f"{stem}.svg", mime="image/svg+xml",
        key=f"svg-{stem}", on_click="ignore", type="tertiary", icon=":material/download:",
    )  # fmt: skip
    return event


def table(frame: pd.DataFrame, name: str, *, where=st, **dataframe_kwargs) -> object:
    """`where.dataframe(frame)` and a CSV download named after `name` (unique on the page)."""
    shown = where.dataframe(frame, **dataframe_kwargs)
    stem = file_stem(name)
    where.download_button(
        "CSV", lambda: csv_text(frame), file_name=f"{stem}.csv", mime="text/csv",
        key=f"csv-{stem}", on_click="ignore", type="tertiary", icon=":material/download:",
    )  # fmt: skip
    return shown

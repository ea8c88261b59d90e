"""Downloads: the chart's own PNG and SVG, a table's CSV, file names from titles."""

from __future__ import annotations

import io

import pandas as pd

from tests.ui import samples
from ui import charts, exports


def test_a_chart_exports_as_png_and_svg_of_the_same_spec():
    chart = charts.drop_rate_bars(samples.balance_stats().routing)
    png = exports.png_bytes(chart)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png[16:20], "big")  # IHDR: twice the chart's own width
    svg = exports.svg_text(chart)
    assert svg.lstrip().startswith("<svg") and "Dropped by capacity" in svg
    assert width > 2 * 100


def test_a_table_exports_as_csv_that_reads_back_the_same():
    frame = pd.DataFrame({"layer": ["1", "3"], "CV": [0.5, 0.25], "piece": ["a,b", '"q"']})
    back = pd.read_csv(io.StringIO(exports.csv_text(frame)), dtype={"layer": str})
    pd.testing.assert_frame_equal(back, frame)


def test_file_names_are_plain_words_joined_by_hyphens():
    assert (
        exports.file_stem("Layer 3: share of load (uniform 1.6%)")
        == "layer-3-share-of-load-uniform-1-6"
    )
    assert exports.file_stem("…") == "chart"

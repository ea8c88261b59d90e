"""One colour per expert, shared by the charts and the coloured token text.

The same expert must have the same colour in the token explorer's text and its grid, so
both take their colours from here rather than from a chart library's default scheme.
"""

from __future__ import annotations

import colorsys

# Tableau 20 (light and dark pairs reordered so that neighbouring experts differ strongly).
_TABLEAU20 = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7",
    "#9c755f", "#bab0ac", "#a0cbe8", "#ffbe7d", "#8cd17d", "#ff9d9a", "#d4a6c8", "#f1ce63",
    "#86bcb6", "#fabfd2", "#d7b5a6", "#79706e",
)  # fmt: skip
_GOLDEN_ANGLE = 137.508  # degrees: successive hues as far apart as possible


def expert_colours(num_experts: int) -> list[str]:
    """`num_experts` distinct hex colours; expert e is drawn in colour e."""
    if num_experts <= len(_TABLEAU20):
        return list(_TABLEAU20[:num_experts])
    # Beyond 20 categories no palette is distinguishable; spread hues and alternate lightness.
    colours = []
    for e in range(num_experts):
        hue = (e * _GOLDEN_ANGLE % 360) / 360
        r, g, b = colorsys.hls_to_rgb(hue, 0.55 if e % 2 else 0.7, 0.6)
        colours.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return colours


def text_colour(background: str) -> str:
    """Black or white, whichever reads better on `background` (#rrggbb)."""
    r, g, b = (int(background[i : i + 2], 16) / 255 for i in (1, 3, 5))
    # WCAG relative luminance; above 0.179 black text has more contrast than white.
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    luminance = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return "#000000" if luminance > 0.179 else "#ffffff"

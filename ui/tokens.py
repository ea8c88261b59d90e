"""Tokens as coloured, escaped HTML: the token explorer's text view.

Token pieces are untrusted input (anyone can analyse any text), so every piece and every
tooltip passes through `html.escape` here, the only place the dashboard builds HTML from
data; `st.html` then sanitises once more. A token like `<img src=x onerror=alert(1)>`
shows as text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from ui.palette import expert_colours, text_colour
from ui.schemas import Route, Token

NEWLINE_PIECE = "<0x0A>"
BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
SPACE_MARK = "\u2581"  # SentencePiece's word-boundary mark ▁
DROPPED_TOP1_STYLE = "outline:2px dashed #d62728;outline-offset:-1px;"
DROPPED_TOP2_STYLE = "text-decoration:underline dotted #d62728 2px;"


def display_piece(piece: str | None) -> str:
    """A piece as a reader would write it (not escaped): ▁ as a space, newline as ↵.

    SentencePiece's byte fallback spells characters missing from the vocabulary as
    `<0xHH>`; printable ASCII ones are shown as the character. Other bytes (parts of a
    multi-byte UTF-8 character) stay spelt out: alone they are no character.
    """
    if piece is None:
        return "\u2205"  # ∅: the vocabulary has no piece for this id
    if piece == NEWLINE_PIECE:
        return "\u21b5"
    if match := BYTE_PIECE.fullmatch(piece):
        char = chr(int(match.group(1), 16))
        return char if char.isascii() and char.isprintable() else piece
    return piece.replace(SPACE_MARK, " ")


def route_at(token: Token, layer: int) -> Route | None:
    """The token's routing at MoE layer `layer`, if it has one."""
    return next((r for r in token.routes if r.layer == layer), None)


def describe_token(token: Token) -> str:
    """Plain-text summary of a token's routing at every layer (for tooltips)."""
    lines = [f"position {token.position} · {display_piece(token.piece)!r} (id {token.token_id})"]
    for route in token.routes:
        choices = []
        for rank in range(2):
            state = "kept" if route.kept[rank] else "DROPPED"
            choices.append(
                f"top-{rank + 1} e{route.experts[rank]} gate {route.gates[rank]:.2f} "
                f"p {route.probs[rank]:.2f} {state}"
            )
        lines.append(f"layer {route.layer}: " + " | ".join(choices))
        lines.append(f"  router entropy {route.entropy:.2f} nats")
    nll = "n/a (last token)" if token.nll is None else f"{token.nll:.2f}"
    lines.append(f"next-token nll {nll} · predicted {display_piece(token.predicted_piece)!r}")
    return "\n".join(lines)


def _span(token: Token, layer: int, colours: Sequence[str]) -> str:
    route = route_at(token, layer)
    text = display_piece(token.piece)
    style = "border-radius:3px;padding:1px 0;"
    dropped = ""
    expert = ""
    if route is not None:
        expert = str(route.experts[0])
        background = colours[route.experts[0] % len(colours)]
        style += f"background:{background};color:{text_colour(background)};"
        if not route.kept[0]:
            style += DROPPED_TOP1_STYLE
            dropped = "top1"
        elif not route.kept[1]:
            style += DROPPED_TOP2_STYLE
            dropped = "top2"
    span = (
        f'<span class="glam-token" data-position="{token.position}" data-expert="{expert}" '
        f'data-dropped="{dropped}" title="{html.escape(describe_token(token), quote=True)}" '
        f'style="{style}">{html.escape(text)}</span>'
    )
    return span + ("<br>" if token.piece == NEWLINE_PIECE else "")


def tokens_html(tokens: Sequence[Token], layer: int, num_experts: int) -> str:
    """The tokens as one block of spans coloured by their top-1 expert at `layer`.

    A dashed red outline marks a token whose top-1 choice was dropped by capacity; a dotted
    red underline one whose top-2 choice was dropped. Hovering shows every layer's routing.
    """
    colours = expert_colours(num_experts)
    spans = "".join(_span(token, layer, colours) for token in tokens)
    return (
        '<div class="glam-tokens" style="line-height:2.1;white-space:pre-wrap;'
        'font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:0.95rem">'
        f"{spans}</div>"
    )


def legend_html(num_experts: int) -> str:
    """Colour chips naming each expert, plus the two drop markers."""
    colours = expert_colours(num_experts)
    chips = "".join(
        f'<span style="background:{c};color:{text_colour(c)};border-radius:3px;'
        f'padding:0 4px;margin-right:3px">e{e}</span>'
        for e, c in enumerate(colours)
    )
    markers = (
        f'<span style="{DROPPED_TOP1_STYLE}padding:0 4px;margin:0 3px">top-1 dropped</span>'
        f'<span style="{DROPPED_TOP2_STYLE}padding:0 4px">top-2 dropped</span>'
    )
    return f'<div style="font-size:0.8rem;line-height:2">{chips} {markers}</div>'

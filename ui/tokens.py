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
DROPPED_LATER_STYLE = "text-decoration:underline dotted #d62728 2px;"


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


def piece_bytes(piece: str | None) -> bytes:
    """The bytes a piece stands for: its text in UTF-8 (▁ as a space), `<0xHH>` as byte HH.
    A piece may mix both (`▁<0xE6>`: a space and the lead byte of a character)."""
    out = bytearray()
    for part in re.split(r"(<0x[0-9A-Fa-f]{2}>)", (piece or "").replace(SPACE_MARK, " ")):
        if match := BYTE_PIECE.fullmatch(part):
            out.append(int(match.group(1), 16))
        else:
            out += part.encode()
    return bytes(out)


def _spells_nothing_alone(piece: str | None) -> bool:
    """Whether the piece holds a byte that is no character on its own (part of a
    multi-byte UTF-8 character spelt over several tokens)."""
    if not piece or not BYTE_PIECE.search(piece):
        return False
    try:
        piece_bytes(piece).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


MAX_SPELLING = 4  # a UTF-8 character is at most 4 bytes, so at most 4 tokens


def spelled_groups(tokens: Sequence[Token]) -> list[tuple[list[Token], str | None]]:
    """The tokens in display units: tokens whose bytes together spell characters that no
    one of them spells alone (SentencePiece's `<0xHH>` byte fallback, or a byte-level BPE
    token cut inside a character) become one unit with that text; every other token is a
    unit alone (None: show its own piece)."""
    units: list[tuple[list[Token], str | None]] = []
    index = 0
    while index < len(tokens):
        if _spells_nothing_alone(tokens[index].piece):
            joined = b""
            for end in range(index, min(index + MAX_SPELLING, len(tokens))):
                joined += piece_bytes(tokens[end].piece)
                if end == index:
                    continue
                try:
                    text = joined.decode("utf-8")
                except UnicodeDecodeError:
                    continue
                units.append((list(tokens[index : end + 1]), text))
                index = end + 1
                break
            else:
                units.append(([tokens[index]], None))
                index += 1
            continue
        units.append(([tokens[index]], None))
        index += 1
    return units


def vocab_label(piece: str | None) -> str:
    """A vocabulary entry as a reader can tell it apart: the piece as text, and a piece
    that is only part of a character (a lone byte) said to be one."""
    if _spells_nothing_alone(piece):
        return f"{display_piece(piece)} (part of a character)"
    return repr(display_piece(piece))


def pieces_text(pieces: Sequence[str | None]) -> str:
    """Pieces as the text they spell (for contexts and exports): byte runs merged into their
    characters, the other pieces as `display_piece` shows them."""
    tokens = [Token.model_construct(piece=p) for p in pieces]
    return "".join(
        display_piece(unit[0].piece) if char is None else char
        for unit, char in spelled_groups(tokens)
    )


def route_at(token: Token, layer: int) -> Route | None:
    """The token's routing at MoE layer `layer`, if it has one."""
    return next((r for r in token.routes if r.layer == layer), None)


def describe_token(token: Token) -> str:
    """Plain-text summary of a token's routing at every layer (for tooltips)."""
    lines = [f"position {token.position} · {display_piece(token.piece)!r} (id {token.token_id})"]
    for route in token.routes:
        choices = []
        for rank in range(len(route.experts)):
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


def _span(unit: list[Token], char: str | None, layer: int, colours: Sequence[str]) -> str:
    token = unit[0]  # a spelt character takes the routing of its first byte
    route = route_at(token, layer)
    text = display_piece(token.piece) if char is None else char
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
        elif not all(route.kept[1:]):
            style += DROPPED_LATER_STYLE
            dropped = "later"
    title = "\n\n".join(describe_token(t) for t in unit)
    if char is not None:
        pieces = "".join(t.piece or "" for t in unit)
        title = f"{char!r} spelt in {len(unit)} byte tokens {pieces}\n\n{title}"
    span = (
        f'<span class="glam-token" data-position="{token.position}" data-expert="{expert}" '
        f'data-dropped="{dropped}" data-tokens="{len(unit)}" '
        f'title="{html.escape(title, quote=True)}" style="{style}">{html.escape(text)}</span>'
    )
    return span + ("<br>" if token.piece == NEWLINE_PIECE else "")


def tokens_html(tokens: Sequence[Token], layer: int, num_experts: int) -> str:
    """The tokens as one block of spans coloured by their top-1 expert at `layer`; byte
    tokens that spell one character show as that character (the bytes on hover).

    A dashed red outline marks a token whose top-1 choice was dropped by capacity; a dotted
    red underline one that kept its top-1 but lost a later choice. Hovering shows every
    layer's routing.
    """
    colours = expert_colours(num_experts)
    spans = "".join(_span(unit, char, layer, colours) for unit, char in spelled_groups(tokens))
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
        f'<span style="{DROPPED_LATER_STYLE}padding:0 4px">a later choice dropped</span>'
    )
    return f'<div style="font-size:0.8rem;line-height:2">{chips} {markers}</div>'

"""Coloured token text: escaped, coloured by the chosen layer's top-1, drops marked."""

from __future__ import annotations

import html
import re

from tests.ui import samples
from ui import schemas as s
from ui.palette import expert_colours, text_colour
from ui.tokens import display_piece, legend_html, pieces_text, tokens_html, vocab_label

XSS = "<img src=x onerror=alert(1)>\"'&"


def spans(fragment: str) -> list[dict[str, str]]:
    """Each token span's attributes and (unescaped) text."""
    out = []
    for attrs, text in re.findall(r'<span class="glam-token" ([^>]*)>(.*?)</span>', fragment):
        fields = dict(re.findall(r'([\w-]+)="([^"]*)"', attrs))
        fields["text"] = html.unescape(text)
        out.append(fields)
    return out


def test_pieces_read_as_text():
    assert display_piece("\u2581the") == " the"
    assert display_piece("<0x0A>") == "\u21b5"
    assert display_piece("<0x3C>") == "<"  # byte fallback of a printable ASCII character
    assert display_piece("<0xE3>") == "<0xE3>"  # a lone UTF-8 byte is no character
    assert display_piece(None) == "\u2205"


def test_untrusted_pieces_are_escaped_in_text_and_tooltip():
    token = samples.token(0, XSS, [samples.route(1, 0, 1)])
    fragment = tokens_html([token], layer=1, num_experts=4)
    assert "<img" not in fragment and "onerror=alert(1)>" not in fragment
    [span] = spans(fragment)
    assert span["text"] == XSS  # shown exactly as typed...
    assert XSS.replace('"', "&quot;").replace("'", "&#x27;") not in span["title"]
    assert repr(XSS) in html.unescape(span["title"])  # ...and named in the tooltip


def test_tokens_take_the_colour_of_their_top1_expert_at_the_chosen_layer():
    toks = samples.tokens()
    colours = expert_colours(4)
    at_1 = spans(tokens_html(toks, layer=1, num_experts=4))
    at_3 = spans(tokens_html(toks, layer=3, num_experts=4))
    assert [t["data-expert"] for t in at_1] == ["0", "2", "3"]
    assert [t["data-expert"] for t in at_3] == ["2", "1", "0"]
    assert f"background:{colours[2]};color:{text_colour(colours[2])}" in at_3[0]["style"]


def test_drops_are_marked_on_the_tokens():
    at_1 = spans(tokens_html(samples.tokens(), layer=1, num_experts=4))
    assert [t["data-dropped"] for t in at_1] == ["", "top1", "later"]
    assert "outline:2px dashed" in at_1[1]["style"]
    assert "underline dotted" in at_1[2]["style"]
    at_3 = spans(tokens_html(samples.tokens(), layer=3, num_experts=4))
    assert [t["data-dropped"] for t in at_3] == ["", "", ""]


def test_the_tooltip_gives_every_choice_at_every_layer():
    title = html.unescape(spans(tokens_html(samples.tokens(), 1, 4))[1]["title"])
    assert "layer 1: top-1 e2 gate 0.00 p 0.50 DROPPED | top-2 e0 gate 0.40 p 0.30 kept" in title
    assert "layer 3: top-1 e1" in title
    assert "router entropy 1.20 nats" in title
    assert "next-token nll 2.00" in title and "predicted ' the'" in title


def test_a_newline_piece_breaks_the_line():
    fragment = tokens_html(samples.tokens(), 1, 4)
    assert fragment.endswith("</span><br></div>")


def test_a_token_without_routing_at_the_layer_is_left_uncoloured():
    token = s.Token(
        position=0, token_id=1, piece="a", nll=None, predicted=1, predicted_piece="a", routes=[]
    )
    [span] = spans(tokens_html([token], layer=1, num_experts=4))
    assert span["data-expert"] == "" and "background" not in span["style"]


def test_the_legend_names_every_expert_in_its_colour():
    legend = legend_html(3)
    for e, colour in enumerate(expert_colours(3)):
        assert f"background:{colour}" in legend and f">e{e}</span>" in legend


def test_byte_tokens_that_spell_a_character_show_as_it_with_the_bytes_on_hover():
    pieces = ["\u2581x", "<0xE5>", "<0x84>", "<0x84>", "<0xE3>", "<0x41>"]  # x 億, a lone byte, A
    toks = [
        samples.token(i, p, [samples.route(1, i % 4, (i + 1) % 4)]) for i, p in enumerate(pieces)
    ]
    at_1 = spans(tokens_html(toks, layer=1, num_experts=4))
    assert [t["text"] for t in at_1] == [" x", "億", "<0xE3>", "A"]
    assert [t["data-tokens"] for t in at_1] == ["1", "3", "1", "1"]
    assert [t["data-position"] for t in at_1] == ["0", "1", "4", "5"]
    assert at_1[1]["data-expert"] == "1"  # the routing of the character's first byte
    title = html.unescape(at_1[1]["title"])
    assert "spelt in 3 byte tokens <0xE5><0x84><0x84>" in title
    assert all(f"position {p} " in title for p in (1, 2, 3))


def test_an_incomplete_or_invalid_byte_run_stays_spelt_out():
    for pieces in (["<0xE5>", "<0x84>"], ["<0xE5>", "<0x41>", "<0x84>"], ["<0xC0>", "<0x80>"]):
        toks = [samples.token(i, p, [samples.route(1, 0, 1)]) for i, p in enumerate(pieces)]
        got = [t["text"] for t in spans(tokens_html(toks, layer=1, num_experts=4))]
        assert got == [display_piece(p) for p in pieces]


def test_byte_level_bpe_tokens_cut_inside_a_character_are_merged_too():
    # "▁日" split as "▁<0xE6>" + "<0x97><0xA5>" (a byte-level BPE cut), then "本" whole
    pieces = ["\u2581<0xE6>", "<0x97><0xA5>", "本"]
    toks = [samples.token(i, p, [samples.route(1, 0, 1)]) for i, p in enumerate(pieces)]
    at_1 = spans(tokens_html(toks, layer=1, num_experts=4))
    assert [t["text"] for t in at_1] == [" 日", "本"]
    assert [t["data-tokens"] for t in at_1] == ["2", "1"]


def test_contexts_and_vocabulary_lists_show_text_not_bytes():
    assert pieces_text(["\u2581x", "<0xE5>", "<0x84>", "<0x84>", "<0x0A>"]) == " x億↵"
    assert vocab_label("<0x9F>") == "<0x9F> (part of a character)"
    assert vocab_label("\u2581the") == "' the'"

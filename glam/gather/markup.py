"""Extractors for marked-up text: roff (man pages, through groff), HTML and XML.

Each takes a `SourceFile` and its options and yields `Piece`s of plain text. Markup is read by
its own parser (groff's formatter, the standard library's `html.parser` and `ElementTree`),
never by regular expressions.
"""

from __future__ import annotations

import html.parser
import io
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

from glam.gather.files import SourceFile
from glam.gather.pieces import ExtractError, Piece, decompressed

# groff as `man` runs it, but one long line per paragraph (no filling to 80 columns, which
# would break CJK sentences into lines), left-adjusted (no justification spaces), no
# hyphenation, no page breaks and no terminal escapes.
_GROFF = ["groff", "-k", "-Tutf8", "-mandoc", "-P-cbou", "-rLL=2000n", "-dAD=l", "-rHY=0",
          "-rcR=1"]  # fmt: skip
_SPACES = re.compile(r"[ \t\u00a0]+")


def roff(file: SourceFile, options: dict[str, Any]) -> Iterator[Piece]:
    """A man page as `man` would show it, without its running header and footer."""
    source = decompressed(file)
    if source.lstrip().startswith(b".so "):
        return  # a link to another page, which is read in its own right
    try:
        done = subprocess.run(_GROFF, input=source, capture_output=True, timeout=120, check=False)
    except FileNotFoundError:
        raise ExtractError("groff is not installed (apt-get install groff-base)") from None
    lines = [line.rstrip() for line in done.stdout.decode("utf-8", "replace").splitlines()]
    body = [i for i, line in enumerate(lines) if line.strip()]
    if len(body) < 3:
        return
    # Body text is indented by man's 7 columns; deeper indents keep their depth beyond that.
    text = re.sub(r"^ {1,7}", "", "\n".join(lines[body[0] + 1 : body[-1]]), flags=re.MULTILINE)
    yield Piece(re.sub(r"\n{3,}", "\n\n", text).strip("\n"))


# --- HTML ---------------------------------------------------------------------------------

_BLOCKS = frozenset(
    [
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "li",
        "dt",
        "dd",
        "td",
        "th",
        "tr",
        "pre",
        "div",
        "br",
        "blockquote",
        "caption",
        "table",
        "ul",
        "ol",
        "dl",
        "section",
        "article",
        "header",
        "footer",
        "figcaption",
    ]
)
_NEVER_TEXT = frozenset(
    ["script", "style", "head", "nav", "aside", "noscript", "template", "button", "input", "select"]
)
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    ]
)


class _TextParser(html.parser.HTMLParser):
    def __init__(self, root_id: str | None, skip_ids: set[str], skip_classes: set[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.root_id, self.skip_ids, self.skip_classes = root_id, skip_ids, skip_classes
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, skipped, inside the root)
        self.paragraphs: list[str] = []
        self.current: list[str] = []
        self.lang: str | None = None
        self.pre = 0

    def _state(self) -> tuple[bool, bool]:
        return self.stack[-1][1:] if self.stack else (False, self.root_id is None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "html" and attributes.get("lang"):
            self.lang = attributes["lang"]
        if tag in _BLOCKS:
            self._flush()
        if tag in _VOID:
            return
        skipped, inside = self._state()
        classes = set((attributes.get("class") or "").split())
        skipped = skipped or tag in _NEVER_TEXT or "hidden" in attributes
        skipped = skipped or bool(classes & self.skip_classes)
        skipped = skipped or attributes.get("id") in self.skip_ids
        inside = inside or (self.root_id is not None and attributes.get("id") == self.root_id)
        self.stack.append((tag, skipped, inside))
        self.pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or not any(t == tag for t, _, _ in self.stack):
            return  # a stray end tag
        while self.stack:
            popped = self.stack.pop()[0]
            self.pre -= popped == "pre"
            if popped == tag:
                break
        if tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        skipped, inside = self._state()
        if inside and not skipped:
            self.current.append(data if self.pre else _SPACES.sub(" ", data.replace("\n", " ")))

    def _flush(self) -> None:
        text = "".join(self.current)
        self.current = []
        text = text.strip("\n") if self.pre else text.strip()
        if text:
            self.paragraphs.append(text)


def html_text(file: SourceFile, options: dict[str, Any]) -> Iterator[Piece]:
    """The text of an HTML page, one paragraph per block element.

    Options: `root_id` (only the element with this id, e.g. a help page's display area),
    `skip_ids` and `skip_classes` (page chrome), `min_paragraph_chars`.
    """
    parser = _TextParser(
        options.get("root_id"), set(options.get("skip_ids", ())),
        set(options.get("skip_classes", ())),
    )  # fmt: skip
    parser.feed(decompressed(file).decode("utf-8", "replace"))
    parser.close()
    parser._flush()
    shortest = options.get("min_paragraph_chars", 1)
    paragraphs = [p for p in parser.paragraphs if len(p) >= shortest]
    if paragraphs:
        yield Piece("\n\n".join(paragraphs), lang=parser.lang)


# --- XML ----------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def xml_text(file: SourceFile, options: dict[str, Any]) -> Iterator[Piece]:
    """One document per `unit` element (a chapter, a book) of an XML file.

    Options: `unit` (element name), `skip` (elements whose text is not read, e.g. notes),
    `breaks` (elements that start a new line, e.g. verses), `delete` (characters removed,
    e.g. the morpheme separator `/` of the Hebrew Bible), `id` (the unit's attribute that
    names it in the source).
    """
    unit = options["unit"]
    skip, breaks = set(options.get("skip", ())), set(options.get("breaks", ()))
    delete = str.maketrans("", "", options.get("delete", ""))
    id_attribute = options.get("id")

    def text_of(element: ET.Element) -> str:
        parts = ["\n"] if _local(element.tag) in breaks else []
        if _local(element.tag) not in skip:
            parts.append(element.text or "")
            for child in element:
                parts.append(text_of(child))
        parts.append(element.tail or "")
        return "".join(parts)

    stream = io.BytesIO(decompressed(file))
    count = 0
    try:
        for _, element in ET.iterparse(stream, events=("end",)):
            if _local(element.tag) != unit:
                continue
            count += 1
            body = text_of(element).translate(delete)
            name = element.get(id_attribute) if id_attribute else None
            element.clear()  # a whole Bible need not stay in memory
            lines = [_SPACES.sub(" ", line).strip() for line in body.replace("\r", "").split("\n")]
            text = "\n".join(line for line in lines if line)
            if text:
                yield Piece(text, suffix=f"#{name or count}")
    except ET.ParseError as e:
        raise ExtractError(f"not well-formed XML ({e})") from None

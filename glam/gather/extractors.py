"""Extractors: a file of a package in, plain-text documents (`Piece`s) out.

`EXTRACTORS` maps the names the manifest uses to functions `(SourceFile, options) -> Piece*`.
Each format is read by the standard library's parser for it (json, gettext, yaml via PyYAML,
gzip) or by its documented layout (dictd's index, WordNet's data files); marked-up text is
in `glam.gather.markup`.
"""

from __future__ import annotations

import gettext
import io
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from glam.gather.files import SourceFile
from glam.gather.markup import html_text, roff, xml_text
from glam.gather.pieces import ExtractError, Piece, decode, decompressed

Extractor = Callable[[SourceFile, dict[str, Any]], Iterator[Piece]]
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)


def plain_text(file: SourceFile, options: dict[str, Any]) -> Iterator[Piece]:
    """A text file as it is: source code, reST, metamath.

    Options: `encoding`; `max_line_chars` (a file with a longer line is minified or generated,
    not text worth learning: skipped); `front_matter` (drop a leading YAML block, as the
    licence texts of scancode carry).
    """
    text = decode(decompressed(file), options.get("encoding", "utf-8"))
    text = text.replace("\r\n", "\n")
    if options.get("front_matter"):
        text = _FRONT_MATTER.sub("", text, count=1)
    longest = options.get("max_line_chars")
    if longest and any(len(line) > longest for line in text.splitlines()):
        return
    if text.strip():
        yield Piece(text.strip("\n"))


def json_poems(file: SourceFile, options: dict[str, Any]) -> Iterator[Piece]:
    """Every object with a list of lines under one of the `body` keys, as one poem each.

    A poem is its title, its author and its lines; a file's poems make one document,
    separated by blank lines (so the poem is the paragraph that duplicate removal sees).
    """
    try:
        data = json.loads(decompressed(file))
    except json.JSONDecodeError as e:
        raise ExtractError(f"malformed JSON ({e.msg}, line {e.lineno})") from None
    body_keys = options.get("body", ["paragraphs"])
    head_keys = options.get("head", ["title", "author"])
    poems: list[str] = []

    def visit(node: object) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item)
        elif isinstance(node, dict):
            lines = next((node[k] for k in body_keys if isinstance(node.get(k), list)), None)
            if lines is None:
                for value in node.values():
                    visit(value)
                return
            head = [str(node[k]) for k in head_keys if isinstance(node.get(k), str) and node[k]]
            text = "\n".join([*head, *(str(line) for line in lines if str(line).strip())])
            if lines:
                poems.append(text)

    visit(data)
    if poems:
        yield Piece("\n\n".join(poems))


_DICTD_DIGITS = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
}


def _dictd_number(text: str) -> int:
    value = 0
    for c in text:
        value = value * 64 + _DICTD_DIGITS[c]
    return value


def dictd(file: SourceFile, options: dict[str, Any]) -> Iterator[Piece]:
    """A dictd dictionary (`name.index` beside `name.dict.dz`), one document per initial.

    The index lists `headword, offset, length` (offsets in dictd's base-64 digits) into the
    data file; entries whose headword starts with `00-database` describe the file itself.
    """
    data_file = file.path.rsplit("/", 1)[-1].removesuffix(".index") + ".dict.dz"
    compressed = file.sibling(data_file)
    if compressed is None:
        raise ExtractError(f"no {data_file} beside the index")
    data = decompressed(SourceFile(data_file, lambda: compressed))
    groups: dict[str, list[str]] = {}
    seen: set[tuple[int, int]] = set()
    for line in decode(decompressed(file)).splitlines():
        fields = line.split("\t")
        if len(fields) < 3 or fields[0].startswith("00-database"):
            continue
        span = (_dictd_number(fields[1]), _dictd_number(fields[2]))
        if span in seen:
            continue  # several headwords share an entry
        seen.add(span)
        entry = data[span[0] : span[0] + span[1]].decode("utf-8", "replace").strip()
        initial = fields[0][:1].lower() if fields[0][:1].isalpha() else "#"
        groups.setdefault(initial, []).append(entry)
    for initial in sorted(groups):
        yield Piece("\n\n".join(groups[initial]), suffix=f"#{initial}")


def wordnet(file: SourceFile, options: dict[str, Any]) -> Iterator[Piece]:
    """WordNet's `data.<pos>`: each synset's words and gloss, one document per lexicographer
    file (noun.animal, verb.motion, ...), numbered as WordNet numbers them."""
    groups: dict[int, list[str]] = {}
    for line in decode(decompressed(file)).splitlines():
        if line.startswith("  ") or "|" not in line:
            continue  # the licence header
        fields, _, gloss = line.partition("|")
        parts = fields.split()
        count = int(parts[3], 16)
        words = [parts[4 + 2 * i].replace("_", " ") for i in range(count)]
        groups.setdefault(int(parts[1]), []).append(f"{', '.join(words)}: {gloss.strip()}")
    for number in sorted(groups):
        yield Piece("\n".join(groups[number]), suffix=f"#lexfile-{number:02d}")


def gettext_mo(file: SourceFile, options: dict[str, Any]) -> Iterator[Piece]:
    """A compiled gettext catalog: its translations (`msgids = true`: its English originals).

    One string per line, blank lines between entries; the catalog header is not text.
    """
    try:
        catalog = gettext.GNUTranslations(io.BytesIO(file.read()))._catalog
    except (OSError, UnicodeDecodeError) as e:
        raise ExtractError(f"not a gettext catalog ({e})") from None
    strings = []
    for key, value in catalog.items():
        msgid = key[0] if isinstance(key, tuple) else key
        if isinstance(key, tuple) and key[1] != 0:
            continue  # other plural forms repeat the first
        if not msgid:
            continue  # the header
        text = msgid if options.get("msgids") else value
        if text and text.strip():
            strings.append(text.strip())
    if strings:
        yield Piece("\n\n".join(sorted(set(strings), key=strings.index)))


def fortune(file: SourceFile, options: dict[str, Any]) -> Iterator[Piece]:
    """A fortune file: quotations separated by lines of `%`, here by blank lines."""
    text = decode(decompressed(file), options.get("encoding", "utf-8")).replace("\r\n", "\n")
    quotes = [q.strip("\n") for q in re.split(r"^%\n", text + "\n", flags=re.MULTILINE)]
    quotes = [q for q in quotes if q.strip()]
    if quotes:
        yield Piece("\n\n".join(quotes))


def chatterbot_yaml(file: SourceFile, options: dict[str, Any]) -> Iterator[Piece]:
    """A chatterbot-corpus file: conversations (turns one per line) separated by blank lines."""
    import yaml

    try:
        content = yaml.load(
            decode(file.read()), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    except yaml.YAMLError:
        raise ExtractError("malformed YAML") from None
    conversations = content.get("conversations") if isinstance(content, dict) else None
    texts = []
    for conversation in conversations or []:
        if isinstance(conversation, list):  # a few entries are a bare string
            turns = [str(t).strip() for t in conversation if t is not None]
            if any(turns):
                texts.append("\n".join(t for t in turns if t))
    if texts:
        yield Piece("\n\n".join(texts))


EXTRACTORS: dict[str, Extractor] = {
    "text": plain_text,
    "roff": roff,
    "html": html_text,
    "xml": xml_text,
    "json-poems": json_poems,
    "dictd": dictd,
    "wordnet": wordnet,
    "gettext-mo": gettext_mo,
    "fortune": fortune,
    "chatterbot-yaml": chatterbot_yaml,
}
# Extractors that wait on another process (groff) and so gain from threads.
PARALLEL = frozenset({"roff"})

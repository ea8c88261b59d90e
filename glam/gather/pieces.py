"""What an extractor yields, and what every extractor needs."""

from __future__ import annotations

import dataclasses
import gzip
import lzma

from glam.gather.files import SourceFile


class ExtractError(ValueError):
    """A file could not be read as its extractor expects; the message says why."""


@dataclasses.dataclass(frozen=True)
class Piece:
    """A document's plain text, as an extractor found it."""

    text: str
    # Appended to the file's path to name the document (e.g. "#Gen.1" for a chapter).
    suffix: str = ""
    # The document's own language where the file says it (an HTML `lang`, a locale folder),
    # as the file spells it; the build turns it into a BCP 47 tag.
    lang: str | None = None


def decompressed(file: SourceFile) -> bytes:
    """The file's bytes, gunzipped or unxz'd when they are compressed (man pages, `.dz`)."""
    data = file.read()
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(data)
    return data


def decode(data: bytes, encoding: str = "utf-8") -> str:
    """Text of `data`; a file that is not valid in `encoding` is an `ExtractError`."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise ExtractError(f"not {encoding} ({e.reason} at byte {e.start})") from None

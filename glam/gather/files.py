"""The files a source reads: matched in an unpacked package, or inside an archive it ships."""

from __future__ import annotations

import dataclasses
import fnmatch
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

from glam.corpus import unit_hash

ARCHIVE_SEPARATOR = "!"


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One file an extractor reads: its path (relative to the package) and its bytes."""

    path: str
    read: Callable[[], bytes]
    # Another file of the same folder, by name (a dictionary's index beside its data), or None.
    sibling: Callable[[str], bytes | None] = lambda name: None


def matching_files(
    root: Path, patterns: tuple[str, ...], exclude: tuple[str, ...] = (), sample: float = 1.0
) -> Iterator[SourceFile]:
    """Files under `root` matching any pattern and no exclusion, in path order.

    A pattern `a/b.tar.xz!*.c` reads the members of the archive `a/b.tar.xz` that match `*.c`
    (streamed: a large source tarball is never unpacked to disk). `sample` < 1 keeps that share
    of the matching files, chosen by a hash of their path, so the choice is reproducible.
    """
    plain = [p for p in patterns if ARCHIVE_SEPARATOR not in p]
    nested = [p.split(ARCHIVE_SEPARATOR, 1) for p in patterns if ARCHIVE_SEPARATOR in p]

    def wanted(path: str) -> bool:
        return not any(fnmatch.fnmatchcase(path, x) for x in exclude) and (
            sample >= 1 or unit_hash(path, "sample") < sample
        )

    if plain:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            rel = path.relative_to(root).as_posix()
            if any(fnmatch.fnmatchcase(rel, p) for p in plain) and wanted(rel):
                yield SourceFile(rel, path.read_bytes, _siblings(path))
    for archive, inner in nested:
        for path in sorted(root.glob(archive)):
            with tarfile.open(path, "r|*") as tar:  # a stream: members in archive order
                for member in tar:
                    name = f"{path.relative_to(root).as_posix()}{ARCHIVE_SEPARATOR}{member.name}"
                    if member.isfile() and fnmatch.fnmatchcase(member.name, inner) and wanted(name):
                        handle = tar.extractfile(member)
                        data = handle.read() if handle else b""
                        yield SourceFile(name, lambda data=data: data)


def _siblings(path: Path) -> Callable[[str], bytes | None]:
    def sibling(name: str) -> bytes | None:
        other = path.with_name(name)
        return other.read_bytes() if other.is_file() else None

    return sibling

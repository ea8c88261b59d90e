"""Real packages made in a test: a Debian package (`dpkg-deb -b`), an npm tarball, a wheel.

They are put where `glam.gather.fetch` keeps its downloads, so a build reads them exactly as
it reads packages fetched from the registries, with no network.
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import struct
import subprocess
import tarfile
import zipfile
from pathlib import Path


def downloads(cache: Path, registry: str) -> Path:
    folder = cache / "downloads" / registry
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def make_deb(cache: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A binary package `name_version_all.deb` holding `files` (paths relative to /)."""
    tree = cache / "trees" / name
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: Test <test@example.org>\nDescription: a package made by a test\n"
    )
    for path, data in files.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_bytes(data)
    out = downloads(cache, "debian") / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(tree), str(out)],
                   check=True, capture_output=True)  # fmt: skip
    return out


def make_npm(cache: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """An `npm pack` tarball: files under `package/`, with its package.json."""
    files = {"package.json": json.dumps({"name": name, "version": version}).encode(), **files}
    out = downloads(cache, "npm") / f"{name}-{version}.tgz"
    with tarfile.open(out, "w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(f"package/{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def make_wheel(cache: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    out = downloads(cache, "pypi") / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
    return out


def tar_xz(files: dict[str, bytes]) -> bytes:
    """A source tarball (as linux-source ships one inside its package)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def mo_file(catalog: dict[str, str]) -> bytes:
    """A GNU gettext catalog, in the binary layout `msgfmt` writes."""
    entries = sorted({"": "Content-Type: text/plain; charset=UTF-8\n", **catalog}.items())
    ids = [k.encode() for k, _ in entries]
    strs = [v.encode() for _, v in entries]
    n = len(entries)
    header = 7 * 4
    ids_table, strs_table = header, header + 8 * n
    data_start = strs_table + 8 * n
    blob, id_offsets, str_offsets = b"", [], []
    for s in ids:
        id_offsets.append((len(s), data_start + len(blob)))
        blob += s + b"\0"
    for s in strs:
        str_offsets.append((len(s), data_start + len(blob)))
        blob += s + b"\0"
    out = struct.pack("<7I", 0x950412DE, 0, n, ids_table, strs_table, 0, 0)
    out += b"".join(struct.pack("<2I", *x) for x in id_offsets)
    out += b"".join(struct.pack("<2I", *x) for x in str_offsets)
    return out + blob


def dictd_number(value: int) -> str:
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = ""
    while True:
        out = digits[value % 64] + out
        value //= 64
        if value == 0:
            return out


def dictd(entries: dict[str, str]) -> tuple[bytes, bytes]:
    """(index, gzipped data) of a dictd dictionary with these headword -> text entries."""
    data, index = b"", []
    for head, text in {"00-database-info": "about this file\n", **entries}.items():
        body = f"{head}\n{text}\n".encode()
        index.append(f"{head}\t{dictd_number(len(data))}\t{dictd_number(len(body))}")
        data += body
    return ("\n".join(index) + "\n").encode(), gzip.compress(data, mtime=0)


def gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


def xz(text: str) -> bytes:
    return lzma.compress(text.encode())

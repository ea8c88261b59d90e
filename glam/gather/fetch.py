"""Fetch packages from the registries and unpack them, never installing anything.

- Debian: `apt-get download NAME`, then `dpkg-deb -x` (version from `dpkg-deb -f`);
- npm: `npm pack NAME`, a gzipped tarball whose files sit under `package/`;
- PyPI: `pip download --no-deps NAME`, a wheel (a zip) or an sdist.

Downloads are kept in a cache folder, so a rebuild reads the same files (the same package
versions give the same corpus) and fetches only what is missing. `--refresh` fetches anew.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path


class FetchError(RuntimeError):
    """A package could not be fetched or unpacked; the message is one line naming it."""


@dataclasses.dataclass(frozen=True)
class Package:
    """A fetched package: what the corpus manifest records of it."""

    registry: str
    name: str
    version: str
    sha256: str
    file: str  # the downloaded file's name
    root: Path  # where it is unpacked

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "root"}


def fetch(registry: str, spec: str, cache: Path, *, refresh: bool = False) -> Package:
    """The package `spec` of `registry`, downloaded into `cache` (if not there) and unpacked.

    `spec` is a name, or for npm and PyPI a pinned version (`name@1.2.3`, `name==1.2.3`).
    """
    name, pinned = _split_spec(spec)
    downloads = cache / "downloads" / registry
    downloads.mkdir(parents=True, exist_ok=True)
    archive = None if refresh else _cached(registry, name, pinned, downloads)
    if archive is None:
        archive = _download(registry, spec, name, downloads)
    version = _version(registry, name, archive)
    sha256 = _sha256(archive)
    root = cache / "unpacked" / registry / f"{name}-{sha256[:12]}"
    if not (root / ".complete").exists():
        _unpack(registry, archive, root)
    top = root / "package" if registry == "npm" else root
    return Package(registry, name, version, sha256, archive.name, top)


def _run(argv: list[str], cwd: Path, what: str) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise FetchError(f"{what}: {argv[0]} is not installed on this machine") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if re.match(r"^(E:|npm error|ERROR)", line)]
        reason = (errors or lines or [f"exit status {done.returncode}"])[-1].strip()
        raise FetchError(f"{what}: {reason}")
    return done.stdout


_PINNED = re.compile(r"^(?P<name>@?[^@=]+)(?:==|@)(?P<version>\d[^@=]*)$")


def _split_spec(spec: str) -> tuple[str, str]:
    """(name, pinned version or "") of `name`, `name==1.2` (PyPI) or `name@1.2` (npm)."""
    match = _PINNED.match(spec)
    return (match["name"], match["version"]) if match else (spec, "")


def _cached(registry: str, name: str, pinned: str, downloads: Path) -> Path | None:
    """The one downloaded file of `name` (of version `pinned`, if given), or None."""
    found = [p for p in downloads.iterdir() if _package_of(registry, p.name) == _normal(name)]
    if pinned:
        found = [p for p in found if _filename_version(registry, p.name) == pinned]
    return found[0] if len(found) == 1 else None


def _filename_version(registry: str, filename: str) -> str:
    if registry == "npm":  # name-1.2.3.tgz
        return filename.rsplit("-", 1)[-1].removesuffix(".tgz")
    return filename.split("-")[1] if registry == "pypi" else filename.split("_")[1]


def _download(registry: str, spec: str, name: str, downloads: Path) -> Path:
    before = set(downloads.iterdir())
    what = f"{registry} package {spec}"
    if registry == "debian":
        try:
            _run(["apt-get", "download", "-q", spec], downloads, what)
        except FetchError as error:
            if "Unable to locate package" in str(error) and not _apt_lists():
                hint = "apt has no package lists: run `apt-get update` once"
                raise FetchError(f"{error} ({hint})") from None
            raise
    elif registry == "npm":
        _run(["npm", "pack", "--silent", spec], downloads, what)
    else:
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
        _run([*pip, "--disable-pip-version-check", "-d", str(downloads), spec], downloads, what)
    new = sorted(set(downloads.iterdir()) - before)
    if len(new) != 1:
        # Already there (a second version in the cache): the download tool reused it.
        existing = _cached(registry, name, _split_spec(spec)[1], downloads)
        if existing is None:
            raise FetchError(f"{what}: the download left {len(new)} files, expected one")
        return existing
    return new[0]


def _apt_lists() -> bool:
    return any(Path("/var/lib/apt/lists").glob("*_Packages*"))


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _package_of(registry: str, filename: str) -> str:
    """The package name a downloaded file's name starts with."""
    if registry == "debian":  # name_version_arch.deb
        return _normal(filename.split("_")[0])
    if registry == "npm":  # name-version.tgz (a scope's @ and / become -)
        return _normal(filename.rsplit("-", 1)[0])
    return _normal(filename.split("-")[0])  # name-version-tags.whl


def _version(registry: str, name: str, archive: Path) -> str:
    if registry == "debian":
        return _run(["dpkg-deb", "-f", str(archive), "Version"], archive.parent, name).strip()
    if registry == "npm":
        with tarfile.open(archive) as tar:
            member = tar.extractfile("package/package.json")
            if member is None:
                raise FetchError(f"npm package {name}: no package/package.json")
            return str(json.load(member)["version"])
    # Wheels and sdists: name-version[-tags].ext
    return archive.name.split("-")[1].removesuffix(".tar.gz").removesuffix(".zip")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unpack(registry: str, archive: Path, root: Path) -> None:
    """Unpack into `root` whole, or leave nothing (a marker file says it is complete)."""
    shutil.rmtree(root, ignore_errors=True)
    tmp = root.with_name(root.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if registry == "debian":
            _run(["dpkg-deb", "-x", str(archive), str(tmp)], tmp, archive.name)
        elif archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FetchError(f"{archive.name}: cannot unpack ({e})") from None
    (tmp / ".complete").touch()
    tmp.rename(root)

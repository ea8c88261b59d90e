"""Gathering the training corpus from packages of the registries this project reaches.

`manifest` reads the list of sources (`sources.toml`), `fetch` downloads and unpacks
packages, `files` picks the files a source reads, `extractors` and `markup` turn them into
plain text, `dedup` removes duplicates, and `build` runs it all into a corpus folder.
"""

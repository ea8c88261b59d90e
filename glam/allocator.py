"""Run under jemalloc, keeping freed pages: what makes XLA's CPU buffers cheap to reuse.

XLA on the CPU allocates each step's large temporaries with malloc. glibc hands blocks
above 32 MB straight back to the kernel (munmap), so every step touches fresh pages: in
glam-64e's training that was 230,000 page faults a second, a third of the CPU time in the
kernel, and 2,200 tokens/s. jemalloc with page purging off (`dirty_decay_ms:-1`) keeps
them mapped and reuses them: 0 faults, 3,500 tokens/s (issue 13; bench/train.py measures
both). The allocator can only be chosen when a process starts, so `glam train` re-executes
itself with it preloaded; GLAM_ALLOCATOR=system keeps glibc's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

# Debian's libjemalloc2, on x86_64 and aarch64.
JEMALLOC_PATHS = (
    Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"),
    Path("/usr/lib/aarch64-linux-gnu/libjemalloc.so.2"),
)
KEEP_PAGES = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
SWITCH = "GLAM_ALLOCATOR"  # "system": do not switch


def jemalloc_library() -> Path | None:
    return next((path for path in JEMALLOC_PATHS if path.exists()), None)


def preloaded(environ: Mapping[str, str] = os.environ) -> bool:
    return "jemalloc" in environ.get("LD_PRELOAD", "")


def jemalloc_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str] | None:
    """`environ` with jemalloc preloaded and page purging off, or None when it is not
    installed, already preloaded, or switched off."""
    library = jemalloc_library()
    if library is None or preloaded(environ) or environ.get(SWITCH) == "system":
        return None
    preload = " ".join(p for p in (str(library), environ.get("LD_PRELOAD", "")) if p)
    return {**environ, "LD_PRELOAD": preload, "MALLOC_CONF": KEEP_PAGES}


def reexec_with_jemalloc() -> None:
    """Replace this process with itself under jemalloc (returns only when it cannot)."""
    environment = jemalloc_environment()
    if environment is not None:
        os.execve(sys.executable, [sys.executable, *sys.argv], environment)


def describe(environ: Mapping[str, str] = os.environ) -> str:
    if preloaded(environ):
        return f"jemalloc ({environ.get('MALLOC_CONF', 'default decay')})"
    return "glibc malloc"

"""Which allocator `glam train` re-executes itself under."""

from __future__ import annotations

from glam import allocator


def test_jemalloc_is_preloaded_with_page_purging_off(monkeypatch, tmp_path):
    library = tmp_path / "libjemalloc.so.2"
    library.write_bytes(b"")
    monkeypatch.setattr(allocator, "JEMALLOC_PATHS", (tmp_path / "missing.so", library))
    env = allocator.jemalloc_environment({"PATH": "/bin", "LD_PRELOAD": "/x/libother.so"})
    assert env == {"PATH": "/bin", "LD_PRELOAD": f"{library} /x/libother.so",
                   "MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"}  # fmt: skip
    assert allocator.describe(env) == "jemalloc (dirty_decay_ms:-1,muzzy_decay_ms:-1)"
    # Already under it, switched off, or not installed: nothing to do.
    assert allocator.jemalloc_environment(env) is None
    assert allocator.jemalloc_environment({"GLAM_ALLOCATOR": "system"}) is None
    monkeypatch.setattr(allocator, "JEMALLOC_PATHS", (tmp_path / "missing.so",))
    assert allocator.jemalloc_environment({}) is None
    assert allocator.describe({}) == "glibc malloc"

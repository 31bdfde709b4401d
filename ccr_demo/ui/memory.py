"""Keeping the app's resident memory flat (glibc malloc; no-ops elsewhere).

Why: loading the model and encoding images allocate and free hundreds of MB in many small
blocks; glibc keeps freed heap pages mapped, and each request thread may get its own malloc
arena, so RSS grows with waves of uploads although nothing is kept. Measured with
``bench/bench_load.py`` (docs/bench_load.md): ``malloc_trim`` after loading and after each
gallery build returns those pages, and two arenas stop per-thread growth.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

_M_ARENA_MAX = -8
_libc = None


def _glibc():
    global _libc
    if _libc is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc = lib if hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt") else False
        except OSError:
            _libc = False
    return _libc or None


def limit_malloc_arenas(n: int = 2) -> bool:
    """At most ``n`` malloc arenas (call before request threads start). True when applied."""
    lib = _glibc()
    return bool(lib and lib.mallopt(_M_ARENA_MAX, n))


def release_memory() -> bool:
    """Collect garbage and hand freed heap pages back to the OS. True when trimmed."""
    gc.collect()
    lib = _glibc()
    return bool(lib and lib.malloc_trim(0))

"""Keeping the app's resident memory flat (glibc malloc; no-ops elsewhere).

Why: loading the model and encoding images allocate and free hundreds of MB in many small
blocks; glibc keeps freed heap pages mapped, and each request thread may get its own malloc
arena, so RSS grows with waves of uploads although nothing is kept. Measured with
``bench/bench_load.py`` (docs/bench/bench_load.md): ``malloc_trim`` after loading and after each
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


_MADV_DONTNEED = 4


def drop_clean_weight_pages(suffix: str = ".safetensors") -> int:
    """Unmap the resident pages of weight files that are memory-mapped and never written.

    transformers maps the text tower's safetensors file (copy-on-write) instead of reading it,
    and hashing the weights once at start-up (the gallery's model check) makes every page of it
    resident: ~450 MB for multilingual-e5-small, most of it the 250k x 384 word-embedding table,
    of which a query touches a few rows. For a private mapping with no written page (smaps
    Anonymous 0 kB: no copy-on-write copy) ``madvise(MADV_DONTNEED)`` only forgets pages the kernel reads back
    from the file, so the contents stay exactly the same and later reads fault in what they use.
    A mapping with any written page is left alone. Returns the bytes released (0 off Linux).
    """
    lib = _glibc()
    if lib is None:
        return 0
    try:
        text = open("/proc/self/smaps", encoding="utf-8", errors="replace").read()
    except OSError:
        return 0
    lib.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    for header, fields in _smaps_blocks(text):
        parts = header.split()
        if len(parts) < 6 or not parts[-1].endswith(suffix):
            continue
        if fields.get("Anonymous", 1) != 0:
            continue  # something wrote into it (copy-on-write pages): they are not the file's any more
        start, end = (int(x, 16) for x in parts[0].split("-"))
        if lib.madvise(start, end - start, _MADV_DONTNEED) == 0:
            released += fields.get("Rss", 0) * 1024
    return released


def _smaps_blocks(text: str):
    """(header line, {field: kB}) per mapping of /proc/self/smaps."""
    header, fields = None, {}
    for line in text.splitlines():
        first = line.split(" ", 1)[0]
        if "-" in first and not first.endswith(":"):
            if header is not None:
                yield header, fields
            header, fields = line, {}
        elif first.endswith(":") and header is not None:
            value = line.split()[1:2]
            if value and value[0].isdigit():
                fields[first[:-1]] = int(value[0])
    if header is not None:
        yield header, fields

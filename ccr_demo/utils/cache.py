"""One bounded, thread-safe LRU cache (cachetools underneath) for every in-memory cache of the app.

Bounded by a count of entries and, when ``sizeof`` is given, by the entries' total size, so a
cache of tensors cannot grow past a memory budget whatever it is fed. Hits and misses are
counted for the app's and benchmarks' reports.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Hashable

import cachetools


class LockedLRU:
    """``get(key)`` (None when absent) and ``put(key, value)``, safe from any thread.

    ``max_items`` < 1 keeps nothing. With ``max_bytes`` and ``sizeof(value) -> int``, a value
    larger than ``max_bytes`` is not kept, and the least recently used entries go until both
    bounds hold.
    """

    def __init__(self, max_items: int, max_bytes: int | None = None,
                 sizeof: Callable[[Any], int] | None = None):
        if (max_bytes is None) != (sizeof is None):
            raise ValueError("max_bytes and sizeof go together")
        self.max_items = int(max_items)
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        if self.max_bytes is None:
            self._cache = cachetools.LRUCache(maxsize=max(self.max_items, 0))
        else:
            self._cache = cachetools.LRUCache(maxsize=max(self.max_bytes, 0), getsizeof=sizeof)
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def nbytes(self) -> int:
        """The kept values' total size (``sizeof``), or their count without one."""
        return int(self._cache.currsize)

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            try:
                value = self._cache[key]
            except KeyError:
                self.misses += 1
                return None
            self.hits += 1
            return value

    def put(self, key: Hashable, value: Any) -> None:
        if self.max_items < 1:
            return
        with self._lock:
            try:
                self._cache[key] = value
            except ValueError:  # larger than max_bytes on its own: not kept
                return
            while len(self._cache) > self.max_items:
                self._cache.popitem()

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self.hits = self.misses = 0

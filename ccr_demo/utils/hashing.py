"""SHA-256 of files, streamed: memory stays flat for any file size.

(The hash of a model's weights is another idea, over tensors in memory:
``ccr_demo.model.fingerprint``.)
"""

from __future__ import annotations

import functools
import hashlib
import os


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read through one 1 MB buffer."""
    h, buf = hashlib.sha256(), bytearray(1 << 20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while size := f.readinto(buf):
            h.update(view[:size])
    return h.hexdigest()


def cached_file_sha256(path: str | os.PathLike) -> str:
    """``file_sha256``, remembered per (path, size, mtime): a file replaced in place is hashed again."""
    st = os.stat(path)
    return _cached(os.fspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _cached(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)

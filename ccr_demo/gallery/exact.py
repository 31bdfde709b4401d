"""Exact inner-product scores over a gallery's stored vectors, for any gallery size.

An ANN index only proposes candidates; the stored vectors are the truth. Everything here makes
one chunked pass over them (``ccr_demo.gallery.storage.chunks``), so it works the same on an
in-memory array and on a memory-mapped vectors.npy larger than RAM, with the same float32
arithmetic either way (a memory-mapped gallery and an in-memory one give bit-identical scores).
Memory: the [queries, count] float32 scores (``exact_scores``) or a running top-k per query
(``scan_top``), never a float32 copy of the vectors. Ranks are counted from these scores by
``ccr_demo.utils.ranks.count_higher``.
"""

from __future__ import annotations

import numpy as np
import torch

from ccr_demo.gallery.storage import chunks

# rank_of scores this many (query x item) pairs per block: 2**24 floats = 64 MB (twice that while sorting).
RANK_BLOCK = 1 << 24


def exact_scores(q: np.ndarray, vectors: np.ndarray) -> torch.Tensor:
    """Exact scores [Q, count] of every stored vector for the float32 queries q [Q, D], from one
    chunked pass: the same arithmetic in memory and memory-mapped, Q x count float32 of memory."""
    full = torch.empty((len(q), len(vectors)), dtype=torch.float32)
    qt = torch.from_numpy(q)
    for start, chunk in chunks(vectors):
        full[:, start:start + len(chunk)] = qt @ torch.from_numpy(chunk).T
    return full


def scan_top(q: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    """Rows [Q, k] of the k best exact scores (any order), from one chunked pass keeping a running
    top-k per query: memory Q x (k + chunk), for memory-mapped Flat galleries of any size."""
    best_s = np.full((len(q), 0), -np.inf, np.float32)
    best_r = np.zeros((len(q), 0), np.int64)
    for start, chunk in chunks(vectors):
        s = np.concatenate([best_s, q @ chunk.T], axis=1)
        r = np.concatenate([best_r, np.broadcast_to(np.arange(start, start + len(chunk)), (len(q), len(chunk)))], 1)
        if s.shape[1] > k:
            keep = np.argpartition(-s, k - 1, axis=1)[:, :k]
            s, r = np.take_along_axis(s, keep, 1), np.take_along_axis(r, keep, 1)
        best_s, best_r = s, r
    return best_r

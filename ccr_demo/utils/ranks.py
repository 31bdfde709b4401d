"""Ranks by counting: the one kernel behind every rank in the project (evaluation metrics and
gallery search alike).

The convention, stated here once: a rank is 0-based and equals the number of candidates whose
score is *strictly higher* than the target's. A tie with the target therefore counts in the
query's favour (the target ranks above every item it ties with), and a rank never depends on
how a sort orders equal scores. The paper's evaluation sorts each row in a Python loop and
breaks ties arbitrarily; on tie-free scores the two agree.

``count_higher(scores, targets)`` answers it for a whole batch with no Python loop over rows,
and picks the method that is fastest for the shape asked:

- one target per row (``targets`` 1-D): each row is compared with its target once, in blocks
  of rows whose boolean mask stays in cache, the mask packed to bits and popcounted (a
  single read of every score);
- several targets per row (``targets`` 2-D, [rows, M]): each row is sorted once and every
  target found in it by one batched binary search, so the cost does not grow with M and does
  not depend on how low the targets rank (a few targets are still counted the first way,
  which is cheaper than a sort).

Comparisons are exact ones in the scores' dtype (targets are cast to it), so both methods
give identical counts. The caller validates its inputs (shapes, NaN: a NaN score compares
false with everything and would silently drop out of the count).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

# Rows per block of the popcount method are chosen so the boolean mask of one block (this many
# bytes) stays in L2 cache; at least _MIN_BLOCK_ROWS so huge galleries still go in blocks.
_BLOCK_BYTES = 1 << 18
_MIN_BLOCK_ROWS = 16
# Up to this many targets per row, one popcount pass per target beats sorting the row: a
# sort cost as much as 50-120 such passes (1e4-1e6 scores a row, numpy 2.x, 2 CPU cores).
_MAX_PASSES = 32


def count_higher(scores, targets) -> np.ndarray:
    """How many scores in each row are strictly higher than the row's target(s).

    scores: [rows, N] numpy array. targets: [rows] (one per row) -> int64 [rows], or
    [rows, M] (several per row) -> int64 [rows, M].
    """
    scores, targets = np.asarray(scores), np.asarray(targets)
    if scores.ndim != 2 or targets.ndim not in (1, 2) or targets.shape[0] != scores.shape[0]:
        raise ValueError(f"count_higher needs scores [rows, N] and targets [rows] or [rows, M]; got "
                         f"{scores.shape} and {targets.shape}")
    targets = targets.astype(scores.dtype, copy=False)
    if targets.ndim == 1:
        return _popcount(scores, targets)
    if targets.shape[1] <= _MAX_PASSES:
        out = np.empty(targets.shape, np.int64)
        for j in range(targets.shape[1]):  # a loop over the few targets, not over rows
            out[:, j] = _popcount(scores, targets[:, j])
        return out
    return _sorted_search(scores, targets)


@contextlib.contextmanager
def _row_sized_ufunc_buffer(n_cols: int) -> Iterator[None]:
    """Shrink numpy's ufunc buffer to one row while comparing rows of 1024-8191 scores.

    Why: with the default 8192-element buffer, a [rows, 1] operand broadcast against rows
    that short is copied into the buffer, which made the comparison about twice as slow
    (numpy 2.4, 2000-score rows). Shorter rows do better with the default (the per-row
    overhead dominates), longer ones are not affected. Speed only; results are identical.
    """
    if not 1024 <= n_cols < 8192:
        yield
        return
    old = np.setbufsize(n_cols // 16 * 16)
    try:
        yield
    finally:
        np.setbufsize(old)


def _popcount(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """int64[rows]: per row, how many scores are strictly higher than that row's threshold."""
    n_rows, n_cols = scores.shape
    thresholds = thresholds[:, None]
    block = max(_MIN_BLOCK_ROWS, _BLOCK_BYTES // max(1, n_cols))
    mask = np.empty((min(block, n_rows), n_cols), dtype=bool)
    out = np.empty(n_rows, dtype=np.int64)
    with _row_sized_ufunc_buffer(n_cols):
        for start in range(0, n_rows, block):
            rows = slice(start, min(start + block, n_rows))
            m = mask[: rows.stop - rows.start]
            np.greater(scores[rows], thresholds[rows], out=m)
            out[rows] = np.bitwise_count(np.packbits(m, axis=1)).sum(axis=1, dtype=np.int64)
    return out


def _sorted_search(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """int64 [rows, M]: each row sorted once (numpy's SIMD sort), every target found in it by
    one batched binary search (torch's, which numpy lacks for
    2-D arrays; the tensors share the arrays' memory)."""
    import torch  # only here: the popcount path and its callers need no torch

    ordered = torch.from_numpy(np.sort(scores, axis=1))
    found = torch.searchsorted(ordered, torch.from_numpy(np.require(targets, requirements=["C", "W"])), right=True)
    return scores.shape[1] - found.numpy().astype(np.int64, copy=False)

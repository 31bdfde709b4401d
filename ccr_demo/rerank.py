"""Re-ranking the contrastive top-k with the fusion encoder's ITM head (CCRK / X-VLM test time).

The rule used everywhere in this project (evaluation, gallery search, app):
1. rank all N candidates of a query by the contrastive (dual-encoder) score;
2. take the top k (ties broken by the lower index);
3. score those k pairs with the ITM head and order them by that score, descending (ties
   keep their contrastive order);
4. the other N - k candidates follow in their contrastive order.
So a gold item outside the top k keeps its exact contrastive rank (>= k), and re-ranking
only ever permutes the first k positions.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# pair_scores(query_rows [Q], candidates [Q, k]) -> ITM scores [Q, k]
PairScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def contrastive_top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices [Q, k] of each row's k best candidates, best first, ties to the lower index."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [queries, candidates], got shape {scores.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    # A stable sort of the negated scores: best first, ties to the lower index.
    return np.argsort(-scores, axis=1, kind="stable")[:, :min(k, scores.shape[1])]


def rerank_top_k(scores: np.ndarray, k: int, pair_scores: PairScorer) -> np.ndarray:
    """The top k [Q, k] of each row after ITM re-ranking (the module's rule, steps 1-3)."""
    top = contrastive_top_k(scores, k)
    itm = np.asarray(pair_scores(np.arange(top.shape[0]), top), dtype=np.float64)
    if itm.shape != top.shape:
        raise ValueError(f"pair_scores returned shape {itm.shape} for candidates of shape {top.shape}")
    order = np.argsort(-itm, axis=1, kind="stable")  # stable: ties keep contrastive order
    return np.take_along_axis(top, order, 1)

"""Re-ranking the contrastive top-k with the fusion encoder's ITM head (CCRK / X-VLM test time).

The rule used everywhere in this project (evaluation, gallery search, app):
1. rank all N candidates of a query by the contrastive (dual-encoder) score;
2. take the top k (ties broken by the lower index);
3. score those k pairs with the ITM head and order them by ITM + w x contrastive score,
   descending (ties keep their contrastive order); w is the model's ``fusion.rerank_itc_weight``:
   0 is the official rule (ITM alone), a positive w keeps what the dual encoder knows (ALBEF /
   BLIP's retrieval code adds the two likewise), chosen on a validation split
   (``choose_itc_weight``), never on a test split;
4. the other N - k candidates follow in their contrastive order.
So a gold item outside the top k keeps its exact contrastive rank (>= k), and re-ranking
only ever permutes the first k positions.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ccr_demo.eval.metrics import gold_lists, i2t_ranks

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


def rerank_top_k(scores: np.ndarray, k: int, pair_scores: PairScorer, itc_weight: float = 0.0) -> np.ndarray:
    """The top k [Q, k] of each row after ITM re-ranking (the module's rule, steps 1-3)."""
    top = contrastive_top_k(scores, k)
    itm = np.asarray(pair_scores(np.arange(top.shape[0]), top), dtype=np.float64)
    if itm.shape != top.shape:
        raise ValueError(f"pair_scores returned shape {itm.shape} for candidates of shape {top.shape}")
    return order_top(top, itm, np.take_along_axis(np.asarray(scores, np.float64), top, 1), itc_weight)


def model_itc_weight(model) -> float:
    """The w of step 3 that ``model`` carries (``config.fusion.rerank_itc_weight``; 0 if none)."""
    return float(getattr(getattr(getattr(model, "config", None), "fusion", None), "rerank_itc_weight", 0.0) or 0.0)


def order_top(top: np.ndarray, itm: np.ndarray, contrastive: np.ndarray, itc_weight: float = 0.0) -> np.ndarray:
    """Step 3 alone: ``top`` [Q, k] (contrastive order) re-ordered by ``itm + itc_weight *
    contrastive``, both [Q, k]; ties keep the contrastive order."""
    if not np.isfinite(itc_weight) or itc_weight < 0:
        raise ValueError(f"itc_weight must be a finite number >= 0, got {itc_weight}")
    combined = itm + itc_weight * contrastive if itc_weight else itm
    order = np.argsort(-combined, axis=1, kind="stable")  # stable: ties keep contrastive order
    return np.take_along_axis(top, order, 1)


ITC_WEIGHTS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # per unit of cosine; an ITM logit spans a few units


def choose_itc_weight(runs, weights=ITC_WEIGHTS) -> tuple[float, dict]:
    """The w of step 3 that ranks a validation split best: ``runs`` is a list of (top [Q, k],
    itm [Q, k], contrastive [Q, k], relevant [Q, k] bool), one per language or query set; each w
    is scored by the mean of R@1 and P@5 of the re-ranked top k over all runs (P@5 counts a
    query's relevant items among its first five over min(5, its relevant items in the top k)).
    Returns (best w, {w: score}); ties go to the smaller w (closer to the official rule)."""
    table = {float(w): ordering_score(runs, w) for w in weights}
    best = max(table.values())
    return min(w for w, v in table.items() if v == best), table


def ordering_score(runs, itc_weight: float | None) -> float:
    """``choose_itc_weight``'s score of one w; ``None``: the contrastive order itself (no
    re-ranking), the reference every w is compared with."""
    r1, p5 = [], []
    for top, itm, contrastive, relevant in runs:
        order = np.arange(top.shape[1])[None].repeat(len(top), 0)
        if itc_weight is not None:
            order = order_top(order, itm, contrastive, itc_weight)
        hits = np.take_along_axis(np.asarray(relevant, bool), order, 1)
        r1.append(hits[:, 0])
        five = hits[:, :5].sum(1) / np.maximum(1, np.minimum(5, hits.sum(1)))
        p5.append(five[hits.sum(1) > 0])
    return float((np.concatenate(r1).mean() + np.concatenate(p5).mean()) / 2)


# --------------------------------------------------------------------------- ranks
# Two ways to turn the re-ranked top k into the gold item's rank (0-based).
#
# * ``reranked_ranks`` (exact): the rank under this module's rule. A gold inside the top k
#   gets its position in the re-ranked top k; a gold outside keeps its contrastive rank as
#   ``metrics`` counts it (candidates scoring strictly higher), raised to k when ties at the
#   k-th score left it out of the top k. So R@K for K >= k equals the contrastive R@K.
#
# * ``official_ranks`` (the CCRK / X-VLM evaluation behind the paper's numbers): the score
#   matrix is ``OFFICIAL_FILL`` (-100) everywhere except each query's contrastive top k,
#   whose cells hold the ITM "match" logit ALONE (not added to the contrastive similarity);
#   a rank is the gold's position in ``np.argsort(row)[::-1]``, the minimum over an image's
#   gold captions for image-to-text. Every gold outside the top k therefore ties at -100
#   with the N - k - 1 other left-out candidates and its rank depends only on how the sort
#   orders equal values, not on its contrastive score: it lands anywhere in [k, N), which
#   inflates MRV. numpy's default sort promises no order for equal values (it varies with the
#   numpy version, the row length and the CPU's SIMD sort), so we fix one, whatever the
#   platform: that of ``np.argsort(row, kind="stable")[::-1]``, a stable ascending sort
#   reversed: among equal scores the HIGHER candidate index comes first. So a left-out gold g gets
#   rank = (top-k ITM scores above -100) + (left-out candidates with an index above g),
#   and ITM ties inside the top k also go to the higher index. The top k itself is
#   ``contrastive_top_k``'s (ties at the k-th score to the lower index; the official code's
#   ``torch.topk`` promises no order there either).

OFFICIAL_FILL = -100.0


def _pairs(gold, n_queries: int, n_candidates: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query row of each (query, gold) pair, gold index, start of each query's run) from a
    gold per query ([Q] ints) or several (a list of lists / [Q, G] array: min over them)."""
    if isinstance(gold, np.ndarray) and gold.ndim == 1:
        gold = gold.reshape(-1, 1)
    flat, counts = gold_lists(gold, n_queries, n_candidates)
    rows = np.repeat(np.arange(n_queries), counts)
    return rows, flat, np.cumsum(counts) - counts


def _check_top(top: np.ndarray, n_candidates: int, name: str = "top") -> np.ndarray:
    top = np.asarray(top)
    if top.ndim != 2 or top.shape[1] < 1:
        raise ValueError(f"{name} must be [queries, k >= 1], got shape {top.shape}")
    if top.shape[1] > n_candidates:
        raise ValueError(f"{name} has k = {top.shape[1]} > {n_candidates} candidates")
    if top.size and (top.min() < 0 or top.max() >= n_candidates):
        raise ValueError(f"{name} holds candidate indices outside [0, {n_candidates})")
    return top.astype(np.int64, copy=False)


def official_ranks(top: np.ndarray, itm: np.ndarray, n_candidates: int, gold,
                   fill: float = OFFICIAL_FILL) -> np.ndarray:
    """int64[Q]: the official protocol's rank of each query's gold (see the note above).

    top: [Q, k] each query's contrastive top k (``contrastive_top_k``); itm: [Q, k] their ITM
    scores; gold: [Q] gold candidate per query (text-to-image) or each query's gold list
    (image-to-text; the best position counts). Equivalent to building the dense [Q, N]
    matrix (``official_score_matrix``) and reading positions off a stable argsort reversed,
    without the matrix or the sort.
    """
    top = _check_top(top, n_candidates)
    itm = np.asarray(itm, dtype=np.float64)
    if itm.shape != top.shape:
        raise ValueError(f"itm has shape {itm.shape}, top has {top.shape}")
    n_q, k = top.shape
    rows, g, starts = _pairs(gold, n_q, n_candidates)
    cand, sc = top[rows], itm[rows]                                   # [P, k]
    is_gold = cand == g[:, None]
    inside = is_gold.any(axis=1)
    v = np.where(inside, np.where(is_gold, sc, 0.0).sum(axis=1), fill)  # the gold's cell value
    others = ~is_gold
    above = others & ((sc > v[:, None]) | ((sc == v[:, None]) & (cand > g[:, None])))
    rank = above.sum(axis=1)
    # The left-out cells all hold `fill`: all of them come first if fill > v; if fill == v,
    # those with an index above g (indices above g, minus the top-k ones above g).
    n_out = n_candidates - k - (~inside)
    rank += np.where(fill > v, n_out, 0)
    rank += np.where(fill == v, (n_candidates - 1 - g) - (cand > g[:, None]).sum(axis=1), 0)
    return np.minimum.reduceat(rank, starts).astype(np.int64)


def official_score_matrix(top: np.ndarray, itm: np.ndarray, n_candidates: int,
                          fill: float = OFFICIAL_FILL) -> np.ndarray:
    """The official dense score matrix [Q, N]: ``fill`` except the top-k cells, which hold ITM."""
    top = _check_top(top, n_candidates)
    out = np.full((top.shape[0], n_candidates), fill, dtype=np.float64)
    np.put_along_axis(out, top, np.asarray(itm, dtype=np.float64), axis=1)
    return out


def reranked_ranks(scores: np.ndarray, reranked_top: np.ndarray, gold) -> np.ndarray:
    """int64[Q]: the exact rank of each query's gold under this module's rule.

    scores: [Q, N] contrastive scores; reranked_top: [Q, k] from ``rerank_top_k``; gold: as
    in ``official_ranks``. A gold inside the top k: its position there; outside: max(k, its
    contrastive rank), the contrastive rank being ``metrics``' strictly-higher count (for
    several golds, of the best-scored one).
    """
    scores = np.asarray(scores)
    n_q, n = scores.shape
    top = _check_top(reranked_top, n)
    if top.shape[0] != n_q:
        raise ValueError(f"reranked_top has {top.shape[0]} rows, scores {n_q}")
    k = top.shape[1]
    rows, g, starts = _pairs(gold, n_q, n)
    hit = top[rows] == g[:, None]
    position = np.where(hit.any(axis=1), hit.argmax(axis=1), n)
    best_inside = np.minimum.reduceat(position, starts)
    golds = gold.reshape(-1, 1) if isinstance(gold, np.ndarray) and gold.ndim == 1 else gold
    contrastive = np.maximum(k, i2t_ranks(scores, golds))
    return np.minimum(best_inside, contrastive).astype(np.int64)

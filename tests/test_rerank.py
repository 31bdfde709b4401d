"""Re-ranking rule, its exact ranks, and the official (CCRK / X-VLM) protocol's ranks,
each against a slow per-row loop written independently from the module's docstrings."""

import numpy as np
import pytest

from ccr_demo.eval import metrics
from ccr_demo.eval.rerank import (
    OFFICIAL_FILL,
    contrastive_top_k,
    official_ranks,
    official_score_matrix,
    rerank_top_k,
    reranked_ranks,
)


def _tied(rng, shape, levels=4):
    """Scores with many ties (few distinct values)."""
    return rng.integers(0, levels, size=shape).astype(np.float64)


def slow_rerank(scores, k, itm_of):
    """The rule, one row at a time: contrastive order (ties -> lower index), top k re-sorted
    by ITM (ties keep contrastive order)."""
    out = []
    for q, row in enumerate(scores):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]
        out.append(sorted(order, key=lambda j: (-itm_of(q, j), order.index(j))))
    return np.array(out)


@pytest.mark.parametrize("k", [1, 3, 7, 50])
def test_rerank_top_k_matches_a_slow_loop_with_ties(k):
    rng = np.random.default_rng(k)
    scores = _tied(rng, (30, 7))
    itm_table = _tied(rng, (30, 7), levels=3)
    seen = []

    def pair_scores(rows, cand):
        seen.append(cand.copy())
        return itm_table[rows[:, None], cand]

    got = rerank_top_k(scores, k, pair_scores)
    want = slow_rerank(scores, min(k, 7), lambda q, j: itm_table[q, j])
    np.testing.assert_array_equal(got, want)
    assert got.shape == (30, min(k, 7))
    # the ITM head only sees the contrastive top k
    np.testing.assert_array_equal(np.sort(seen[0], axis=1), np.sort(contrastive_top_k(scores, k), axis=1))


def test_rerank_with_k_at_least_n_is_a_full_sort_by_itm():
    rng = np.random.default_rng(0)
    scores, itm = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
    got = rerank_top_k(scores, 6, lambda r, c: itm[r[:, None], c])
    np.testing.assert_array_equal(got, np.argsort(-itm, axis=1))


def slow_official(top, itm, n, golds):
    """The official evaluation, literally: dense matrix filled with -100, ITM alone in the
    top-k cells, position in a (stable) argsort reversed, min over golds."""
    ranks = []
    for q in range(len(top)):
        row = np.full(n, OFFICIAL_FILL)
        for j, s in zip(top[q], itm[q]):
            row[j] = s
        inds = np.argsort(row, kind="stable")[::-1]
        ranks.append(min(int(np.where(inds == g)[0][0]) for g in golds[q]))
    return np.array(ranks)


@pytest.mark.parametrize("k", [1, 2, 5, 9])
def test_official_ranks_match_the_official_loop(k):
    rng = np.random.default_rng(10 + k)
    n, q = 9, 60
    scores = _tied(rng, (q, n))
    top = contrastive_top_k(scores, k)
    # ITM values with ties among themselves, with the -100 fill, and below it
    itm = rng.choice([-101.0, OFFICIAL_FILL, -1.0, 0.0, 2.5], size=top.shape)
    gold1 = rng.integers(0, n, size=q)
    np.testing.assert_array_equal(official_ranks(top, itm, n, gold1), slow_official(top, itm, n, gold1[:, None]))
    golds = [sorted(rng.choice(n, size=rng.integers(1, 4), replace=False).tolist()) for _ in range(q)]
    np.testing.assert_array_equal(official_ranks(top, itm, n, golds), slow_official(top, itm, n, golds))
    dense = official_score_matrix(top, itm, n)
    assert (dense == OFFICIAL_FILL).sum() >= q * (n - k)


def test_official_rank_of_a_left_out_gold_ignores_its_contrastive_score():
    # 6 candidates, k = 2: the top two get ITM, the rest tie at -100 and are ordered by
    # descending index; gold 2 (contrastive rank 2) and gold 5 (rank 5) swap places.
    scores = np.array([[9.0, 8.0, 7.0, 6.0, 5.0, 4.0]])
    top = contrastive_top_k(scores, 2)
    itm = np.array([[1.0, 3.0]])
    assert official_ranks(top, itm, 6, np.array([1])).tolist() == [0]
    assert official_ranks(top, itm, 6, np.array([0])).tolist() == [1]
    assert official_ranks(top, itm, 6, np.array([5])).tolist() == [2]
    assert official_ranks(top, itm, 6, np.array([2])).tolist() == [5]
    assert reranked_ranks(scores, rerank_top_k(scores, 2, lambda r, c: itm), np.array([2])).tolist() == [2]


def slow_exact(scores, reranked, golds):
    """Documented exact rule: a gold inside the top k -> its position there; outside ->
    max(k, number of candidates scoring strictly higher); min over golds."""
    out = []
    for q, row in enumerate(scores):
        k = len(reranked[q])
        best = None
        for g in golds[q]:
            r = list(reranked[q]).index(g) if g in reranked[q] else max(k, int((row > row[g]).sum()))
            best = r if best is None else min(best, r)
        out.append(best)
    return np.array(out)


@pytest.mark.parametrize("k", [1, 4, 12])
@pytest.mark.parametrize("tied", [True, False])
def test_reranked_ranks_match_the_slow_rule(k, tied):
    rng = np.random.default_rng(k + 100 * tied)
    n, q = 12, 50
    scores = _tied(rng, (q, n)) if tied else rng.normal(size=(q, n))
    itm = rng.normal(size=(q, n))
    top = rerank_top_k(scores, k, lambda r, c: itm[r[:, None], c])
    gold1 = rng.integers(0, n, size=q)
    np.testing.assert_array_equal(reranked_ranks(scores, top, gold1), slow_exact(scores, top, gold1[:, None]))
    golds = [rng.choice(n, size=rng.integers(1, 4), replace=False).tolist() for _ in range(q)]
    np.testing.assert_array_equal(reranked_ranks(scores, top, golds), slow_exact(scores, top, golds))


def test_left_out_golds_keep_their_contrastive_rank():
    rng = np.random.default_rng(3)
    scores, itm = rng.normal(size=(200, 30)), rng.normal(size=(200, 30))
    gold = rng.integers(0, 30, size=200)
    k = 5
    contrastive = metrics.t2i_ranks(scores, gold)
    exact = reranked_ranks(scores, rerank_top_k(scores, k, lambda r, c: itm[r[:, None], c]), gold)
    out = contrastive >= k
    assert out.any() and (~out).any()
    np.testing.assert_array_equal(exact[out], contrastive[out])
    assert (exact[~out] < k).all()
    # re-ranking only permutes the top k: R@K for K >= k is unchanged
    assert metrics.recall_at_k(exact, (5, 10)) == metrics.recall_at_k(contrastive, (5, 10))
    # the official protocol scatters those same golds over [k, N)
    official = official_ranks(contrastive_top_k(scores, k), itm[np.arange(200)[:, None], contrastive_top_k(scores, k)],
                              30, gold)
    np.testing.assert_array_equal(official[~out], exact[~out])
    assert not np.array_equal(official[out], contrastive[out])
    assert (official[out] >= k).all()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="itm has shape"):
        official_ranks(np.zeros((2, 3), int), np.zeros((2, 2)), 5, np.array([0, 1]))
    with pytest.raises(ValueError, match="k = 3 > 2"):
        official_ranks(np.zeros((1, 3), int), np.zeros((1, 3)), 2, np.array([0]))


def test_a_contrastive_weight_blends_the_two_scores_and_zero_is_the_official_rule():
    from ccr_demo.eval.rerank import choose_itc_weight, order_top

    scores = np.array([[0.9, 0.8, 0.1, 0.7]])  # contrastive top 3: candidates 0, 1, 3
    itm = {0: 0.0, 1: 0.5, 3: 0.45}
    scorer = lambda rows, cand: np.vectorize(itm.get)(cand).astype(float)  # noqa: E731
    assert rerank_top_k(scores, 3, scorer).tolist() == [[1, 3, 0]]  # ITM alone
    assert rerank_top_k(scores, 3, scorer, itc_weight=0.0).tolist() == [[1, 3, 0]]
    assert rerank_top_k(scores, 3, scorer, itc_weight=3.0).tolist() == [[1, 0, 3]]  # 2.9, 2.7, 2.55
    assert rerank_top_k(scores, 3, scorer, itc_weight=100.0).tolist() == [[0, 1, 3]]  # contrastive order back
    with pytest.raises(ValueError, match="itc_weight"):
        order_top(np.array([[0, 1]]), np.zeros((1, 2)), np.zeros((1, 2)), -1.0)
    # choosing w: ITM prefers candidate 1, the contrastive score candidate 0
    top = np.array([[0, 1, 2]])
    itm, contrastive = np.array([[0.0, 3.0, 0.0]]), np.array([[0.9, 0.8, 0.1]])
    w, table = choose_itc_weight([(top, itm, contrastive, np.array([[False, True, False]]))])
    assert w == 0.0 and table[0.0] == 1.0 and table[64.0] < 1.0  # ITM right: the official rule wins
    w, table = choose_itc_weight([(top, itm, contrastive, np.array([[True, False, False]]))], weights=(0.0, 1.0, 50.0))
    assert table[0.0] < 1.0 and table[1.0] < 1.0 and w == 50.0  # ITM wrong: enough contrastive score undoes it

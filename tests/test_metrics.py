"""ccr_demo.eval.metrics: hand-made cases, tie rules, slow per-row references, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ccr_demo.eval import metrics as M

# ---------------------------------------------------------------------------- references


def slow_rank(row: np.ndarray, gold: int) -> int:
    """Strictly-higher count from a full sort of one row (ties resolved in the query's favour)."""
    desc = np.sort(row)[::-1]
    return int(np.searchsorted(-desc, -row[gold], side="left"))


def slow_t2i(scores, gold):
    return np.array([slow_rank(row, g) for row, g in zip(scores, gold)])


def slow_i2t(scores, gold_lists):
    return np.array(
        [min(slow_rank(row, g) for g in golds) for row, golds in zip(scores, gold_lists)]
    )


def slow_consistency(scores, k):
    """Candidate ranks by pairwise comparison and top-k by Python sorting, per language."""
    n_lang, n_cand = scores.shape
    ranks = np.array(
        [[int((scores[l] > scores[l, c]).sum()) for l in range(n_lang)] for c in range(n_cand)]
    )
    keys = [(ranks[c].mean(), ranks[c].min(), c) for c in range(n_cand)]
    consensus = min(keys)[2]
    tops = [sorted(range(n_cand), key=lambda c: (-scores[l, c], c))[:k] for l in range(n_lang)]
    overlap = np.array([[len(set(a) & set(b)) / k for b in tops] for a in tops])
    return ranks, consensus, np.array(tops), overlap


# ---------------------------------------------------------------------------- ranks


def test_t2i_hand_made():
    scores = np.array(
        [
            [0.9, 0.1, 0.3],  # gold 0 is top -> 0
            [0.2, 0.5, 0.8],  # gold 0 is last -> 2
            [0.4, 0.6, 0.5],  # gold 2: only 0.6 above -> 1
        ]
    )
    np.testing.assert_array_equal(M.t2i_ranks(scores, [0, 0, 2]), [0, 2, 1])
    assert M.t2i_ranks(scores, np.array([0, 0, 2])).dtype == np.int64


def test_ties_count_in_the_querys_favour():
    scores = np.array([[0.5, 0.5, 0.5, 0.1], [0.7, 0.5, 0.5, 0.9]])
    # Row 0: everything ties with the gold -> 0. Row 1: only 0.7 and 0.9 are strictly higher.
    np.testing.assert_array_equal(M.t2i_ranks(scores, [2, 2]), [0, 2])
    np.testing.assert_array_equal(M.i2t_ranks(scores, [[1], [1, 2]]), [0, 2])


def test_i2t_multiple_gold_captions_takes_the_best():
    scores = np.array(
        [
            [0.1, 0.9, 0.3, 0.8, 0.2],  # golds 2 (rank 2) and 4 (rank 3) -> 2
            [0.6, 0.5, 0.4, 0.3, 0.2],  # golds 0 (rank 0) and 3 (rank 3) -> 0
        ]
    )
    gold = [[2, 4], [3, 0]]
    np.testing.assert_array_equal(M.i2t_ranks(scores, gold), [2, 0])
    # Ragged lists, tuples of arrays and a rectangular array all mean the same.
    np.testing.assert_array_equal(M.i2t_ranks(scores, (np.array([2, 4]), (3, 0))), [2, 0])
    np.testing.assert_array_equal(M.i2t_ranks(scores, np.array(gold)), [2, 0])
    np.testing.assert_array_equal(M.i2t_ranks(scores, [[4], [3, 3, 0]]), [3, 0])
    # A 1-D array is one gold per image.
    np.testing.assert_array_equal(M.i2t_ranks(scores, np.array([2, 3])), [2, 3])


def test_single_query():
    assert M.t2i_ranks([[0.1, 0.2, 0.3]], [0]).tolist() == [2]
    assert M.i2t_ranks([[0.1, 0.2, 0.3]], [[0, 1]]).tolist() == [1]
    assert M.recall_at_k([0]) == {1: 100.0, 5: 100.0, 10: 100.0}


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32])
def test_ranks_match_slow_reference_with_ties(dtype):
    rng = np.random.default_rng(0)
    n_t, n_i = 300, 257  # odd width: packed bits do not fill whole bytes
    # Rounding to one decimal makes ties everywhere, including with the gold.
    scores = np.round(rng.standard_normal((n_t, n_i)), 1)
    scores = (scores * 10).astype(dtype) if dtype == np.int32 else scores.astype(dtype)
    gold = rng.integers(0, n_i, n_t)
    np.testing.assert_array_equal(M.t2i_ranks(scores, gold), slow_t2i(scores, gold))
    gold_lists = [list(rng.integers(0, n_i, rng.integers(1, 6))) for _ in range(n_t)]
    np.testing.assert_array_equal(M.i2t_ranks(scores, gold_lists), slow_i2t(scores, gold_lists))


def test_ranks_in_many_blocks_and_on_a_transposed_view():
    rng = np.random.default_rng(1)
    scores = np.round(rng.random((40, 30_000)), 3).astype(np.float32)  # 16-row blocks
    gold = rng.integers(0, 30_000, 40)
    np.testing.assert_array_equal(M.t2i_ranks(scores, gold), slow_t2i(scores, gold))
    tall = np.ascontiguousarray(scores.T)  # [30000, 40]; its .T is an F-ordered view
    np.testing.assert_array_equal(M.t2i_ranks(tall.T, gold), slow_t2i(scores, gold))


def test_torch_input_accepted():
    scores = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.5, 0.8]], dtype=torch.bfloat16)
    out = M.t2i_ranks(scores, torch.tensor([0, 0]))
    assert isinstance(out, np.ndarray) and out.tolist() == [0, 2]
    grad_scores = scores.float().requires_grad_()
    assert M.i2t_ranks(grad_scores, torch.tensor([[1, 2], [0, 0]])).tolist() == [1, 2]
    assert M.recall_at_k(torch.tensor([0, 3, 7]), ks=(1, 5)) == {1: 100 / 3, 5: 200 / 3}
    assert M.mean_rank_variance(torch.tensor([[0, 2], [1, 1]])) == 0.5


# ---------------------------------------------------------------------------- recall


def test_recall_at_k_and_mean_recall():
    ranks = np.array([0, 0, 1, 4, 5, 9, 10, 100])
    rec = M.recall_at_k(ranks)
    assert rec == {1: 25.0, 5: 50.0, 10: 75.0}
    assert all(type(v) is float for v in rec.values())
    other = M.recall_at_k(np.zeros(4, dtype=int))
    assert M.mean_recall(rec, other) == pytest.approx((25 + 50 + 75 + 300) / 6)
    with pytest.raises(ValueError, match="R@10"):
        M.mean_recall({1: 1.0, 5: 2.0}, other)


# ---------------------------------------------------------------------------- MRV


def test_mrv_known_value_by_hand():
    # Instance 0: ranks 0, 2 -> std 1, var 1. Instance 1: 3, 3, -> 0. Instance 2: 1, 5 -> 2, 4.
    ranks = np.array([[0, 2], [3, 3], [1, 5]])
    assert M.mean_rank_variance(ranks) == pytest.approx(1.0)
    assert M.mean_rank_variance(ranks, kind="var") == pytest.approx(5 / 3)
    # Three languages: [0, 1, 5] has mean 2, var (4 + 1 + 9) / 3 = 14/3.
    assert M.mean_rank_variance([[0, 1, 5]], "var") == pytest.approx(14 / 3)
    assert M.mean_rank_variance([[0, 1, 5]]) == pytest.approx(np.sqrt(14 / 3))


def test_mrv_zero_when_every_language_agrees_and_for_one_language():
    same = np.tile(np.array([[0], [4], [17]]), (1, 8))
    assert M.mean_rank_variance(same) == 0.0
    assert M.mean_rank_variance(same, "var") == 0.0
    assert M.mean_rank_variance([[3], [9]]) == 0.0  # L = 1: documented as 0


def test_mrv_std_vs_var():
    ranks = np.random.default_rng(2).integers(0, 50, (200, 4))
    std, var = M.mean_rank_variance(ranks), M.mean_rank_variance(ranks, "var")
    assert var >= std**2  # Jensen: mean of squares >= square of mean
    assert var == pytest.approx(float(np.mean(ranks.std(axis=1) ** 2)))
    one = np.array([[1, 3, 5, 7]])  # a single instance: var is exactly std squared
    assert M.mean_rank_variance(one, "var") == pytest.approx(M.mean_rank_variance(one) ** 2)


# ---------------------------------------------------------------------------- report


def test_ranks_to_report():
    t2i = {"en": [0, 1, 5], "de": [2, 0, 11]}
    i2t = {"de": np.array([1, 1, 1]), "en": torch.tensor([0, 0, 0])}
    rep = M.ranks_to_report(t2i, i2t)
    assert rep["languages"] == ["en", "de"]
    assert rep["t2i"]["en"] == {1: 100 / 3, 5: 200 / 3, 10: 100.0}
    assert rep["i2t"]["de"] == {1: 0.0, 5: 100.0, 10: 100.0}
    assert rep["mean_recall"]["en"] == pytest.approx((100 / 3 + 200 / 3 + 100 + 300) / 6)
    assert rep["overall_mean_recall"] == pytest.approx(np.mean(list(rep["mean_recall"].values())))
    # t2i per instance: std of (0,2), (1,0), (5,11) = 1, 0.5, 3; i2t: (0,1) x3 = 0.5.
    assert rep["mrv"] == pytest.approx({"t2i": 4.5 / 3, "i2t": 0.5})
    assert rep["mrv_var"] == pytest.approx({"t2i": (1 + 0.25 + 9) / 3, "i2t": 0.25})
    single = M.ranks_to_report({"en": [0, 3]}, {"en": [1, 2]})
    assert single["mrv"] == {"t2i": None, "i2t": None}


def test_ranks_to_report_rejects_mismatch():
    with pytest.raises(ValueError, match="same number of instances"):
        M.ranks_to_report({"en": [0, 1], "de": [0]}, {"en": [0], "de": [0]})
    with pytest.raises(ValueError, match="same languages"):
        M.ranks_to_report({"en": [0], "de": [0]}, {"en": [0]})


# ---------------------------------------------------------------------------- one query


def test_rank_consistency_hand_made():
    scores = np.array(
        [  # candidates:  0    1    2    3
            [0.9, 0.8, 0.1, 0.8],  # ranks 0 1 3 1
            [0.7, 0.9, 0.2, 0.1],  # ranks 1 0 2 3
        ]
    )
    rc = M.rank_consistency(scores, k=2)
    np.testing.assert_array_equal(rc.ranks, [[0, 1], [1, 0], [3, 2], [1, 3]])
    # Candidates 0 and 1 tie on mean rank 0.5 and on min rank 0: the lower index wins.
    assert rc.consensus == 0
    assert rc.mrv == 0.5 and rc.mrv_var == 0.25
    np.testing.assert_array_equal(rc.std, [0.5, 0.5, 0.5, 1.0])
    # Language 0's top 2: 0, then 1 and 3 tie at 0.8 -> lower index 1. Language 1: 1, 0.
    np.testing.assert_array_equal(rc.topk, [[0, 1], [1, 0]])
    np.testing.assert_array_equal(rc.overlap, [[1.0, 1.0], [1.0, 1.0]])
    assert M.rank_consistency(scores, k=50).k == 4


def test_rank_consistency_against_slow_loop():
    rng = np.random.default_rng(3)
    scores = np.round(rng.standard_normal((5, 120)), 1)  # many ties
    rc = M.rank_consistency(torch.from_numpy(scores), k=7)
    ranks, consensus, tops, overlap = slow_consistency(scores, 7)
    np.testing.assert_array_equal(rc.ranks, ranks)
    assert rc.consensus == consensus
    np.testing.assert_array_equal(rc.topk, tops)
    np.testing.assert_allclose(rc.overlap, overlap)
    np.testing.assert_allclose(rc.std, ranks.std(axis=1))
    np.testing.assert_allclose(rc.var, ranks.var(axis=1))
    np.testing.assert_allclose(rc.mean_rank, ranks.mean(axis=1))
    assert rc.mrv == pytest.approx(ranks[consensus].std())


def test_consensus_tie_break_by_min_rank():
    # Same mean rank 2 for candidates 0 and 1; candidate 1 has the better best rank.
    assert M.consensus_candidate([[2, 2], [0, 4], [3, 3]]) == 1


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: M.t2i_ranks(np.zeros(3), [0]), "2-D"),
        (lambda: M.t2i_ranks(np.zeros((2, 3)), [0]), "1 entries but scores have 2 rows"),
        (lambda: M.t2i_ranks(np.zeros((2, 3)), [0, 3]), r"gold_image\[1\] = 3 is out of range"),
        (lambda: M.t2i_ranks(np.zeros((2, 3)), [0, -1]), "out of range"),
        (lambda: M.t2i_ranks(np.zeros((2, 3)), [0.0, 1.0]), "integer"),
        (lambda: M.t2i_ranks(np.zeros((0, 3)), []), "empty"),
        (lambda: M.t2i_ranks([[0.1, 0.2], [0.2, np.nan]], [0, 0]), "row 1 contains NaN"),
        (lambda: M.t2i_ranks([[True, False]], [0]), "real numbers"),
        (lambda: M.i2t_ranks(np.zeros((3, 4)), [[0], [], [1]]), "image row 1 has no gold texts"),
        (lambda: M.i2t_ranks(np.zeros((2, 4)), [[0], [1, 4]]), "image row 1 has text index 4"),
        (lambda: M.i2t_ranks(np.zeros((2, 4)), [[0]]), "1 rows but scores have 2"),
        (lambda: M.i2t_ranks(np.zeros((2, 4)), [0, 1]), "list of lists"),
        (lambda: M.i2t_ranks(np.zeros((2, 4)), [[0.5], [1]]), "integer"),
        (lambda: M.i2t_ranks(np.zeros((2, 4)), np.zeros((2, 2, 1), int)), "1-D"),
        (lambda: M.recall_at_k([]), "empty"),
        (lambda: M.recall_at_k([[0, 1]]), "1-D"),
        (lambda: M.recall_at_k([0, -1]), "negative"),
        (lambda: M.recall_at_k([0, 1], ks=(0,)), "positive integers"),
        (lambda: M.mean_rank_variance([0, 1]), "2-D"),
        (lambda: M.mean_rank_variance(np.zeros((0, 3))), "N = 0"),
        (lambda: M.mean_rank_variance(np.zeros((3, 0))), "L = 0"),
        (lambda: M.mean_rank_variance([[0, np.nan]]), "NaN"),
        (lambda: M.mean_rank_variance([[0, 1]], kind="sd"), "kind"),
        (lambda: M.rank_consistency([[0.1, np.nan]]), "NaN"),
        (lambda: M.rank_consistency([[0.1, 0.2]], k=0), "positive integer"),
        (lambda: M.consensus_candidate(np.zeros((0, 2))), "non-empty"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_infinite_scores_are_ordered_values():
    # -inf masks a candidate out; +inf outranks everything; neither is an error.
    scores = np.array([[0.3, -np.inf, 0.9], [np.inf, 0.5, np.inf]])
    assert M.t2i_ranks(scores, [0, 2]).tolist() == [1, 0]
    assert M.i2t_ranks(scores, [[1], [1]]).tolist() == [2, 2]
    assert M.rank_consistency(scores).ranks.tolist() == [[1, 0], [2, 2], [0, 0]]


# --------------------------------------------------------------- typed queries (many relevant)
def _slow_query_metrics(scores, relevant, k):
    """Per-query loops with sorted(); no shared code with M.py."""
    p, ap, first = [], [], []
    for s, r in zip(scores.tolist(), relevant.tolist()):
        order = sorted(range(len(s)), key=lambda i: (-s[i], i))
        n_rel = sum(r)
        hits = [r[i] for i in order[:k]]
        p.append(sum(hits) / min(k, n_rel))
        run, total = 0, 0.0
        for pos, h in enumerate(order[:10], 1):
            if r[h]:
                run += 1
                total += run / pos
        ap.append(total / min(n_rel, 10))
        best = max(s[i] for i in range(len(s)) if r[i])
        first.append(sum(x > best for x in s))
    return np.array(p), np.array(ap), np.array(first)


def test_typed_query_metrics_against_slow_loops():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(30, 50))
    relevant = rng.random((30, 50)) < 0.1
    relevant[np.arange(30), rng.integers(0, 50, 30)] = True
    p, ap, first = _slow_query_metrics(scores, relevant, 5)
    np.testing.assert_allclose(M.precision_at_k(scores, relevant, 5), p)
    np.testing.assert_allclose(M.average_precision_at_k(scores, relevant, 10), ap)
    np.testing.assert_array_equal(M.first_relevant_ranks(scores, relevant), first)


def test_precision_is_capped_by_the_relevant_count():
    scores = np.array([[0.9, 0.8, 0.1, 0.0, 0.2, 0.3]])
    relevant = np.array([[True, True, False, False, False, False]])
    assert M.precision_at_k(scores, relevant, 5)[0] == 1.0  # both relevant images on top
    assert M.precision_at_k(scores[:, ::-1].copy(), relevant, 3)[0] == 0.5  # 1 of the 2 in the top 3


def test_top_k_overlap_and_report_consistency():
    tops = np.array([[[0, 1, 2]], [[2, 1, 0]], [[3, 4, 0]]])  # 3 languages, 1 query, k=3
    # pairs: (a,b) 3/3, (a,c) 1/3, (b,c) 1/3 -> mean 5/9
    assert M.top_k_overlap(tops, 5)[0] == pytest.approx(5 / 9)
    rng = np.random.default_rng(1)
    s = rng.normal(size=(8, 20))
    rel = np.zeros((8, 20), dtype=bool)
    rel[:, 3] = True
    same = M.typed_query_report({"en": s, "de": s.copy()}, rel)
    assert same["consistency"]["first_rank_std"] == 0.0 and same["consistency"]["top5_overlap"] == 1.0
    diff = M.typed_query_report({"en": s, "de": -s}, rel)
    assert diff["consistency"]["first_rank_std"] > 0 and diff["consistency"]["top5_overlap"] < 1.0


def test_query_without_relevant_image_is_an_error():
    with pytest.raises(ValueError, match="query 1 has no relevant image"):
        M.precision_at_k(np.zeros((2, 3)), np.array([[1, 0, 0], [0, 0, 0]], dtype=bool), 1)

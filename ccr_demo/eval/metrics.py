"""Retrieval metrics: ranks, Recall@K, mean recall, Mean Rank Variance (MRV), and the
cross-language consistency of one query (PAPER.md "Mean Rank Variance" and "Recall").

Conventions, shared by every function here:

- A rank is 0-based: the number of candidates with a strictly higher score, ties in the
  query's favour (the convention and its kernel: ``ccr_demo.utils.ranks.count_higher``; its
  agreement with the paper's ``argsort`` loop on tie-free scores: bench/bench_metrics.py).
- Inputs may be numpy arrays or torch tensors (any device); results are numpy arrays or
  Python numbers.
- Work is vectorised: no Python loop over queries. The paper's evaluation sorts every row
  in a Python loop; counting the scores above the gold one reads each score once instead.
- Bad input (wrong shape, mismatched sizes, index out of range, NaN scores) raises
  ValueError with a message that names the argument, and the row where there is one.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ccr_demo.utils.ranks import count_higher

DEFAULT_KS = (1, 5, 10)


# --------------------------------------------------------------------------- input checks


def _is_tensor(x) -> bool:
    torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported
    return torch is not None and isinstance(x, torch.Tensor)


def _to_numpy(x, name: str) -> np.ndarray:
    """A numpy view/copy of x; torch tensors are detached and moved to the CPU."""
    if _is_tensor(x):
        torch = sys.modules["torch"]
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()  # numpy has no bfloat16; float32 holds it exactly
        return x.numpy()
    try:
        return np.asarray(x)
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"{name}: cannot be read as an array ({e})") from None


def _check_real(a: np.ndarray, name: str) -> None:
    if a.dtype == np.bool_ or not (
        np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
    ):
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")


def _check_no_nan(a: np.ndarray, name: str) -> None:
    """Raise naming the first row of a 2-D array that holds NaN.

    NaN compares False with everything, so it would silently drop out of every count.
    ±inf are ordered values and stay allowed (-inf is a natural way to mask a candidate).
    One max() is the cheapest full pass: NaN propagates through it.
    """
    if np.issubdtype(a.dtype, np.floating) and np.isnan(a.max()):
        row = int(np.flatnonzero(np.isnan(a).any(axis=1))[0])
        raise ValueError(f"{name}: row {row} contains NaN")


def _scores_2d(x, name: str) -> np.ndarray:
    """Validated, C-contiguous 2-D score matrix [queries, candidates]."""
    a = _to_numpy(x, name)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D [queries, candidates], got shape {a.shape}")
    if 0 in a.shape:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    _check_real(a, name)
    a = np.ascontiguousarray(a)  # row blocks of a transposed view would be strided reads
    _check_no_nan(a, name)
    return a


def _index_vector(x, name: str, length: int, upper: int, what: str) -> np.ndarray:
    """Validated int64 indices, shape [length], each in [0, upper)."""
    a = _to_numpy(x, name)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.shape[0] != length:
        raise ValueError(f"{name} has {a.shape[0]} entries but scores have {length} rows")
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integer indices, got dtype {a.dtype}")
    bad = np.flatnonzero((a < 0) | (a >= upper))
    if bad.size:
        raise ValueError(
            f"{name}[{bad[0]}] = {a[bad[0]]} is out of range: there are {upper} {what}"
        )
    return a.astype(np.int64, copy=False)


def _ranks_1d(x, name: str) -> np.ndarray:
    a = _to_numpy(x, name)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D [queries], got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    _check_real(a, name)
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    if (a < 0).any():
        raise ValueError(f"{name} contains negative ranks (ranks are 0-based counts)")
    return a


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks or any(isinstance(k, bool) or int(k) != k or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks!r}")
    return tuple(int(k) for k in ks)


# --------------------------------------------------------------------------- ranks


def t2i_ranks(scores, gold_image) -> np.ndarray:
    """Text-to-image ranks: int64[T], the 0-based rank of each text's gold image.

    scores: [T, I] similarity of text t to image i. gold_image: [T] image index per text.
    Rank = number of images scoring strictly higher than the gold image.
    """
    s = _scores_2d(scores, "scores")
    gold = _index_vector(gold_image, "gold_image", s.shape[0], s.shape[1], "images")
    return count_higher(s, s[np.arange(s.shape[0]), gold])


def gold_lists(gold_texts, n_images: int, n_texts: int) -> tuple[np.ndarray, np.ndarray]:
    """(flat int64 text indices, number of gold texts per image) from a ragged input.

    Accepts a list of lists (the paper's img2txt), a 2-D integer array [I, K] (K golds per
    image) or a 1-D integer array [I] (one gold per image).
    """
    name = "gold_texts"
    if isinstance(gold_texts, np.ndarray) or _is_tensor(gold_texts):
        a = _to_numpy(gold_texts, name)
        if a.ndim not in (1, 2):
            raise ValueError(f"{name} as an array must be 1-D [I] or 2-D [I, K], got {a.shape}")
        if a.shape[0] != n_images:
            raise ValueError(f"{name} has {a.shape[0]} rows but scores have {n_images} rows")
        a = a.reshape(n_images, -1)
        counts = np.full(a.shape[0], a.shape[1], dtype=np.int64)
        flat = a.reshape(-1)
    else:
        try:
            counts = np.fromiter(map(len, gold_texts), dtype=np.int64)
        except TypeError:
            raise ValueError(
                f"{name} must be a list of lists of text indices, or a 1-D/2-D integer array"
            ) from None
        flat = np.asarray(list(itertools.chain.from_iterable(gold_texts)))
    if counts.shape[0] != n_images:
        raise ValueError(f"{name} has {counts.shape[0]} rows but scores have {n_images} rows")
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise ValueError(f"{name}: image row {empty[0]} has no gold texts")
    if flat.dtype == np.bool_ or not np.issubdtype(flat.dtype, np.integer):
        raise ValueError(f"{name} must hold integer text indices, got dtype {flat.dtype}")
    bad = np.flatnonzero((flat < 0) | (flat >= n_texts))
    if bad.size:
        row = int(np.searchsorted(np.cumsum(counts), bad[0], side="right"))
        raise ValueError(
            f"{name}: image row {row} has text index {flat[bad[0]]}, out of range: "
            f"there are {n_texts} texts"
        )
    return flat.astype(np.int64, copy=False), counts


def i2t_ranks(scores, gold_texts) -> np.ndarray:
    """Image-to-text ranks: int64[I], the best (lowest) rank among each image's gold texts.

    scores: [I, T] similarity of image i to text t. gold_texts: see gold_lists.
    The best gold's rank is the number of texts scoring strictly higher than the highest
    gold score, so one count per row suffices whatever the number of golds.
    """
    s = _scores_2d(scores, "scores")
    flat, counts = gold_lists(gold_texts, s.shape[0], s.shape[1])
    gold_scores = s[np.repeat(np.arange(s.shape[0]), counts), flat]
    starts = np.cumsum(counts) - counts
    return count_higher(s, np.maximum.reduceat(gold_scores, starts))


# --------------------------------------------------------------------------- summaries


def recall_at_k(ranks, ks: Sequence[int] = DEFAULT_KS) -> dict[int, float]:
    """{k: percent of queries whose gold is in the top k}, i.e. rank < k, in 0-100."""
    r = _ranks_1d(ranks, "ranks")
    return {k: 100.0 * int(np.count_nonzero(r < k)) / r.size for k in _check_ks(ks)}


def mean_recall(
    t2i_recall: Mapping[int, float],
    i2t_recall: Mapping[int, float],
    ks: Sequence[int] = DEFAULT_KS,
) -> float:
    """Mean of R@k over ks and both directions (PAPER.md "Recall": R@1,5,10 by default).

    Takes the dicts recall_at_k returns, so each ranking is summarised once.
    """
    ks = _check_ks(ks)
    values = []
    for name, rec in (("t2i_recall", t2i_recall), ("i2t_recall", i2t_recall)):
        missing = [k for k in ks if k not in rec]
        if missing:
            raise ValueError(f"{name} lacks R@{missing[0]} (has {sorted(rec)})")
        values += [float(rec[k]) for k in ks]
    return float(np.mean(values))


def mean_rank_variance(ranks, kind: str = "std") -> float:
    """MRV: mean over instances of the spread of the gold's rank across languages.

    ranks: [N, L], instance i's rank in language l (the same N instances in every language).
    kind="std" (the paper's MRV): population std (ddof 0) per instance, then the mean.
    kind="var": population variance per instance, then the mean; this is not MRV squared
    (it is >= MRV**2), so report it labelled.
    L = 1 gives 0.0 (one value has no spread); comparing languages needs L >= 2.
    """
    if kind not in ("std", "var"):
        raise ValueError(f'kind must be "std" or "var", got {kind!r}')
    r = _to_numpy(ranks, "ranks")
    if r.ndim != 2:
        raise ValueError(f"ranks must be 2-D [instances, languages], got shape {r.shape}")
    if r.shape[0] == 0:
        raise ValueError("ranks has no instances (N = 0)")
    if r.shape[1] == 0:
        raise ValueError("ranks has no languages (L = 0)")
    _check_real(r, "ranks")
    if np.issubdtype(r.dtype, np.floating) and not np.isfinite(r).all():
        raise ValueError("ranks contains NaN or inf")
    spread = r.std(axis=1) if kind == "std" else r.var(axis=1)
    return float(spread.mean())


def ranks_to_report(
    t2i_ranks: Mapping[str, object],
    i2t_ranks: Mapping[str, object],
    ks: Sequence[int] = DEFAULT_KS,
) -> dict:
    """Per-language R@k both ways, mean recalls and MRV, from per-language rank vectors.

    t2i_ranks / i2t_ranks: {language: int[N]}, the same languages in both; within one
    direction every language must have the same N (MRV needs a parallel test set).
    Returns {"languages", "ks", "t2i": {lang: {k: R}}, "i2t": {...},
    "mean_recall": {lang: float}, "overall_mean_recall": mean over languages,
    "mrv": {"t2i", "i2t"} (std), "mrv_var": {"t2i", "i2t"} (variance)}.
    With a single language the MRV entries are None: there is nothing to compare.
    """
    ks = _check_ks(ks)
    langs = list(t2i_ranks)
    if not langs:
        raise ValueError("t2i_ranks has no languages")
    if set(i2t_ranks) != set(langs):
        raise ValueError(
            f"t2i_ranks and i2t_ranks must cover the same languages, got "
            f"{sorted(t2i_ranks)} and {sorted(i2t_ranks)}"
        )
    report: dict = {"languages": langs, "ks": list(ks), "t2i": {}, "i2t": {}}
    mrv: dict = {}
    mrv_var: dict = {}
    several = len(langs) > 1
    for direction, per_lang in (("t2i", t2i_ranks), ("i2t", i2t_ranks)):
        ranks = {lang: _ranks_1d(per_lang[lang], f"{direction} ranks[{lang!r}]") for lang in langs}
        sizes = {lang: r.size for lang, r in ranks.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(
                f"{direction} ranks must have the same number of instances in every language "
                f"(MRV needs a parallel test set), got {sizes}"
            )
        report[direction] = {lang: recall_at_k(ranks[lang], ks) for lang in langs}
        stacked = np.stack([ranks[lang] for lang in langs], axis=1)
        mrv[direction] = mean_rank_variance(stacked, "std") if several else None
        mrv_var[direction] = mean_rank_variance(stacked, "var") if several else None
    report["mean_recall"] = {
        lang: mean_recall(report["t2i"][lang], report["i2t"][lang], ks) for lang in langs
    }
    report["overall_mean_recall"] = float(np.mean(list(report["mean_recall"].values())))
    report["mrv"], report["mrv_var"] = mrv, mrv_var
    return report


# --------------------------------------------------------------------------- one query


def consensus_candidate(ranks) -> int:
    """Index of the candidate the languages agree on best: ranks [C, L] per language.

    Lowest mean rank, ties broken by the lowest best (min) rank, then the lowest index.
    Integer sums keep the first criterion exact; no sort of the C candidates is needed.
    """
    r = _to_numpy(ranks, "ranks")
    if r.ndim != 2 or 0 in r.shape:
        raise ValueError(f"ranks must be 2-D [candidates, languages], non-empty; got {r.shape}")
    _check_real(r, "ranks")
    total = r.sum(axis=1)
    tied = np.flatnonzero(total == total.min())
    return int(tied[np.argmin(r[tied].min(axis=1))])  # argmin keeps the first index


@dataclass(frozen=True)
class RankConsistency:
    """How one query, typed in L languages, ranks the same C candidates.

    ranks: int64[C, L], candidate c's rank in language l (strictly-higher count).
    std, var: float64[C], population std / variance of each candidate's ranks.
    mean_rank: float64[C].
    consensus: the candidate chosen by consensus_candidate.
    mrv, mrv_var: std / variance of the consensus candidate's ranks, i.e. this query's MRV.
    k: the top-k size used (min of the requested k and C).
    topk: int64[L, k], each language's top k (by score, ties by lower index), best first.
    overlap: float64[L, L], |top_k(a) & top_k(b)| / k; 1.0 on the diagonal.
    """

    ranks: np.ndarray
    std: np.ndarray
    var: np.ndarray
    mean_rank: np.ndarray
    consensus: int
    mrv: float
    mrv_var: float
    k: int
    topk: np.ndarray
    overlap: np.ndarray


def _all_ranks(scores: np.ndarray) -> np.ndarray:
    """int64[L, C]: every candidate's strictly-higher count, one argsort per language.

    In descending order a candidate's rank is the position where its run of equal scores
    starts; a running maximum over the run starts gives it. Flat indices let one fancy
    assignment scatter all languages back (put_along_axis was twice as slow).
    """
    n_lang, n_cand = scores.shape
    desc = np.argsort(scores, axis=1)[:, ::-1] + (np.arange(n_lang) * n_cand)[:, None]
    v = scores.ravel()[desc]
    start = np.zeros((n_lang, n_cand), dtype=np.int64)
    np.multiply(v[:, 1:] != v[:, :-1], np.arange(1, n_cand), out=start[:, 1:])
    np.maximum.accumulate(start, axis=1, out=start)
    ranks = np.empty(n_lang * n_cand, dtype=np.int64)
    ranks[desc] = start
    return ranks.reshape(n_lang, n_cand)


def _top_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """int64[L, k] from ranks [L, C]: order by (rank, index); only rank < k can qualify."""
    top = np.empty((ranks.shape[0], k), dtype=np.int64)
    for lang, r in enumerate(ranks):  # L <= ~10 languages, each O(C)
        cand = np.flatnonzero(r < k)  # at least k of them: rank counts strictly higher
        top[lang] = cand[np.lexsort((cand, r[cand]))[:k]]
    return top


def rank_consistency(scores, k: int = 10) -> RankConsistency:
    """Consistency of one query across languages: scores [L, C], row l = the query in
    language l scored against the same C candidates. See RankConsistency for the fields.

    Built for live display: about 45 ms for L = 10, C = 1e5 on one CPU core (2-core CI VM).
    """
    s = _scores_2d(scores, "scores")
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    n_lang, n_cand = s.shape
    k = min(int(k), n_cand)
    ranks_lc = _all_ranks(s)
    ranks = np.ascontiguousarray(ranks_lc.T)
    consensus = consensus_candidate(ranks)
    topk = _top_k(ranks_lc, k)
    member = np.zeros((n_lang, n_cand), dtype=bool)
    np.put_along_axis(member, topk, True, axis=1)
    # member[b, topk[a]] marks which of a's top k are in b's: [L(b), L(a), k], no BLAS.
    overlap = member[:, topk].sum(axis=2).T / k
    var = ranks_lc.var(axis=0)  # on [L, C]: reducing the long-rows layout is faster
    std = np.sqrt(var)
    return RankConsistency(
        ranks=ranks,
        std=std,
        var=var,
        mean_rank=ranks_lc.mean(axis=0),
        consensus=consensus,
        mrv=float(std[consensus]),
        mrv_var=float(var[consensus]),
        k=k,
        topk=topk,
        overlap=overlap,
    )


# --------------------------------------------------------------- typed queries (many relevant)
# A typed query ("red star") is true of many images. Its metrics take scores [Q, N] and a
# boolean relevance matrix [Q, N] (every query needs at least one relevant image).


def _relevance(relevant, shape: tuple[int, int]) -> np.ndarray:
    rel = _to_numpy(relevant, "relevant")
    if rel.shape != shape:
        raise ValueError(f"relevant must have the scores' shape {shape}, got {rel.shape}")
    rel = rel.astype(bool, copy=False)
    empty = np.flatnonzero(~rel.any(axis=1))
    if empty.size:
        raise ValueError(f"relevant: query {int(empty[0])} has no relevant image ({empty.size} such queries)")
    return rel


def first_relevant_ranks(scores, relevant) -> np.ndarray:
    """int64[Q]: rank of each query's best-scored relevant image (strictly-higher count),
    the multi-relevant form of the gold rank."""
    s = _scores_2d(scores, "scores")
    rel = _relevance(relevant, s.shape)
    best = np.where(rel, s, -np.inf).max(axis=1)
    return count_higher(s, best)


def top_k_indices(scores, k: int) -> np.ndarray:
    """int64[Q, k]: each row's k best candidates, best first; ties go to the lower index."""
    s = _scores_2d(scores, "scores")
    k = min(int(k), s.shape[1])
    part = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < s.shape[1] else np.tile(np.arange(s.shape[1]), (len(s), 1))
    # Order the k by (score desc, index asc). A tie at the k-th score may leave out an
    # equal candidate with a lower index; precision is the same either way.
    vals = np.take_along_axis(s, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, axis=1)


def precision_at_k(scores, relevant, k: int) -> np.ndarray:
    """float64[Q]: relevant images in each query's top k over min(k, its relevant count).

    The denominator is capped so that a perfect ranking scores 1.0 also for a query true
    of fewer than k images ("two red hearts" may match only two scenes); with at least k
    relevant images it is the plain precision@k.
    """
    s = _scores_2d(scores, "scores")
    rel = _relevance(relevant, s.shape)
    top = top_k_indices(s, k)
    return np.take_along_axis(rel, top, axis=1).sum(axis=1) / np.minimum(rel.sum(axis=1), top.shape[1])


def average_precision_at_k(scores, relevant, k: int = 10) -> np.ndarray:
    """float64[Q]: AP@k = sum_{i<=k} P@i * rel_i / min(|relevant|, k)."""
    s = _scores_2d(scores, "scores")
    rel = _relevance(relevant, s.shape)
    top = top_k_indices(s, k)
    hits = np.take_along_axis(rel, top, axis=1).astype(np.float64)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    return (precision * hits).sum(axis=1) / np.minimum(rel.sum(axis=1), top.shape[1])


def top_k_overlap(tops: np.ndarray, n_candidates: int) -> np.ndarray:
    """float64[Q]: mean over language pairs of |top_k(a) & top_k(b)| / k; tops int[L, Q, k]."""
    tops = np.asarray(tops)
    if tops.ndim != 3 or tops.shape[0] < 2:
        raise ValueError(f"tops must be [languages >= 2, queries, k], got {tops.shape}")
    n_lang, n_q, k = tops.shape
    member = np.zeros((n_lang, n_q, n_candidates), dtype=np.float32)
    np.put_along_axis(member, tops, 1.0, axis=2)
    shared = np.einsum("aqn,bqn->abq", member, member)  # [L, L, Q]
    pairs = np.triu_indices(n_lang, 1)
    return shared[pairs].mean(axis=0) / k


def typed_query_report(scores: Mapping[str, np.ndarray], relevant, ks: Sequence[int] = (1, 5),
                       map_k: int = 10, overlap_k: int = 5, per_query: bool = False) -> dict:
    """Per-language P@K and mAP@map_k, and cross-language consistency, for queries that
    are parallel across languages: ``scores[lang]`` is [Q, N] for the same Q queries.

    Consistency: ``first_rank_std`` is the mean over queries of the population std across
    languages of the first relevant image's rank (MRV with "the gold item" read as "the
    best-ranked relevant item"); ``first_rank_var`` the same with the variance;
    ``top5_overlap`` the mean pairwise overlap of the languages' top-``overlap_k`` lists.
    ``per_query`` adds the per-query arrays behind the means: {"first_rank": {lang: int[Q]},
    "p@k": {lang: float[Q]}} (numpy, for breakdowns; not JSON-ready).
    """
    languages = list(scores)
    if not languages:
        raise ValueError("scores: no languages")
    per_lang, firsts, tops, n_candidates = {}, [], [], 0
    precision: dict[str, dict[str, np.ndarray]] = {f"p@{k}": {} for k in _check_ks(ks)}
    for lang in languages:
        s = _scores_2d(scores[lang], f"scores[{lang!r}]")
        n_candidates = s.shape[1]
        rel = _relevance(relevant, s.shape)
        for k in _check_ks(ks):
            precision[f"p@{k}"][lang] = precision_at_k(s, rel, k)
        row = {name: float(values[lang].mean()) for name, values in precision.items()}
        row[f"map@{map_k}"] = float(average_precision_at_k(s, rel, map_k).mean())
        per_lang[lang] = row
        firsts.append(first_relevant_ranks(s, rel))
        tops.append(top_k_indices(s, overlap_k))
    first_ranks = np.stack(firsts, axis=1)  # [Q, L]
    metrics_names = list(per_lang[languages[0]])
    report = {
        "n_queries": int(first_ranks.shape[0]),
        "languages": languages,
        "per_language": per_lang,
        "mean": {m: float(np.mean([per_lang[lang][m] for lang in languages])) for m in metrics_names},
        "consistency": {
            "first_rank_std": mean_rank_variance(first_ranks, "std") if len(languages) > 1 else 0.0,
            "first_rank_var": mean_rank_variance(first_ranks, "var") if len(languages) > 1 else 0.0,
            f"top{overlap_k}_overlap": float(top_k_overlap(np.stack(tops), n_candidates).mean())
            if len(languages) > 1 else 1.0,
        },
    }
    if per_query:
        report["per_query"] = {"first_rank": dict(zip(languages, firsts)), **precision}
    return report

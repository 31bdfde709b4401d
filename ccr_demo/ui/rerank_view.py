"""Search results re-ranked with the fusion encoder (ITM), as the app shows them.

The rule is ``ccr_demo.eval.rerank``'s (the one evaluation uses): each language's contrastive top
``rerank_k`` is re-ordered by the ITM "match" score of (query, image) pairs, ties keeping their
contrastive order; everything after the top ``rerank_k`` keeps its contrastive order. Here the
candidates are what the gallery search (FAISS) returned for each language, best first, ties
to the lower gallery row.

What this module adds for the app:
- ``ImageMemoryCache``: the fusion encoder's image memory [1+T, W] of gallery images, computed
  from the gallery's own image files (the resolved ``path`` of its items, checked inside the
  gallery's allowed roots when it was loaded; never a path from a request) and kept in a
  bounded LRU (items and bytes), keyed on the model's weights fingerprint and the file's path,
  size and mtime, so repeated queries encode no image twice;
- ``rerank``: one ``encode_text_states`` call for all languages and ONE ``match_scores`` call
  for all languages' pairs, then the re-ranked order per language and every image's rank after
  re-ranking, with the consistency panel's numbers (``metrics.rank_consistency``) recomputed
  from those ranks, so a view can show both "contrastive -> re-ranked".

Ranks after re-ranking: an image in a language's re-ranked top k takes its position there; any
other image keeps its exact contrastive rank (over the whole gallery). No Gradio here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ccr_demo.data.errors import DataFormatError
from ccr_demo.data.images import load_image
from ccr_demo.eval import metrics
from ccr_demo.eval.rerank import model_itc_weight, rerank_top_k
from ccr_demo.utils.cache import LockedLRU

# torch (and the model's fingerprint, which needs it) is imported where a re-ranking runs: the
# page is built from this module's names before torch is loaded (``loading``: page first)
if TYPE_CHECKING:
    import torch

DEFAULT_RERANK_K = 16
NO_FUSION = ("the loaded model is a dual encoder (no fusion encoder, `model.fusion.layers` = 0): there is no "
             "ITM head to re-rank with")


def has_fusion(model: Any) -> bool:
    return bool(getattr(model, "has_fusion", False))


def depth_within_budget(rerank_k: int, n_languages: int, max_pairs: int) -> tuple[int, str | None]:
    """(re-rank depth per language, a note or None): ``rerank_k`` unless ``n_languages`` x
    ``rerank_k`` ITM pairs exceed ``max_pairs``, the work one request may cause (the fusion
    encoder costs ~9 ms of CPU a pair at 64 tokens: 10 languages x 128 took ~11 s); then the
    deepest depth within it (at least 1), and a note saying so: the results say what was done."""
    depth = max(1, min(rerank_k, max_pairs // max(n_languages, 1)))
    if depth == rerank_k:
        return rerank_k, None
    return depth, (f"re-ranked the top {depth} per language, not {rerank_k}: one request re-ranks at most "
                   f"{max_pairs} (query, image) pairs, and {n_languages} languages x {rerank_k} would be "
                   f"{n_languages * rerank_k}")


# --------------------------------------------------------------------------- image memory cache


def tensor_nbytes(value: torch.Tensor) -> int:
    """A tensor's size in bytes (what the image memory cache counts against its byte budget)."""
    return value.element_size() * value.nelement()


class ImageMemoryCache(LockedLRU):
    """Bounded, thread-safe LRU of fusion image memories (CPU float32 tensors [1+T, W]): at most
    ``max_items`` of them and ``max_bytes`` in all (``utils.cache.LockedLRU``)."""

    def __init__(self, max_items: int = 2048, max_bytes: int = 256 << 20):
        super().__init__(max_items, max_bytes, sizeof=tensor_nbytes)


def _file_key(path: str) -> tuple | None:
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return path, st.st_size, st.st_mtime_ns


def gallery_image_memory(model, cache: ImageMemoryCache, gallery, rows: Sequence[int],
                         max_pixels: int | None = None) -> tuple[dict[int, torch.Tensor], list[str], int]:
    """({row: memory [1+T, W]} for the rows whose image could be read, problems, images encoded now).

    Images come from ``gallery.image_file(row)``: the item's image file, else its thumbnail
    (images built from base64 rows). Uncached ones are encoded in one ``encode_image_memory``
    call and cached."""
    from ccr_demo.model.fingerprint import weights_fingerprint

    fp = weights_fingerprint(model)
    found: dict[int, torch.Tensor] = {}
    problems: list[str] = []
    todo_rows, todo_keys, todo_images = [], [], []
    for row in rows:
        item = gallery.items[row]
        path = gallery.image_file(row)
        key = _file_key(path) if path else None
        if key is None:
            problems.append(f"{item.get('id')}: " + ("the image file is missing" if item.get("path") else
                                                     "the gallery holds no image file or thumbnail for it"))
            continue
        value = cache.get((fp, *key))
        if value is not None:
            found[row] = value
            continue
        try:
            todo_images.append(load_image(path, name=str(item.get("id")), max_pixels=max_pixels))
        except DataFormatError as e:
            problems.append(str(e))
            continue
        todo_rows.append(row)
        todo_keys.append((fp, *key))
    if todo_images:
        memory = model.encode_image_memory(todo_images)
        for row, key, m in zip(todo_rows, todo_keys, memory):
            m = m.clone()  # own storage: a view would keep the whole batch alive in the cache
            cache.put(key, m)
            found[row] = m
    return found, problems, len(todo_images)


# --------------------------------------------------------------------------- re-ranking


@dataclass
class Reranked:
    """One search's re-ranked view; rows of the [L, C] arrays are languages, in query order."""

    k: int  # the re-rank depth used (at most the number of candidates)
    positions: np.ndarray  # [L, C] gallery rows, re-ranked order (-1 at the end where the index found fewer)
    scores: np.ndarray  # [L, C] contrastive scores, in that order
    itm: np.ndarray  # [L, C] ITM score; NaN where not scored (beyond k, unreadable image, -1)
    before: np.ndarray  # [L, C] 1-based position in the contrastive order
    cons: metrics.RankConsistency  # ranks [N, L] after re-ranking and the panel's numbers from them
    notes: list[str] = field(default_factory=list)
    encoded: int = 0  # images whose memory was computed for this request (the rest came from the cache)
    seconds: float = 0.0


def _contrastive_order(scores: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidates best first, ties to the lower gallery row (rerank.py's rule); -1 rows last."""
    s = np.where(positions >= 0, scores, -np.inf)
    order = np.lexsort((np.where(positions >= 0, positions, np.iinfo(np.int64).max), -s), axis=1)
    return np.take_along_axis(s, order, 1), np.take_along_axis(positions, order, 1)


def rerank(model, cache: ImageMemoryCache, gallery, texts: Sequence[str], scores: np.ndarray,
           positions: np.ndarray, contrastive_ranks: np.ndarray, rerank_k: int, k_shown: int,
           max_pixels: int | None = None) -> Reranked:
    """Re-rank each language's candidates (``scores`` / ``positions`` [L, C] from the gallery
    search of ``texts``, one per language) by ITM, top ``rerank_k`` only.

    ``contrastive_ranks`` [N, L]: every image's exact contrastive rank (0-based), as
    ``metrics.rank_consistency`` gives them; the result's ``cons`` holds them after re-ranking,
    with consensus, MRV and top-``k_shown`` overlap recomputed from them."""
    import torch

    if not has_fusion(model):
        raise ValueError(NO_FUSION)
    start = time.perf_counter()
    scores, positions = _contrastive_order(np.asarray(scores, np.float64), np.asarray(positions, np.int64))
    n_lang, n_cand = positions.shape
    k = min(int(rerank_k), n_cand)
    wanted = sorted({int(r) for r in positions[:, :k].ravel() if r >= 0})
    memory, problems, encoded = gallery_image_memory(model, cache, gallery, wanted, max_pixels)
    itm = np.full((n_lang, n_cand), np.nan)  # by contrastive column

    def pair_scores(query_rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """ITM of each (language, candidate column); -inf for an image that could not be read."""
        out = np.full(cols.shape, -np.inf)
        pairs = [(q, j) for q in query_rows for j in range(cols.shape[1]) if int(positions[q, cols[q, j]]) in memory]
        if pairs:
            states, mask = model.encode_text_states(list(texts))  # all languages in one call
            q_idx = torch.tensor([q for q, _ in pairs])
            mem = torch.stack([memory[int(positions[q, cols[q, j]])] for q, j in pairs])
            scored = model.match_scores(mem, states[q_idx], mask[q_idx], batch_size=len(pairs))  # one batch
            for (q, j), value in zip(pairs, scored.tolist()):
                out[q, j] = value
                itm[q, cols[q, j]] = value
        return out

    new_top = rerank_top_k(scores, k, pair_scores, model_itc_weight(model))  # [L, k] candidate columns, re-ranked
    order = np.concatenate([new_top, np.broadcast_to(np.arange(k, n_cand), (n_lang, n_cand - k))], axis=1)
    new_positions = np.take_along_axis(positions, order, 1)

    # Ranks after re-ranking: keys that sort the re-ranked top k first, in its new order, then
    # every other image by its contrastive rank; rank_consistency turns them into ranks.
    keys = np.asarray(contrastive_ranks, np.float64).T.copy()  # [L, N]
    for lang in range(n_lang):
        rows = new_positions[lang, :k]
        rows = rows[rows >= 0]
        keys[lang, rows] = np.arange(len(rows)) - float(len(rows)) - 1.0
    cons = metrics.rank_consistency(-keys, k_shown)

    notes = []
    if problems:
        notes.append(f"{len(problems)} candidate image(s) could not be read for re-ranking and were placed after the "
                     f"scored ones (contrastive order), e.g. {problems[0]}")
    if k < rerank_k:
        notes.append(f"re-ranked the top {k}: the gallery returned only {k} candidates")
    return Reranked(k=k, positions=new_positions, scores=np.take_along_axis(scores, order, 1),
                    itm=np.take_along_axis(itm, order, 1),
                    before=order + 1, cons=cons, notes=notes, encoded=encoded, seconds=time.perf_counter() - start)


def arrow(before: Any, after: Any) -> str:
    """How the UI shows a value without -> with re-ranking."""
    return f"{before} → {after}"


def summary(rr: Reranked, languages: Sequence[str], ids: dict[int, str], contrastive_ranks: np.ndarray,
            rows: Sequence[int], k_shown: int, gold_row: int | None) -> dict:
    """JSON-ready numbers of the re-ranked view (the API's ``summary["rerank"]``); ranks 1-based."""
    out = {
        "k": rr.k,
        "mrv": rr.cons.mrv if len(languages) > 1 else None,
        "mrv_var": rr.cons.mrv_var if len(languages) > 1 else None,
        "consensus": ids.get(rr.cons.consensus),
        "results": {lang: [{"image": ids[int(r)], "score": round(float(s), 4),
                            "itm": None if np.isnan(t) else round(float(t), 4), "contrastive_position": int(b)}
                           for r, s, t, b in zip(rr.positions[i, :k_shown], rr.scores[i, :k_shown],
                                                 rr.itm[i, :k_shown], rr.before[i, :k_shown]) if r >= 0]
                    for i, lang in enumerate(languages)},
        "ranks": [{"image": ids[r],
                   "contrastive": {lg: int(contrastive_ranks[r, i]) + 1 for i, lg in enumerate(languages)},
                   "reranked": {lg: int(rr.cons.ranks[r, i]) + 1 for i, lg in enumerate(languages)}} for r in rows],
        "images_encoded": rr.encoded,
        "seconds": round(rr.seconds, 3),
    }
    if gold_row is not None:
        g = rr.cons.ranks[[gold_row]]
        out["gold"] = {"image_id": ids[gold_row], "ranks": {lg: int(r) + 1 for lg, r in zip(languages, g[0])},
                       "mrv": metrics.mean_rank_variance(g, "std"), "mrv_var": metrics.mean_rank_variance(g, "var")}
    return out


def mrv_markdown(languages: Sequence[str], mrv: float | None, mrv_var: float | None, consensus: str,
                 gold: dict | None, rerank_summary: dict, cons: metrics.RankConsistency, n_images: int) -> str:
    """The consistency panel with re-ranking: every figure as "contrastive → re-ranked"."""
    r = rerank_summary
    ranks = {x["image"]: x for x in r["ranks"]}

    def rank_list(image: str) -> str:
        x = ranks[image]
        return " · ".join(f"{lg} **{arrow(x['contrastive'][lg], x['reranked'][lg])}**" for lg in languages)

    k = r["k"]
    lines = []
    if mrv is None:
        lines.append(f"### Query MRV: needs two or more languages (re-ranked top {k})")
        lines.append("MRV is the spread of an image's rank across languages; type the query in another language too.")
    else:
        after_mrv, after_var = r["mrv"], r["mrv_var"]
        lines.append(f"### Query MRV: {arrow(f'{mrv:.3f}', f'{after_mrv:.3f}')} (re-ranked top {k})")
        lines.append(f"Contrastive → after re-ranking each language's top {k} with the fusion encoder's ITM head "
                     f"(variance {arrow(f'{mrv_var:.3f}', f'{after_var:.3f}')}): the std of the consensus "
                     f"image's ranks across the {len(languages)} languages; 0 = every language ranks it the same. "
                     f"Ranks are over all {n_images} gallery images, 1 = top; outside the top {k} they are "
                     "unchanged.")
    lines.append("")
    lines.append(f"◆ Consensus image **{r['consensus']}** after re-ranking: " + rank_list(r["consensus"])
                 + ("" if r["consensus"] == consensus else f" (contrastive consensus: **{consensus}**, "
                    + rank_list(consensus) + ")"))
    if gold and r.get("gold"):
        g_before, g_after = gold["mrv"], r["gold"]["mrv"]
        mrv_text = (f"gold MRV **{arrow(f'{g_before:.3f}', f'{g_after:.3f}')}**" if len(languages) > 1
                    else "one language: no MRV")
        lines.append("")
        lines.append(f"★ Gold image **{gold['image_id']}**: " + rank_list(gold["image_id"]) + f" — {mrv_text}, "
                     "the per-instance quantity the paper's MRV averages.")
    mask = ~np.eye(len(languages), dtype=bool)
    before = cons.overlap[mask]
    if before.size:
        after = np.array([[len({h["image"] for h in r["results"][a]} & {h["image"] for h in r["results"][b]})
                           for b in languages] for a in languages]) / cons.k
        lines.append("")
        lines.append(f"Mean pairwise top-{cons.k} overlap between languages: "
                     f"{arrow(f'{before.mean():.2f}', f'{after[mask].mean():.2f}')}")
    moved = sum(h["contrastive_position"] != pos for hits in r["results"].values() for pos, h in enumerate(hits, 1))
    lines.append("")
    lines.append(f"Re-ranked with the fusion encoder: {moved} of the shown results moved; "
                 f"{r['images_encoded']} image(s) encoded for it now (the rest cached), {r['seconds']:.2f} s.")
    return "\n".join(lines)

"""Evaluate a model on a parallel test set: per-language Recall@K both ways, and MRV.

``python -m ccr_demo.eval --model DIR_OR_ID --data DIR [--queries QDIR]`` prints a table
and writes JSON. Text-to-image recall counts every caption; the text-to-image MRV uses each
instance's first caption per language (the paper's parallel query), image-to-text the
best-ranked gold caption. With a typed-query split (partial queries with many relevant
images, :mod:`ccr_demo.data.queries`) the report adds its P@1, P@5, mAP@10 per language and
their consistency across languages (see ``metrics.typed_query_report``).

With ``--rerank-k K`` and a model that has a fusion encoder, each direction and language is
also ranked by re-scoring the contrastive top K with the ITM head (:mod:`ccr_demo.eval.rerank`),
reported twice beside the contrastive numbers (which keep their keys):

- ``report["rerank"]``: the exact rule. The top K are re-ordered by ITM, everything else
  keeps its contrastive rank, so R@K' for K' >= K equals the contrastive R@K'.
- ``report["official"]``: the CCRK / X-VLM evaluation protocol behind the paper's numbers:
  -100 everywhere except the top K cells, which hold the ITM logit alone; a gold outside
  the top K gets an arbitrary rank in [K, N) (here: ties go to the higher index), which
  inflates MRV. ``--mrv-languages en,de,ja,zh`` computes these blocks' MRV over a subset
  (the paper's xFlickr&CO MRV); the top-level MRV stays over all evaluated languages.

``--translate-test DIR`` adds ``report["translate_test"]``: the same report for IGLUE's
machine-translated captions (``annotations_machine-translate/{lang}/test_gmt.jsonl``), over
the same images.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ccr_demo.data.image_batches import EvalImageDataset, collate_images
from ccr_demo.data.queries import QuerySet
from ccr_demo.data.testset import ParallelTestSet, read_iglue_translate_test
from ccr_demo.eval import metrics
from ccr_demo.eval.rerank import (
    OFFICIAL_FILL,
    choose_itc_weight,
    contrastive_top_k,
    model_itc_weight,
    official_ranks,
    ordering_score,
    rerank_top_k,
    reranked_ranks,
)
from ccr_demo.eval.tables import report_table
from ccr_demo.utils.fileio import atomic_write_json


def encode_test_set(model, test_set: ParallelTestSet, languages: Sequence[str], batch_size: int = 64,
                    num_workers: int = 0, progress: bool = True,
                    encode_texts: Callable[[list[str]], torch.Tensor] | None = None, images: bool = True,
                    ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """(image embeddings [N, D], {lang: caption embeddings [T_l, D]}); ``images=False``
    encodes the captions only (None for the images).

    ``encode_texts`` replaces ``model.encode_texts`` (the trainer passes its cached
    features of a locked text tower)."""
    encode_texts = encode_texts or (lambda texts: model.encode_texts(texts, batch_size=max(batch_size, 128)))
    image_emb = None
    if images:
        loader = DataLoader(EvalImageDataset(test_set, transform=model.image_processor), batch_size=batch_size,
                            num_workers=num_workers, collate_fn=collate_images)
        image_emb = torch.cat([model.encode_images(pixels, batch_size=batch_size)
                               for pixels, _ in tqdm(loader, desc="encode images", disable=not progress, leave=False)])
    texts = {lang: encode_texts(test_set.captions[lang])
             for lang in tqdm(languages, desc="encode captions", disable=not progress, leave=False)}
    return image_emb, texts


def _summary(ranks_t: dict[str, np.ndarray], ranks_i: dict[str, np.ndarray], test_set: ParallelTestSet,
             ks: Sequence[int] = metrics.DEFAULT_KS, mrv_languages: Sequence[str] | None = None) -> dict:
    """{"t2i", "i2t", "mean_recall", "mrv", "mrv_var"} from per-language ranks: ``ranks_t`` of
    every caption (recall counts them all, MRV takes each instance's first caption),
    ``ranks_i`` of every image (best gold caption). MRV over ``mrv_languages`` (default all)."""
    languages = list(ranks_t)
    t2i = {lang: {str(k): v for k, v in metrics.recall_at_k(ranks_t[lang], ks).items()} for lang in languages}
    i2t = {lang: {str(k): v for k, v in metrics.recall_at_k(ranks_i[lang], ks).items()} for lang in languages}
    mean_recall = {lang: float(np.mean([*t2i[lang].values(), *i2t[lang].values()])) for lang in languages}
    mean_recall["all"] = float(np.mean([mean_recall[lang] for lang in languages]))
    mrv_langs = list(mrv_languages or languages)
    t2i_ranks = np.stack([ranks_t[lang][test_set.first_text[lang]] for lang in mrv_langs], axis=1)  # [N, L]
    i2t_ranks = np.stack([ranks_i[lang] for lang in mrv_langs], axis=1)
    multi = len(mrv_langs) > 1
    return {
        "t2i": t2i,
        "i2t": i2t,
        "mean_recall": mean_recall,
        "mrv": {"t2i": metrics.mean_rank_variance(t2i_ranks, kind="std") if multi else 0.0,
                "i2t": metrics.mean_rank_variance(i2t_ranks, kind="std") if multi else 0.0},
        "mrv_var": {"t2i": metrics.mean_rank_variance(t2i_ranks, kind="var") if multi else 0.0,
                    "i2t": metrics.mean_rank_variance(i2t_ranks, kind="var") if multi else 0.0},
    }


def _kept_ranks(ranks_t: dict[str, np.ndarray], ranks_i: dict[str, np.ndarray], test_set: ParallelTestSet) -> dict:
    """Per-instance ranks [N] per language (first caption for t2i): lets a check recompute any slice."""
    return {"t2i": {lang: r[test_set.first_text[lang]].tolist() for lang, r in ranks_t.items()},
            "i2t": {lang: r.tolist() for lang, r in ranks_i.items()}}


def _check_mrv_languages(mrv_languages: Sequence[str] | None, languages: Sequence[str]) -> list[str] | None:
    if not mrv_languages:
        return None
    unknown = [lang for lang in mrv_languages if lang not in languages]
    if unknown:
        raise ValueError(f"MRV languages {unknown} are not among the evaluated languages {list(languages)}")
    return list(mrv_languages)


def report_from_embeddings(image_emb: torch.Tensor, text_emb: dict[str, torch.Tensor],
                           test_set: ParallelTestSet, ks: Sequence[int] = metrics.DEFAULT_KS, keep_ranks: bool = False,
                           fusion: "FusionInputs | None" = None, mrv_languages: Sequence[str] | None = None) -> dict:
    """Ranks -> the report dict (JSON-ready) that model cards, the app and the trainer share.

    With ``fusion`` (see ``fusion_inputs``) the report adds "rerank" and "official" (module
    docstring); ``mrv_languages`` (a subset of the languages) sets their MRV's languages and
    adds "mrv_subset", the contrastive MRV over that subset."""
    languages = list(text_emb)
    mrv_languages = _check_mrv_languages(mrv_languages, languages)
    img = image_emb.float().numpy()
    ranks_t, ranks_i, noisy, scores_of = {}, {}, {}, {}
    for lang in languages:
        scores = text_emb[lang].float().numpy() @ img.T  # [T_l, N]
        ranks_t[lang] = metrics.t2i_ranks(scores, test_set.text_to_image[lang])
        ranks_i[lang] = metrics.i2t_ranks(scores.T, test_set.image_to_texts[lang])
        if fusion is not None:
            scores_of[lang] = scores
        if test_set.noisy is not None and test_set.noisy[lang].any():
            flags = test_set.noisy[lang]
            ranks = ranks_t[lang]
            noisy[lang] = {"n_noisy": int(flags.sum()),
                           "t2i_r1_noisy": float((ranks[flags] < 1).mean() * 100),
                           "t2i_r1_clean": float((ranks[~flags] < 1).mean() * 100) if (~flags).any() else None}
    report = {
        "dataset": test_set.name,
        "n_instances": len(test_set),
        "languages": languages,
        **_summary(ranks_t, ranks_i, test_set, ks),
    }
    if mrv_languages and mrv_languages != languages:
        sub = _summary({lang: ranks_t[lang] for lang in mrv_languages},
                       {lang: ranks_i[lang] for lang in mrv_languages}, test_set, ks)
        report["mrv_subset"] = {"languages": mrv_languages, "mrv": sub["mrv"], "mrv_var": sub["mrv_var"]}
    if noisy:
        report["noisy_captions"] = noisy
    if keep_ranks:
        report["ranks"] = _kept_ranks(ranks_t, ranks_i, test_set)
    if fusion is not None:
        report.update(_reranked_reports(scores_of, fusion, test_set, ks, mrv_languages, keep_ranks))
    return report


# --------------------------------------------------------------------------- re-ranking


class FusionInputs:
    """What ITM re-ranking needs for one test set: the image memory [N, 1+T, W] (encoded
    once), a text-state encoder (called once per language), the top k and pair batch size."""

    def __init__(self, model, memory: torch.Tensor, k: int, pair_batch: int = 256, text_batch: int = 128,
                 progress: bool = False, encode_states: Callable | None = None):
        if k < 1:
            raise ValueError(f"rerank k must be at least 1, got {k}")
        self.model, self.memory, self.k = model, memory, int(k)
        self.pair_batch, self.text_batch, self.progress = int(pair_batch), int(text_batch), progress
        self.encode_states = encode_states
        # step 3 of the re-rank rule: ITM + w x contrastive (0 = the official ITM alone)
        self.itc_weight = model_itc_weight(model)
        self._same_image: np.ndarray | None = None

    def same_image(self) -> np.ndarray:
        """int64[N]: for each image, the first image whose memory is bit-identical (itself if none)."""
        if self._same_image is None:
            self._same_image = _first_equal_rows(self.memory)
        return self._same_image

    def text_states(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(states [T, L, H], mask [T, L]) in chunks, padded to the longest caption overall;
        from ``encode_states`` (e.g. ``TextStateCache.lookup`` of a locked tower) when given."""
        if self.encode_states is not None:
            return self.encode_states(list(texts))
        chunks = [self.model.encode_text_states(list(texts[s:s + self.text_batch]))
                  for s in range(0, len(texts), self.text_batch)]
        length = max(m.shape[1] for _, m in chunks)
        states = torch.zeros(len(texts), length, chunks[0][0].shape[2])
        mask = torch.zeros(len(texts), length, dtype=chunks[0][1].dtype)
        row = 0
        for st, m in chunks:
            states[row:row + len(st), :st.shape[1]] = st
            mask[row:row + len(st), :m.shape[1]] = m
            row += len(st)
        return states, mask

    def scorer(self, states: torch.Tensor, mask: torch.Tensor, queries_are_texts: bool, desc: str):
        """pair_scores(rows [Q], candidates [Q, k]) -> ITM [Q, k] (``rerank.PairScorer``); also
        records what it scored in ``.last`` = (candidates, itm) for the official ranks."""

        same_text = _first_equal_rows(states, mask)
        same_image = self.same_image()

        def pair_scores(rows: np.ndarray, cand: np.ndarray) -> np.ndarray:
            k = cand.shape[1]
            q = np.repeat(np.asarray(rows), k)
            c = cand.reshape(-1)
            text_idx, image_idx = (q, c) if queries_are_texts else (c, q)
            # Pairs of equal inputs are scored once and share the score: ITM computed in batches
            # of other shapes can differ in the last bit, which would break their tie by noise.
            pair_key = same_text[text_idx].astype(np.int64) * len(same_image) + same_image[image_idx]
            _, first, back = np.unique(pair_key, return_index=True, return_inverse=True)
            text_idx, image_idx = same_text[text_idx[first]], same_image[image_idx[first]]
            out = np.empty(len(first), dtype=np.float64)
            # Pairs in order of text length, so each batch is cut to little padding (the fusion
            # encoder's cost is its padded length); results go back to their own slots.
            order = np.argsort(mask.sum(dim=1).numpy()[text_idx], kind="stable")
            for s in tqdm(range(0, len(out), self.pair_batch), desc=desc, disable=not self.progress, leave=False):
                sel = order[s:s + self.pair_batch]
                t = torch.as_tensor(text_idx[sel])
                m = mask[t]
                width = int(m.sum(dim=1).max())  # drop columns that are padding in every pair of the batch
                out[sel] = self.model.match_scores(
                    self.memory[torch.as_tensor(image_idx[sel])], states[t][:, :width],
                    m[:, :width], batch_size=self.pair_batch).numpy()
            itm = out[back.reshape(-1)].reshape(cand.shape)
            pair_scores.last = (cand, itm)
            return itm

        return pair_scores


def _first_equal_rows(rows: torch.Tensor, mask: torch.Tensor | None = None) -> np.ndarray:
    """int64[R]: for each row, the index of the first row holding the same input (itself if
    none). With ``mask`` [R, L] a row is its mask and its states where the mask is set, all
    the ITM head reads. Two captions that tokenise alike (equal, or equal after truncation)
    or two copies of one image are then one input; rows are compared by a 256-bit hash."""
    rows = rows.detach().cpu().contiguous()
    keep = mask.detach().cpu().bool() if mask is not None else None
    first: dict[bytes, int] = {}
    out = np.empty(rows.shape[0], dtype=np.int64)
    for i in range(rows.shape[0]):
        h = hashlib.blake2b(digest_size=32)
        if keep is not None:
            h.update(keep[i].numpy().tobytes())
            h.update(rows[i][keep[i]].numpy().tobytes())
        else:
            h.update(rows[i].numpy().tobytes())
        out[i] = first.setdefault(h.digest(), i)
    return out


def fusion_inputs(model, test_set: ParallelTestSet, k: int, batch_size: int = 64, num_workers: int = 0,
                  progress: bool = True, pair_batch: int = 256, encode_states: Callable | None = None
                  ) -> tuple[torch.Tensor, FusionInputs]:
    """(image embeddings [N, D], FusionInputs) from ONE image-tower pass over the test set."""
    loader = DataLoader(EvalImageDataset(test_set, transform=model.image_processor), batch_size=batch_size,
                        num_workers=num_workers, collate_fn=collate_images)
    was_training = model.training
    model.eval()
    embs, memory = [], []
    try:
        with torch.inference_mode():
            for pixels, _ in tqdm(loader, desc="encode images + memory", disable=not progress, leave=False):
                emb, mem = model.image_outputs(pixels.to(model.device, torch.float32))
                embs.append(emb.float().cpu())
                memory.append(mem.float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(embs), FusionInputs(model, torch.cat(memory), k, pair_batch=pair_batch, progress=progress,
                                         encode_states=encode_states)


def _reranked_reports(scores_of: dict[str, np.ndarray], fusion: FusionInputs, test_set: ParallelTestSet,
                      ks: Sequence[int], mrv_languages: list[str] | None, keep_ranks: bool) -> dict:
    """{"rerank": exact rule, "official": CCRK protocol}: ITM scores each caption against its
    contrastive top k images and each image against its top k captions, once for both."""
    exact_t, exact_i, off_t, off_i, weight_runs = {}, {}, {}, {}, []
    for lang, scores in scores_of.items():
        states, mask = fusion.text_states(test_set.captions[lang])
        for direction, s, gold, queries_are_texts in (
                ("t2i", scores, test_set.text_to_image[lang], True),
                ("i2t", np.ascontiguousarray(scores.T), test_set.image_to_texts[lang], False)):
            scorer = fusion.scorer(states, mask, queries_are_texts, f"ITM {direction} {lang}")
            reranked = rerank_top_k(s, fusion.k, scorer, fusion.itc_weight)
            top, itm = scorer.last
            if direction == "t2i":
                weight_runs.append((top, itm, np.take_along_axis(s, top, 1), top == np.asarray(gold)[:, None]))
            exact = reranked_ranks(s, reranked, gold)
            official = official_ranks(top, itm, s.shape[1], gold)
            (exact_t if direction == "t2i" else exact_i)[lang] = exact
            (off_t if direction == "t2i" else off_i)[lang] = official
        del states, mask
    mrv_langs = mrv_languages or list(scores_of)
    rerank = {"k": fusion.k, "rule": "contrastive top k re-ordered by ITM + itc_weight x contrastive; the rest keep "
                                     "their contrastive ranks",
              "itc_weight": fusion.itc_weight, "itc_weight_table": choose_itc_weight(weight_runs)[1],
              "itc_weight_contrastive": ordering_score(weight_runs, None),
              "mrv_languages": mrv_langs, **_summary(exact_t, exact_i, test_set, ks, mrv_languages)}
    official = {"k": fusion.k, "fill": OFFICIAL_FILL,
                "rule": f"CCRK/X-VLM protocol: {OFFICIAL_FILL:g} except the top k cells (ITM logit alone); "
                        "rank = position in argsort descending, ties to the higher index, so golds outside the "
                        "top k land anywhere in [k, N)",
                "mrv_languages": mrv_langs, **_summary(off_t, off_i, test_set, ks, mrv_languages)}
    if keep_ranks:
        rerank["ranks"] = _kept_ranks(exact_t, exact_i, test_set)
        official["ranks"] = _kept_ranks(off_t, off_i, test_set)
    return {"rerank": rerank, "official": official}


def query_report_from_embeddings(image_emb: torch.Tensor, query_emb: dict[str, torch.Tensor],
                                 queries: QuerySet, image_ids: Sequence[str], keep_ranks: bool = False,
                                 fusion: "FusionInputs | None" = None) -> dict:
    """Typed-query metrics over a gallery's images (``image_ids`` in ``image_emb`` order);
    ``keep_ranks`` adds every query's first-relevant rank and P@5 per language. With
    ``fusion`` "rerank" holds P@5 after ITM re-ranking of each query's top k."""
    img = image_emb.float().numpy()
    relevant = queries.relevance(image_ids)
    scores = {lang: emb.float().numpy() @ img.T for lang, emb in query_emb.items()}
    report = metrics.typed_query_report(scores, relevant, per_query=True)
    per_query = report.pop("per_query")
    report["dataset"] = queries.name
    report["mean_relevant"] = float(relevant.sum(axis=1).mean())
    # P@5 per granularity (averaged over languages): which kinds of query are hard.
    p5 = np.mean(list(per_query["p@5"].values()), axis=0)
    grans = np.array(queries.granularities)
    report["p@5_by_granularity"] = {str(g): float(p5[grans == g].mean()) for g in sorted(set(grans))}
    forms = np.array(queries.forms)
    report["p@5_by_form"] = {str(f): float(p5[forms == f].mean()) for f in sorted(set(forms))}
    if keep_ranks:
        report["per_query"] = {"ids": list(queries.ids),
                               "first_rank": {lang: r.tolist() for lang, r in per_query["first_rank"].items()},
                               "p@5": {lang: p.tolist() for lang, p in per_query["p@5"].items()}}
    if fusion is not None:
        report["rerank"] = _reranked_query_p5(scores, relevant, queries, fusion)
    return report


def _reranked_query_p5(scores: dict[str, np.ndarray], relevant: np.ndarray, queries: QuerySet,
                       fusion: FusionInputs) -> dict:
    """{"k", "p@5": {lang: mean P@5}, "mean", "p@5_by_granularity"} with each query's first five
    images taken from the rule's order (re-ranked top k, then the contrastive order when k < 5)."""
    p5, per_query, weight_runs = {}, [], []
    for lang, s in scores.items():
        states, mask = fusion.text_states(queries.texts[lang])
        scorer = fusion.scorer(states, mask, True, f"ITM queries {lang}")
        reranked = rerank_top_k(s, fusion.k, scorer, fusion.itc_weight)
        top, itm = scorer.last
        weight_runs.append((top, itm, np.take_along_axis(s, top, 1), np.take_along_axis(relevant, top, 1)))
        five = min(5, s.shape[1])
        if reranked.shape[1] < five:
            reranked = np.concatenate([reranked, contrastive_top_k(s, five)[:, reranked.shape[1]:]], axis=1)
        hits = np.take_along_axis(relevant, reranked[:, :five], axis=1).sum(axis=1)
        per_query.append(hits / np.minimum(relevant.sum(axis=1), five))
        p5[lang] = float(per_query[-1].mean())
    grans, mean_p5 = np.array(queries.granularities), np.mean(per_query, axis=0)
    return {"k": fusion.k, "p@5": p5, "mean": float(np.mean(list(p5.values()))),
            "p@5_by_granularity": {str(g): float(mean_p5[grans == g].mean()) for g in sorted(set(grans))},
            "itc_weight": fusion.itc_weight, "itc_weight_table": choose_itc_weight(weight_runs)[1],
            "itc_weight_contrastive": ordering_score(weight_runs, None)}


def evaluate(model, test_set: ParallelTestSet, languages: Sequence[str] | None = None, batch_size: int = 64,
             num_workers: int = 0, progress: bool = True,
             encode_texts: Callable[[list[str]], torch.Tensor] | None = None, keep_ranks: bool = False,
             queries: QuerySet | None = None, rerank_k: int = 0, mrv_languages: Sequence[str] | None = None,
             translate_test: ParallelTestSet | None = None, pair_batch: int = 256,
             encode_text_states: Callable | None = None) -> dict:
    """Encode the test set with ``model`` and return the report (see report_from_embeddings);
    with ``queries`` (typed queries over the test images) the report's "queries" holds theirs.

    ``rerank_k`` > 0 with a fusion model adds "rerank" and "official" (module docstring); a
    dual encoder has nothing to re-rank with, its report stays contrastive (and says so in
    "rerank_skipped"). ``translate_test`` (``read_iglue_translate_test``: the same images,
    translated captions) adds "translate_test", the same report on those captions."""
    languages = list(languages or test_set.languages)
    missing = [lang for lang in languages if lang not in test_set.captions]
    if missing:
        raise ValueError(f"test set {test_set.name!r} has no captions in {missing} (it has {test_set.languages})")
    _check_mrv_languages(mrv_languages, languages)
    if queries is not None:
        missing = [lang for lang in languages if lang not in queries.texts]
        if missing:
            raise ValueError(f"query set {queries.name!r} has no queries in {missing}")
    if translate_test is not None and translate_test.image_ids != test_set.image_ids:
        raise ValueError("translate_test must have the test set's images, in the same order")
    start = time.perf_counter()
    fusion = None
    if rerank_k and getattr(model, "has_fusion", False):
        image_emb, fusion = fusion_inputs(model, test_set, rerank_k, batch_size, num_workers, progress, pair_batch,
                                          encode_text_states)
        _, text_emb = encode_test_set(model, test_set, languages, batch_size, num_workers, progress, encode_texts,
                                      images=False)
    else:
        image_emb, text_emb = encode_test_set(model, test_set, languages, batch_size, num_workers, progress,
                                              encode_texts)
    report = report_from_embeddings(image_emb, text_emb, test_set, keep_ranks=keep_ranks, fusion=fusion,
                                    mrv_languages=mrv_languages)
    if rerank_k and fusion is None:
        report["rerank_skipped"] = "the model has no fusion encoder (model.fusion.layers = 0): contrastive only"
    if translate_test is not None:
        tt_langs = [lang for lang in languages if lang in translate_test.captions]
        if not tt_langs:
            raise ValueError(f"translate_test has none of the languages {languages}")
        _, tt_emb = encode_test_set(model, translate_test, tt_langs, batch_size, num_workers, progress,
                                    encode_texts, images=False)
        tt_mrv = [lang for lang in (mrv_languages or []) if lang in tt_langs] or None
        tt = report_from_embeddings(image_emb, tt_emb, translate_test, keep_ranks=keep_ranks, fusion=fusion,
                                    mrv_languages=tt_mrv)
        report["translate_test"] = tt
    if queries is not None:
        encode = encode_texts or (lambda texts: model.encode_texts(texts, batch_size=max(batch_size, 128)))
        query_emb = {lang: encode(queries.texts[lang]) for lang in languages}
        report["queries"] = query_report_from_embeddings(image_emb, query_emb, queries, test_set.image_ids,
                                                         keep_ranks=keep_ranks, fusion=fusion)
    report["seconds"] = round(time.perf_counter() - start, 2)
    return report


def default_queries(data: str | Path) -> str:
    """The typed-query split the shapes world writes beside its test split, if any
    (``--queries none`` turns this off)."""
    sibling = Path(data).parent / "test_queries" / "queries.jsonl"
    return str(sibling) if sibling.is_file() else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ccr_demo.eval", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="saved model folder or Hub id")
    parser.add_argument("--data", required=True, help="parallel test set folder (IGLUE layout: annotations/{lang}/test.jsonl)")
    parser.add_argument("--queries", default="", help="typed-query split (queries.jsonl or its folder) over "
                        "the --data images; default: DATA/../test_queries when it exists")
    parser.add_argument("--image-root", default=None, help="image folder (default: DATA/images)")
    parser.add_argument("--languages", default="", help="comma-separated subset of languages (default: all)")
    parser.add_argument("--max-instances", type=int, default=0, help="evaluate on the first N instances only")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="", help="write the report JSON here")
    parser.add_argument("--keep-ranks", action="store_true", help="also store every instance's rank per language")
    parser.add_argument("--cached-text-features", action="store_true",
                        help="take pooled text features from the per-string store (ccr_demo.model.text_cache) that the "
                             "trainer fills for a locked text tower, encoding only strings it lacks: evaluating "
                             "several checkpoints of one text tower then encodes each caption once")
    parser.add_argument("--rerank-k", type=int, default=0,
                        help="with a fusion model: also re-rank each query's contrastive top K by the ITM head and "
                             "report it exactly and under the official CCRK protocol (the paper uses 128 / 256)")
    parser.add_argument("--mrv-languages", default="", help="comma-separated languages for the re-ranked and official "
                        "MRV (e.g. en,de,ja,zh, the paper's xFlickr&CO MRV; default: all evaluated)")
    parser.add_argument("--translate-test", default="", help="also evaluate IGLUE's machine-translated captions: a folder "
                        "holding annotations_machine-translate/{lang}/test_gmt.jsonl (or that folder itself)")
    parser.add_argument("--pair-batch", type=int, default=256, help="image-text pairs per ITM batch")
    args = parser.parse_args(argv)

    from ccr_demo.model.fingerprint import check_finite
    from ccr_demo.model.modeling import CCRModel

    langs = [lang for lang in args.languages.split(",") if lang] or None
    try:
        test_set = ParallelTestSet.from_iglue(args.data, languages=langs, image_root=args.image_root)
        if args.max_instances:
            test_set = test_set.subset(args.max_instances)
        queries_path = "" if args.queries == "none" else (args.queries or default_queries(args.data))
        queries = QuerySet.load(queries_path, languages=langs) if queries_path else None
        if queries is not None and args.max_instances:  # the queries true of these images, ranked among them
            queries = queries.restricted(test_set.image_ids) or None
        model = CCRModel.from_pretrained(args.model)
        check_finite(model, f"the model {args.model}")  # as a gallery build does: before encoding anything
        if args.rerank_k < 0:
            raise ValueError(f"--rerank-k must be >= 0, got {args.rerank_k}")
        if args.rerank_k and not model.has_fusion:
            print("note: the model has no fusion encoder; --rerank-k ignored, contrastive ranks only", file=sys.stderr)
        mrv_langs = [lang for lang in args.mrv_languages.split(",") if lang] or None
        translated = (read_iglue_translate_test(args.translate_test, test_set, langs)
                      if args.translate_test else None)
        encode = encode_states = None
        if args.cached_text_features:
            from ccr_demo.model.text_cache import TextFeatureCache

            texts = [t for lang in (langs or test_set.languages) for t in test_set.captions[lang]]
            texts += [t for lang in (langs or test_set.languages) for t in (queries.texts[lang] if queries else [])]
            texts += [t for caps in (translated.captions.values() if translated else []) for t in caps]
            cache = TextFeatureCache.build(model, texts, batch_size=max(args.batch_size, 128))
            encode = lambda texts: cache.encode(model, texts)  # noqa: E731
            if args.rerank_k and model.has_fusion:  # the token states the ITM head reads, from the same store
                from ccr_demo.model.text_cache import TextStateCache

                encode_states = TextStateCache.build(model, texts, batch_size=max(args.batch_size, 128)).lookup
        report = evaluate(model, test_set, langs, batch_size=args.batch_size, keep_ranks=args.keep_ranks,
                          queries=queries, encode_texts=encode, rerank_k=args.rerank_k,
                          mrv_languages=mrv_langs, translate_test=translated, pair_batch=args.pair_batch,
                          encode_text_states=encode_states)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report_table(report))  # with the re-ranking tables when there are any
    if "translate_test" in report:
        tt = report["translate_test"]
        print(f"\nTranslate-test ({tt['dataset']})\n\n" + report_table(tt))
    if args.out:
        atomic_write_json(args.out, report)
        print(f"report written to {Path(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

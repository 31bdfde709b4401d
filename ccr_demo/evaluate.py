"""Evaluate a model on a parallel test set: per-language Recall@K both ways, and MRV.

``python -m ccr_demo.evaluate --model DIR_OR_ID --data DIR [--queries QDIR]`` prints a table
and writes JSON. Text-to-image recall counts every caption; the text-to-image MRV uses each
instance's first caption per language (the paper's parallel query), image-to-text the
best-ranked gold caption. With a typed-query split (partial queries with many relevant
images, :mod:`ccr_demo.data.queries`) the report adds its P@1, P@5, mAP@10 per language and
their consistency across languages (see ``metrics.typed_query_report``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import metrics
from .data.datasets import EvalImageDataset, collate_images
from .data.formats import ParallelTestSet
from .data.queries import QuerySet
from .fileio import atomic_write_json
from .hub import report_table

KS = (1, 5, 10)


def encode_test_set(model, test_set: ParallelTestSet, languages: Sequence[str], batch_size: int = 64,
                    num_workers: int = 0, progress: bool = True,
                    encode_texts: Callable[[list[str]], torch.Tensor] | None = None,
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(image embeddings [N, D], {lang: caption embeddings [T_l, D]}).

    ``encode_texts`` replaces ``model.encode_texts`` (the trainer passes its cached
    features of a locked text tower)."""
    encode_texts = encode_texts or (lambda texts: model.encode_texts(texts, batch_size=max(batch_size, 128)))
    loader = DataLoader(EvalImageDataset(test_set, transform=model.image_processor), batch_size=batch_size,
                        num_workers=num_workers, collate_fn=collate_images)
    images = [model.encode_images(pixels, batch_size=batch_size)
              for pixels, _ in tqdm(loader, desc="encode images", disable=not progress, leave=False)]
    texts = {lang: encode_texts(test_set.captions[lang])
             for lang in tqdm(languages, desc="encode captions", disable=not progress, leave=False)}
    return torch.cat(images), texts


def report_from_embeddings(image_emb: torch.Tensor, text_emb: dict[str, torch.Tensor],
                           test_set: ParallelTestSet, ks: Sequence[int] = KS, keep_ranks: bool = False) -> dict:
    """Ranks -> the report dict (JSON-ready) that model cards, the app and the trainer share."""
    languages = list(text_emb)
    img = image_emb.float().numpy()
    t2i, i2t, t2i_first, i2t_best, noisy = {}, {}, [], [], {}
    for lang in languages:
        scores = text_emb[lang].float().numpy() @ img.T  # [T_l, N]
        ranks_t = metrics.t2i_ranks(scores, test_set.text_to_image[lang])
        ranks_i = metrics.i2t_ranks(scores.T, test_set.image_to_texts[lang])
        t2i[lang] = {str(k): v for k, v in metrics.recall_at_k(ranks_t, ks).items()}
        i2t[lang] = {str(k): v for k, v in metrics.recall_at_k(ranks_i, ks).items()}
        t2i_first.append(ranks_t[test_set.first_text[lang]])
        i2t_best.append(ranks_i)
        if test_set.noisy is not None and test_set.noisy[lang].any():
            flags = test_set.noisy[lang]
            noisy[lang] = {"n_noisy": int(flags.sum()),
                           "t2i_r1_noisy": float((ranks_t[flags] < 1).mean() * 100),
                           "t2i_r1_clean": float((ranks_t[~flags] < 1).mean() * 100) if (~flags).any() else None}
    mean_recall = {lang: float(np.mean([*t2i[lang].values(), *i2t[lang].values()])) for lang in languages}
    mean_recall["all"] = float(np.mean([mean_recall[lang] for lang in languages]))
    t2i_ranks, i2t_ranks = np.stack(t2i_first, axis=1), np.stack(i2t_best, axis=1)  # [N, L]
    multi = len(languages) > 1
    report = {
        "dataset": test_set.name,
        "n_instances": len(test_set),
        "languages": languages,
        "t2i": t2i,
        "i2t": i2t,
        "mean_recall": mean_recall,
        "mrv": {"t2i": metrics.mean_rank_variance(t2i_ranks, kind="std") if multi else 0.0,
                "i2t": metrics.mean_rank_variance(i2t_ranks, kind="std") if multi else 0.0},
        "mrv_var": {"t2i": metrics.mean_rank_variance(t2i_ranks, kind="var") if multi else 0.0,
                    "i2t": metrics.mean_rank_variance(i2t_ranks, kind="var") if multi else 0.0},
    }
    if noisy:
        report["noisy_captions"] = noisy
    if keep_ranks:  # per-instance ranks [N] per language: lets a check recompute any slice exactly
        report["ranks"] = {"t2i": {lang: r.tolist() for lang, r in zip(languages, t2i_first)},
                           "i2t": {lang: r.tolist() for lang, r in zip(languages, i2t_best)}}
    return report


def query_report_from_embeddings(image_emb: torch.Tensor, query_emb: dict[str, torch.Tensor],
                                 queries: QuerySet, image_ids: Sequence[str], keep_ranks: bool = False) -> dict:
    """Typed-query metrics over a gallery's images (``image_ids`` in ``image_emb`` order);
    ``keep_ranks`` adds every query's first-relevant rank and P@5 per language."""
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
    return report


def evaluate(model, test_set: ParallelTestSet, languages: Sequence[str] | None = None, batch_size: int = 64,
             num_workers: int = 0, progress: bool = True,
             encode_texts: Callable[[list[str]], torch.Tensor] | None = None, keep_ranks: bool = False,
             queries: QuerySet | None = None) -> dict:
    """Encode the test set with ``model`` and return the report (see report_from_embeddings);
    with ``queries`` (typed queries over the test images) the report's "queries" holds theirs."""
    languages = list(languages or test_set.languages)
    missing = [lang for lang in languages if lang not in test_set.captions]
    if missing:
        raise ValueError(f"test set {test_set.name!r} has no captions in {missing} (it has {test_set.languages})")
    if queries is not None:
        missing = [lang for lang in languages if lang not in queries.texts]
        if missing:
            raise ValueError(f"query set {queries.name!r} has no queries in {missing}")
    start = time.perf_counter()
    image_emb, text_emb = encode_test_set(model, test_set, languages, batch_size, num_workers, progress,
                                          encode_texts)
    report = report_from_embeddings(image_emb, text_emb, test_set, keep_ranks=keep_ranks)
    if queries is not None:
        encode = encode_texts or (lambda texts: model.encode_texts(texts, batch_size=max(batch_size, 128)))
        query_emb = {lang: encode(queries.texts[lang]) for lang in languages}
        report["queries"] = query_report_from_embeddings(image_emb, query_emb, queries, test_set.image_ids,
                                                         keep_ranks=keep_ranks)
    report["seconds"] = round(time.perf_counter() - start, 2)
    return report


def default_queries(data: str | Path) -> str:
    """The typed-query split the shapes world writes beside its test split, if any
    (``--queries none`` turns this off)."""
    sibling = Path(data).parent / "test_queries" / "queries.jsonl"
    return str(sibling) if sibling.is_file() else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ccr_demo.evaluate", description=__doc__.splitlines()[0])
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
                        help="take pooled text features from the per-string store (ccr_demo.text_cache) that the "
                             "trainer fills for a locked text tower, encoding only strings it lacks: evaluating "
                             "several checkpoints of one text tower then encodes each caption once")
    args = parser.parse_args(argv)

    from .model import CCRModel

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
        encode = None
        if args.cached_text_features:
            from .text_cache import TextFeatureCache

            texts = [t for lang in (langs or test_set.languages) for t in test_set.captions[lang]]
            texts += [t for lang in (langs or test_set.languages) for t in (queries.texts[lang] if queries else [])]
            cache = TextFeatureCache.build(model, texts, batch_size=max(args.batch_size, 128))
            encode = lambda texts: cache.encode(model, texts)  # noqa: E731
        report = evaluate(model, test_set, langs, batch_size=args.batch_size, keep_ranks=args.keep_ranks,
                          queries=queries, encode_texts=encode)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report_table(report))
    if args.out:
        atomic_write_json(args.out, report)
        print(f"report written to {Path(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

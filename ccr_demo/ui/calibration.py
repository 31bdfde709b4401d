"""The "no good match" threshold of each model in an assets folder, from the shipped test set:
``python -m ccr_demo.ui.calibration --assets assets`` writes ``assets/no_match.json``.

How it is calibrated: every typed query of the test set (``test_queries/``, worded as people type,
each with the test images that make it true) is encoded in every language it has, and scored
against the model's own gallery; a query's *best true score* is the highest score among its
relevant images. The threshold is the ``--percentile`` (default 5th) percentile of those scores:
a best score below it is rarer than that among queries that do match an image, so the app says
"no good match" for a language whose best result scores lower.

What it cannot do, measured and stored with it (``auc``): a query's best *false* score (its best
image that does not make it true) is often as high as its best true one (AUC 0.67 for the default
1-to-K model, about 0.5 for the 1-to-1 baseline), so a query that matches nothing can still
score above the threshold: a low score says "no good match", a high one proves no match.

Each entry carries the weights fingerprint its gallery was built with: a retrained model no
longer matches it, and the app says to run this again instead of using another model's number.
Numbers are never written by hand: the models in assets/ are retrained from time to time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ccr_demo.ui.model_info import NO_MATCH_FILE

DEFAULT_PERCENTILE = 5.0


def best_scores(scores: np.ndarray, relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(best true, best false) score per query: ``scores`` [Q, N] against the gallery, ``relevant``
    bool [Q, N]; a query relevant to every image (or none) has no false (true) score: NaN."""
    true = np.where(relevant, scores, -np.inf).max(axis=1)
    false = np.where(~relevant, scores, -np.inf).max(axis=1)
    return np.where(np.isfinite(true), true, np.nan), np.where(np.isfinite(false), false, np.nan)


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counting half."""
    pos, neg = np.sort(positive[~np.isnan(positive)]), np.sort(negative[~np.isnan(negative)])
    below = np.searchsorted(neg, pos, side="left")
    equal = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * equal).sum() / (len(pos) * len(neg)))


def calibrate_model(model, gallery, queries, percentile: float = DEFAULT_PERCENTILE) -> dict:
    """The calibration entry of one model over its gallery (``queries``: a QuerySet of its images)."""
    relevant = queries.relevance(gallery.ids)
    true, false = [], []
    for lang in queries.languages:
        emb = model.encode_texts(queries.texts[lang]).numpy()
        t, f = best_scores(emb @ gallery.vectors.T, relevant)
        true.append(t)
        false.append(f)
    true, false = np.concatenate(true), np.concatenate(false)
    kept = true[~np.isnan(true)]
    return {"threshold": round(float(np.percentile(kept, percentile)), 4), "percentile": percentile,
            "fingerprint": gallery.fingerprint, "n_scores": int(len(kept)),
            "languages": list(queries.languages), "median_true": round(float(np.median(kept)), 4),
            "median_false": round(float(np.nanmedian(false)), 4), "auc": round(auc(true, false), 3)}


def model_folders(assets: Path) -> list[tuple[Path, Path]]:
    """(model folder, gallery folder) pairs: every ``model<suffix>`` with a ``gallery<suffix>``."""
    pairs = []
    for folder in sorted(assets.glob("model*")):
        gallery = assets / f"gallery{folder.name[len('model'):]}"
        if (folder / "config.json").is_file() and (gallery / "gallery.json").is_file():
            pairs.append((folder, gallery))
    return pairs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assets", default="assets", help="the folder with model*/, gallery*/, shapes_test/, test_queries/")
    p.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE,
                   help="percentile of the best true scores under which a result is 'no good match'")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    from ccr_demo.data.queries import QuerySet
    from ccr_demo.gallery.gallery import Gallery
    from ccr_demo.model.modeling import CCRModel

    assets = Path(args.assets)
    queries = QuerySet.load(assets / "test_queries")
    out = {"about": f"Made by `python -m ccr_demo.ui.calibration --assets {args.assets}`: per model folder, the "
                    f"{args.percentile:g}th percentile of the best true score of every typed query of test_queries/ "
                    "in every language (the highest score among its relevant images, against the model's own "
                    "gallery); auc: how well that score tells a query's best true image from its best false one.",
           "models": {}}
    for folder, gallery_folder in model_folders(assets):
        start = time.perf_counter()
        model = CCRModel.from_pretrained(folder)
        gallery = Gallery.load(gallery_folder, model, image_root=[assets / "shapes_test"])
        entry = calibrate_model(model, gallery, queries, args.percentile)
        out["models"][folder.name] = entry
        print(f"{folder.name}: threshold {entry['threshold']:.4f} ({entry['n_scores']} scores, median true "
              f"{entry['median_true']:.3f}, median best false {entry['median_false']:.3f}, AUC {entry['auc']:.3f}; "
              f"{time.perf_counter() - start:.0f} s)", flush=True)
    (assets / NO_MATCH_FILE).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {assets / NO_MATCH_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Choose a fusion model's re-rank weight on a validation split and write it into the model.

Why: the re-rank rule (:mod:`ccr_demo.eval.rerank`, step 3) orders the contrastive top k by
ITM + w x contrastive score. w = 0 is the official rule (ITM alone); a fusion encoder trained in
a small budget can rank worse than the dual encoder it re-ranks, and a w chosen on held-out
data keeps what the dual encoder knows. An evaluation with ``--rerank-k`` tables every
candidate w on its split (``itc_weight_table``: the mean of R@1 and P@5 of the re-ranked top k,
for the full captions and for the typed queries); this command reads such a report of a
**validation** split, takes the w with the best mean of the two tables (ties to the smaller
w), and writes it into the model's ``config.json`` (``model.fusion.rerank_itc_weight``). The
weight changes no embedding, so the model's fingerprint and its galleries stay valid.

    python -m ccr_demo.eval --model M --data VAL --queries VAL_QUERIES --rerank-k 16 --out val.json
    python -m ccr_demo.eval.calibrate --model M --report val.json          # prints the table
    python -m ccr_demo.eval.calibrate --model M --report val.json --write  # and sets w
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ccr_demo.utils.fileio import atomic_write_json


def weight_table(report: dict) -> dict[float, float]:
    """{w: score} of one evaluation report: the mean over the full-caption and typed-query
    tables that it holds (``ValueError`` when it has neither: evaluate with ``--rerank-k``)."""
    tables = [report.get("rerank", {}).get("itc_weight_table"),
              (report.get("queries") or {}).get("rerank", {}).get("itc_weight_table")]
    tables = [{float(w): float(v) for w, v in t.items()} for t in tables if t]
    if not tables:
        raise ValueError("the report has no re-rank weight table: evaluate a fusion model with --rerank-k")
    weights = sorted(set.intersection(*(set(t) for t in tables)))
    return {w: sum(t[w] for t in tables) / len(tables) for w in weights}


def contrastive_reference(report: dict) -> float | None:
    """The same score for the contrastive order itself (no re-ranking), when the report has it."""
    refs = [report.get("rerank", {}).get("itc_weight_contrastive"),
            (report.get("queries") or {}).get("rerank", {}).get("itc_weight_contrastive")]
    refs = [float(r) for r in refs if r is not None]
    return sum(refs) / len(refs) if refs else None


def best_weight(table: dict[float, float]) -> float:
    top = max(table.values())
    return min(w for w, v in table.items() if v == top)


def check_validation(report: dict) -> None:
    """A weight chosen on a test split would leak the test set into the model: refuse one."""
    name = str(report.get("dataset", ""))
    folders = Path(name).parts[:-1]  # the IGLUE layout names every split's file test.jsonl: judge by folder
    if any(part == "test" or part.startswith("test_") for part in folders):
        raise ValueError(f"the report is of {name!r}, a test split: choose the re-rank weight on a validation split")


def write_weight(model_dir: str | Path, weight: float) -> Path:
    """Set ``model.fusion.rerank_itc_weight`` in ``model_dir/config.json`` (atomically)."""
    path = Path(model_dir) / "config.json"
    config = json.loads(path.read_text())
    fusion = config.get("model", {}).get("fusion") or {}
    if not fusion.get("layers"):
        raise ValueError(f"{path} is a dual encoder (no fusion encoder): it has nothing to re-rank with")
    fusion["rerank_itc_weight"] = float(weight)
    atomic_write_json(path, config)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ccr_demo.eval.calibrate", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="the fusion model's folder (its config.json is updated)")
    p.add_argument("--report", required=True, help="an evaluation report of a validation split, with --rerank-k")
    p.add_argument("--write", action="store_true", help="write the chosen weight into the model's config.json")
    a = p.parse_args(argv)
    try:
        data = json.loads(Path(a.report).read_text())
        report = data["reports"][0] if "reports" in data else data
        check_validation(report)
        table = weight_table(report)
        w = best_weight(table)
        print("w (per unit of cosine) | mean of R@1 and P@5, re-ranked top k")
        for weight, score in table.items():
            print(f"{weight:>8g} | {score:.4f}{'  <- chosen' if weight == w else ''}")
        reference = contrastive_reference(report)
        if reference is not None:
            print(f"contrastive order, no re-ranking | {reference:.4f}")
            if reference > table[w]:
                print("note: re-ranking lowers this split's score at every weight; the weight kept is the least "
                      "harmful, and the app's re-rank switch should say so")
        if a.write:
            print(f"wrote rerank_itc_weight {w:g} into {write_weight(a.model, w)}")
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

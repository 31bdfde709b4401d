"""Write docs/analysis/default_model.md from a finished run of the default recipe.

    python train/report_default.py --run runs/default --cache-log runs/cache_text_features.json \
        --baseline runs/old_model_on_queries.json --out docs/analysis/default_model.md

Everything in the page comes from files the run and the evaluation CLI wrote: the run's
summary.json (final report, timings, cache statistics), its jsonl training log (the
evaluation curve), the caching script's JSON output, and a baseline's report from
``python -m ccr_demo.eval ... --out`` on the same test splits.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ccr_demo.eval.tables import report_table

GOALS = {"p@5": 0.9, "top5_overlap": 0.85, "ir_r1": 95.0}


def _curve(log_path: Path) -> list[dict]:
    rows = []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        keys = [k for k in entry if k.startswith("eval/") and "/t2i_r1/" in k]
        if not keys:
            continue
        r1 = [entry[k] for k in keys]
        get = lambda suffix: next((v for k, v in entry.items() if k.endswith(suffix)), None)  # noqa: E731
        rows.append({"step": entry["step"], "ir_r1_mean": sum(r1) / len(r1), "ir_r1_min": min(r1),
                     "mrv_t2i": get("/mrv_t2i"), "p5": get("/queries/p5_mean"),
                     "overlap": get("/queries/overlap5"), "first_std": get("/queries/first_rank_std")})
    return rows


def _fmt(v, spec=".3f"):
    return "n/a" if v is None else format(v, spec)


def render(summary: dict, curve: list[dict], cache: dict | None, baseline: dict | None, steps_per_epoch: int,
           report: dict | None = None) -> str:
    report = report or summary["eval"][0]
    q = report.get("queries")
    ir = [report["t2i"][lang]["1"] for lang in report["languages"]]
    lines = ["# The default model: how it was made and what it reaches", "",
             "Made by `accelerate launch train/pretrain.py --config default` on the 2-core CPU "
             "machine this project is built on (no GPU), then copied to `assets/` (see `assets/README.md`). "
             "This page is written by `train/report_default.py` from the run's files; the numbers of the "
             "embedded model are those of `assets/eval_report.json` "
             "(`python -m ccr_demo.eval --model assets/model --data assets/shapes_test`). What limits it "
             "and the levers measured: `docs/analysis/default_model_analysis.md`.", ""]
    # ------------------------------------------------------------------ the build
    setup = summary.get("setup_seconds", {})
    lines += ["## The build and its time", "",
              "| phase | command | seconds |", "|---|---|---|"]
    if cache:
        lines.append(f"| generate the shapes world (2000 train scenes with 4 partial captions each, 1000 test scenes, "
                     f"500 typed queries) | `python train/cache_text_features.py` | {cache['data_seconds']} |")
        lines.append(f"| encode every distinct caption once with the locked e5 tower | same command | "
                     f"{cache['text_cache_seconds']} |")
    if setup:
        lines.append(f"| data and caption cache, as the trainer found them | `accelerate launch train/pretrain.py` | "
                     f"{setup.get('data', 'n/a')} + {setup.get('text_cache', 'n/a')} |")
    lines.append(f"| training, {summary['steps']} steps ({summary['epochs']} epochs) with evaluation | same | "
                 f"{summary['train_seconds']} |")
    total = summary["train_seconds"] + (cache["data_seconds"] + cache["text_cache_seconds"] if cache else 0)
    lines += [f"| **total** | | **{total:.0f} ({total / 60:.1f} min)** |", ""]
    stats = (cache or {}).get("text_cache") or summary.get("text_cache")
    if stats:
        lines += [f"Caption cache: {stats['occurrences']} caption occurrences, {stats['unique']} distinct strings "
                  f"(hit rate {stats['hit_rate']:.1%}: the share of occurrences served by an earlier identical "
                  "string, mostly repeated short queries).", ""]
    # ------------------------------------------------------------------ goals
    lines += ["## Goals of issue 8, measured", "", "| goal | measured | reached |", "|---|---|---|"]
    if q:
        p5 = [q["per_language"][lang]["p@5"] for lang in q["languages"]]
        lines.append(f"| typed-query P@5 >= {GOALS['p@5']} in every language | {min(p5):.3f}-{max(p5):.3f} | "
                     f"{'yes' if min(p5) >= GOALS['p@5'] else 'no'} |")
        ov = q["consistency"]["top5_overlap"]
        lines.append(f"| top-5 overlap across languages >= {GOALS['top5_overlap']} | {ov:.3f} | "
                     f"{'yes' if ov >= GOALS['top5_overlap'] else 'no'} |")
    lines.append(f"| full-caption IR R@1 >= {GOALS['ir_r1']}% (unique gold) in every language | "
                 f"{min(ir):.1f}-{max(ir):.1f}% | {'yes' if min(ir) >= GOALS['ir_r1'] else 'no'} |")
    old_mrv = baseline["mrv"]["t2i"] if baseline else None
    lines.append(f"| MRV below the previous default's 0.382 | {report['mrv']['t2i']:.3f} (the previous model on "
                 f"this test set: {_fmt(old_mrv)}) | {'yes' if report['mrv']['t2i'] < 0.382 else 'no'} |")
    lines.append(f"| whole build <= 60 min on this machine | {total / 60:.1f} min | {'yes' if total <= 3600 else 'no'} |")
    lines.append("")
    # ------------------------------------------------------------------ results
    lines += ["## Final evaluation (1000 parallel test scenes x 10 languages, 500 typed queries)", "",
              report_table(report), ""]
    if q:
        lines += ["P@5 by kind of query (mean over languages):", "",
                  "| " + " | ".join(q["p@5_by_granularity"]) + " |",
                  "|---" * len(q["p@5_by_granularity"]) + "|",
                  "| " + " | ".join(f"{v:.3f}" for v in q["p@5_by_granularity"].values()) + " |", "",
                  "| " + " | ".join(q["p@5_by_form"]) + " |", "|---" * len(q["p@5_by_form"]) + "|",
                  "| " + " | ".join(f"{v:.3f}" for v in q["p@5_by_form"].values()) + " |", ""]
    if baseline:
        lines += ["## Against the previous default (trained on full captions only), same test splits", "",
                  "| model | IR R@1 (mean over languages) | MRV t2i | typed P@5 (mean) | first-relevant-rank std | "
                  "top-5 overlap |", "|---|---|---|---|---|---|"]
        for name, r in (("previous default", baseline), ("this model", report)):
            rq = r.get("queries") or {}
            r1 = [r["t2i"][lang]["1"] for lang in r["languages"]]
            lines.append(f"| {name} | {sum(r1) / len(r1):.1f} | {r['mrv']['t2i']:.3f} | "
                         f"{_fmt(rq.get('mean', {}).get('p@5'))} | "
                         f"{_fmt(rq.get('consistency', {}).get('first_rank_std'))} | "
                         f"{_fmt(rq.get('consistency', {}).get('top5_overlap'))} |")
        lines.append("")
    # ------------------------------------------------------------------ curve
    if curve:
        lines += ["## Evaluation during training", "",
                  "| epoch | IR R@1 mean (min) | MRV t2i | typed P@5 mean | top-5 overlap | first-relevant-rank std |",
                  "|---|---|---|---|---|---|"]
        for row in curve:
            lines.append(f"| {row['step'] // steps_per_epoch} | {row['ir_r1_mean']:.1f} ({row['ir_r1_min']:.1f}) | "
                         f"{_fmt(row['mrv_t2i'])} | {_fmt(row['p5'])} | {_fmt(row['overlap'])} | "
                         f"{_fmt(row['first_std'])} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/default")
    p.add_argument("--cache-log", default="", help="JSON printed by train/cache_text_features.py")
    p.add_argument("--baseline", default="", help="an evaluation report of another model on the same splits")
    p.add_argument("--report", default="", help="the shipped model's evaluation report (default: the run's last)")
    p.add_argument("--notes", default="", help="a markdown file appended as is (analysis written by hand)")
    p.add_argument("--out", default="docs/analysis/default_model.md")
    a = p.parse_args(argv)
    run = Path(a.run)
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    cache = json.loads(Path(a.cache_log).read_text(encoding="utf-8")) if a.cache_log else None
    baseline = json.loads(Path(a.baseline).read_text(encoding="utf-8")) if a.baseline else None
    steps_per_epoch = max(1, summary["steps"] // max(1, summary["epochs"]))
    report = json.loads(Path(a.report).read_text(encoding="utf-8")) if a.report else None
    text = render(summary, _curve(run / "logs" / "train_log.jsonl"), cache, baseline, steps_per_epoch, report)
    if a.notes:
        text += "\n" + Path(a.notes).read_text(encoding="utf-8")
    Path(a.out).write_text(text, encoding="utf-8")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

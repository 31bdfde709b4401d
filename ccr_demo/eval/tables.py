"""An evaluation report as markdown tables and as Hub model-index entries.

One rendering for the console, the app's Evaluate tab and the model card (which the trainer
writes from the measured report, sentence-transformers style).
"""

from __future__ import annotations

from huggingface_hub import EvalResult


def report_table(report: dict) -> str:
    """Markdown table of an evaluation report: per-language R@1/5/10 both ways, mean recall, MRV."""
    langs = report["languages"]
    rows = ["| language | IR R@1 | IR R@5 | IR R@10 | TR R@1 | TR R@5 | TR R@10 | mean recall |",
            "|---|---|---|---|---|---|---|---|"]
    for lang in langs:
        t2i, i2t = report["t2i"][lang], report["i2t"][lang]
        rows.append(f"| {lang} | {t2i['1']:.2f} | {t2i['5']:.2f} | {t2i['10']:.2f} | "
                    f"{i2t['1']:.2f} | {i2t['5']:.2f} | {i2t['10']:.2f} | {report['mean_recall'][lang]:.2f} |")
    rows.append("")
    rows.append("| | text-to-image (IR) | image-to-text (TR) |")
    rows.append("|---|---|---|")
    rows.append(f"| MRV (std of ranks across languages, lower is better) | {report['mrv']['t2i']:.3f} | "
                f"{report['mrv']['i2t']:.3f} |")
    rows.append(f"| rank variance (MRV's variance form) | {report['mrv_var']['t2i']:.3f} | "
                f"{report['mrv_var']['i2t']:.3f} |")
    if report.get("queries"):
        rows += ["", queries_table(report)]
    if report.get("rerank"):
        rows += ["", rerank_table(report)]
    return "\n".join(rows)


def rerank_table(report: dict) -> str:
    """Markdown: R@1 both ways and MRV, contrastive vs exact re-ranking vs the official protocol."""
    if "rerank" not in report:
        return ""
    blocks = [("contrastive", report), ("re-ranked (exact)", report["rerank"]), ("official protocol", report["official"])]
    lines = [f"ITM re-ranking of the contrastive top {report['rerank']['k']}", "",
             "| ranking | language | IR R@1 | IR R@5 | IR R@10 | TR R@1 | TR R@5 | TR R@10 |", "|---" * 8 + "|"]
    for name, b in blocks:
        for lang in report["languages"]:
            t, i = b["t2i"][lang], b["i2t"][lang]
            lines.append(f"| {name} | {lang} | {t['1']:.2f} | {t['5']:.2f} | {t['10']:.2f} | "
                         f"{i['1']:.2f} | {i['5']:.2f} | {i['10']:.2f} |")
    mrv_langs = ",".join(report["rerank"]["mrv_languages"])
    contrastive_mrv = report["mrv_subset"]["mrv"] if "mrv_subset" in report else report["mrv"]
    lines += ["", f"| MRV over {mrv_langs} | IR | TR |", "|---|---|---|",
              f"| contrastive | {contrastive_mrv['t2i']:.3f} | {contrastive_mrv['i2t']:.3f} |",
              f"| re-ranked (exact) | {report['rerank']['mrv']['t2i']:.3f} | {report['rerank']['mrv']['i2t']:.3f} |",
              f"| official protocol | {report['official']['mrv']['t2i']:.3f} | {report['official']['mrv']['i2t']:.3f} |"]
    q = report.get("queries") or {}
    if q.get("rerank"):
        lines += ["", "Typed queries, P@5: " + ", ".join(
            f"{lang} {q['per_language'][lang]['p@5']:.3f} -> {q['rerank']['p@5'][lang]:.3f}" for lang in q["languages"])
            + " (contrastive -> re-ranked)"]
    return "\n".join(lines)


def queries_table(report: dict) -> str:
    """Markdown table of a report's typed-query metrics (empty when it has none)."""
    q = report.get("queries")
    if not q:
        return ""
    names = list(q["mean"])
    lines = [f"Typed queries ({q['n_queries']} queries, {q['mean_relevant']:.1f} relevant images each on average)",
             "", "| language | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for lang in q["languages"]:
        lines.append(f"| {lang} | " + " | ".join(f"{q['per_language'][lang][m]:.3f}" for m in names) + " |")
    lines.append("| mean | " + " | ".join(f"{q['mean'][m]:.3f}" for m in names) + " |")
    c = q["consistency"]
    lines += ["", f"Consistency across languages: first-relevant-rank std {c['first_rank_std']:.3f} "
                  f"(variance {c['first_rank_var']:.3f}), top-5 overlap {c['top5_overlap']:.3f}"]
    return "\n".join(lines)


def eval_results(report: dict, dataset_name: str, dataset_type: str = "parallel-retrieval") -> list[EvalResult]:
    """model-index entries for the Hub: per-language R@1 both ways, and MRV."""
    out = []
    for lang in report["languages"]:
        for direction, task in (("t2i", "text-to-image"), ("i2t", "image-to-text")):
            out.append(EvalResult(task_type=f"{task}-retrieval", dataset_type=dataset_type, dataset_name=dataset_name,
                                  dataset_config=lang, metric_type="recall@1", metric_name=f"R@1 {task} ({lang})",
                                  metric_value=round(report[direction][lang]["1"], 2)))
    for direction, task in (("t2i", "text-to-image"), ("i2t", "image-to-text")):
        out.append(EvalResult(task_type=f"{task}-retrieval", dataset_type=dataset_type, dataset_name=dataset_name,
                              metric_type="mrv", metric_name=f"MRV {task}",
                              metric_value=round(report["mrv"][direction], 4)))
    queries = report.get("queries")
    for lang in (queries or {}).get("languages", []):
        out.append(EvalResult(task_type="text-to-image-retrieval", dataset_type=dataset_type,
                              dataset_name=f"{dataset_name} typed queries", dataset_config=lang,
                              metric_type="precision@5", metric_name=f"typed-query P@5 ({lang})",
                              metric_value=round(queries["per_language"][lang]["p@5"], 4)))
    return out


"""The ablation's results: each finished run's figures, the tables and plots of docs/analysis/ablation.md.

Everything is read from the runs' own summary and evaluation reports (MRV over the seen
languages is recomputed from each run's kept ranks), so the report can be rewritten at any time
from whatever runs are finished, and it names the missing ones.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ccr_demo.training.ablation.plan import RunSpec, plan_runs
from ccr_demo.utils.fileio import atomic_write_json, atomic_write_text


def run_result(spec: RunSpec, folder: Path, seen: list[str]) -> dict:
    """One finished run's figures: per-language recall, MRV over all / seen / unseen languages."""
    from ccr_demo.eval import metrics

    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    report = summary["eval"][0]
    langs = report["languages"]
    ranks = report.get("ranks") or {}
    out = {"label": spec.label, "regime": spec.regime, "part": spec.part, "method": spec.method, "seed": spec.seed,
           "steps": summary["steps"], "train_seconds": summary["train_seconds"],
           "seconds_per_step": summary["train_seconds"] / max(1, summary["steps"]),
           "ir_r1": {lang: report["t2i"][lang]["1"] for lang in langs},
           "tr_r1": {lang: report["i2t"][lang]["1"] for lang in langs},
           "recall": {d: {lang: {k: report[key][lang][k] for k in ("1", "5", "10") if k in report[key][lang]}
                          for lang in langs} for d, key in (("ir", "t2i"), ("tr", "i2t"))},
           **{f"{d}_r{k}_mean": float(np.mean([report[key][lang][k] for lang in langs]))
              for d, key in (("ir", "t2i"), ("tr", "i2t")) for k in ("5", "10") if k in report[key][langs[0]]},
           "mean_recall": report["mean_recall"]["all"], "mrv_t2i": report["mrv"]["t2i"], "mrv_i2t": report["mrv"]["i2t"],
           "mrv_var_t2i": report["mrv_var"]["t2i"]}
    cfg = json.loads((folder / "config.yaml.json").read_text(encoding="utf-8"))
    # caption-image pairs per image per step: 1-to-1 one, the pivot its English caption (its second
    # term pairs two captions), 1-to-K k of the K
    loss = cfg["train"]["loss"]
    k = 1 if loss in ("one_to_one", "pivot") else (cfg["train"]["caption_num"] or len(seen))
    out["pairs_seen"] = summary["steps"] * summary["global_batch"] * k
    for name, subset in (("seen", [lang for lang in langs if lang in seen]),
                         ("unseen", [lang for lang in langs if lang not in seen])):
        if len(subset) > 1 and ranks:
            for d in ("t2i", "i2t"):
                if d in ranks:
                    r = np.stack([np.asarray(ranks[d][lang]) for lang in subset], axis=1)
                    out[f"mrv_{d}_{name}"] = metrics.mean_rank_variance(r, kind="std")
        if subset:
            out[f"ir_r1_{name}"] = float(np.mean([out["ir_r1"][lang] for lang in subset]))
    if report.get("queries"):
        out["query_p5"] = report["queries"]["mean"]["p@5"]
    return out


def collect(plan: dict, out: Path) -> tuple[list[dict], list[str]]:
    """Results of the finished runs, and the names of those not finished."""
    seen = list(plan.get("languages") or [])
    results, missing = [], []
    for spec in plan_runs(plan):
        folder = out / spec.name
        if (folder / "summary.json").is_file():
            results.append(run_result(spec, folder, seen or _trained_languages(folder)))
        else:
            missing.append(spec.name)
    return results, missing


def _trained_languages(folder: Path) -> list[str]:
    cfg = json.loads((folder / "config.yaml.json").read_text(encoding="utf-8"))
    return list(cfg["data"]["languages"] or cfg["model"]["languages"])


def _spread(values: list[float], digits: int) -> str:
    """Mean ± population std over seeds (a single value alone; "n/a" for none)."""
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return "n/a"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}" if len(values) > 1 else f"{values[0]:.{digits}f}"


def _mean_std(values: list[float]) -> str:
    return _spread(values, 3)


def _pct(values: list[float]) -> str:
    """Recall figures (the reports hold them in %)."""
    return _spread(values, 1)


def _groups(results: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["part"], r["regime"], r["label"]), []).append(r)
    return groups


def paired_rows(rows: list[tuple[str, list[dict]]], reference: str = "one_to_k") -> list[list[str]]:
    """1-to-K against each other method of one table, seed by seed (the same seed gives both runs the
    same data, order and initialisation): the mean ± std of the differences, and in how many of the
    paired seeds 1-to-K is ahead. A gap in the means can hide a seed that goes the other way."""
    ref = next((rs for _, rs in rows if rs[0]["method"] == reference), None)
    if ref is None:
        return []
    ref_by_seed = {r["seed"]: r for r in ref}
    out = []
    for label, rs in rows:
        pairs = [(ref_by_seed[r["seed"]], r) for r in rs if r["method"] != reference and r["seed"] in ref_by_seed]
        if not pairs:
            continue
        d_r1 = [a["ir_r1_seen"] - b["ir_r1_seen"] for a, b in pairs if "ir_r1_seen" in a and "ir_r1_seen" in b]
        d_mrv = [b["mrv_t2i_seen"] - a["mrv_t2i_seen"] for a, b in pairs
                 if a.get("mrv_t2i_seen") is not None and b.get("mrv_t2i_seen") is not None]
        out.append([label, str(len(pairs)), _pct(d_r1) if d_r1 else "n/a", f"{sum(d > 0 for d in d_r1)} of {len(d_r1)}",
                    _mean_std(d_mrv), f"{sum(d > 0 for d in d_mrv)} of {len(d_mrv)}"])
    return out


def recall_at_k_tables(rows: list[tuple[str, list[dict]]], langs: list[str]) -> list[str]:
    """Per direction, a folded table of every language's R@1 / R@5 / R@10 (means over seeds)."""
    if not all("recall" in r for _, rs in rows for r in rs):
        return []  # results.json of an older report: the runs' own reports have them
    lines = ["<details><summary>Per-language R@1 / R@5 / R@10 in both directions (mean over seeds; the spread "
             "of R@1 is in the tables above)</summary>", ""]
    for d, name in (("ir", "Text-to-image (IR)"), ("tr", "Image-to-text (TR)")):
        lines += [f"{name}, R@1 / R@5 / R@10 (%):", "", "| method | seeds | " + " | ".join(langs) + " |",
                  "|" + "---|" * (len(langs) + 2)]
        for label, rs in rows:
            cells = [" / ".join(f"{np.mean([r['recall'][d][lang][k] for r in rs]):.1f}"
                                for k in ("1", "5", "10") if k in rs[0]["recall"][d][lang]) for lang in langs]
            lines.append(f"| {label} | {len(rs)} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines + ["</details>", ""]


def recall_curve(results: list[dict]) -> np.ndarray | None:
    """The common curve of consistency against recall: log(MRV seen) as a polynomial in seen IR
    R@1 (least squares; quadratic from 6 runs on, since the points bend: on the full plan's
    locked runs it leaves a sixth of a straight line's squared error), over every run whose method
    aligns every training language with the image, i.e. all but the English pivot. Its
    coefficients, highest power first (``np.polyval``); None with fewer than 3 such runs."""
    pts = [(r["ir_r1_seen"], math.log(r["mrv_t2i_seen"])) for r in results
           if r["method"] != "pivot" and r.get("mrv_t2i_seen") and "ir_r1_seen" in r]
    if len(pts) < 3 or len({x for x, _ in pts}) < 3:
        return None
    return np.polyfit(*zip(*pts), 2 if len(pts) >= 6 else 1)


def curve_text(curve: np.ndarray) -> str:
    terms = [f"{c:+.3g}" + (f" x^{len(curve) - 1 - i}" if i < len(curve) - 2 else " x" if i == len(curve) - 2 else "")
             for i, c in enumerate(curve)]
    return "log(MRV IR seen) = " + " ".join(terms).lstrip("+") + " (x = IR R@1 seen, %)"


def off_curve_rows(results: list[dict]) -> list[list[str]]:
    """Per method, its MRV seen over the curve's MRV at its own recall (geometric mean over its
    runs, and the range): about 1 on the curve; above 1 less consistent than its accuracy
    predicts. The pivot is not in the fit, so its ratio is out of sample."""
    curve = recall_curve(results)
    if curve is None:
        return []
    rows = []
    for label, part in dict.fromkeys((r["label"], r["part"]) for r in results):
        ratios = [r["mrv_t2i_seen"] / math.exp(np.polyval(curve, r["ir_r1_seen"])) for r in results
                  if (r["label"], r["part"]) == (label, part) and r.get("mrv_t2i_seen") and "ir_r1_seen" in r]
        if ratios:
            name = f"{label} (MT-noisy captions)" if part == "noise" else label
            rows.append([name, str(len(ratios)), f"{math.exp(np.mean(np.log(ratios))):.2f}",
                         f"{min(ratios):.2f}-{max(ratios):.2f}"])
    return rows


def render_report(plan: dict, results: list[dict], missing: list[str], plots: dict[str, str]) -> str:
    """docs/analysis/ablation.md: per part and regime, method x language IR R@1 and the MRV columns."""
    seen = list(plan.get("languages") or [])
    lines = [f"# Ablation: 1-to-K against its baselines ({plan.get('title', Path(plan['path']).stem)})", "",
             f"Written by `python -m ccr_demo.training.ablation --plan {plan.get('name', Path(plan['path']).stem)}` from "
             f"the runs' own evaluation reports. Plan: `{Path(plan['path']).name}`; seeds {plan['seeds']}; "
             f"trained on {seen or 'each config’s languages'}"
             + (f", tested on {plan['eval_languages']}" if plan.get("eval_languages") else "") + ".",
             "Figures are the mean ± population std over seeds. IR = text-to-image, TR = image-to-text; R@1 in %; "
             "MRV is the mean over test instances of the std of the gold image's rank across languages "
             "(lower = more consistent); 'seen' / 'unseen' = the languages in / not in training. s/step is each "
             "run's own training time per step, measured while other runs shared the cores, so it is noisy; "
             "for the methods' costs side by side (equal wall clock) see `bench/bench_step_cost.py`.", ""]
    if plan.get("notes"):
        lines += [plan["notes"].strip(), ""]
    if missing:
        lines += [f"**Not finished: {len(missing)} of {len(missing) + len(results)} runs** (rerun the command to "
                  f"continue them): " + ", ".join(f"`{m}`" for m in missing[:12]) + (" ..." if len(missing) > 12 else ""),
                  ""]
    groups = _groups(results)
    parts = {"methods": "Methods", "caption_num": "K ablation (train.caption_num: k of the K languages per image "
             "per step)", "noise": "Training on machine-translation-noisy captions"}
    for part, title in parts.items():
        regimes = sorted({reg for (p, reg, _) in groups if p == part})
        for reg in regimes:
            rows = [(label, rs) for (p, r, label), rs in groups.items() if p == part and r == reg]
            if not rows:
                continue
            about = plan["regimes"][reg].get("about", "")
            lines += [f"## {title}: {reg} regime", "", about, ""] if about else [f"## {title}: {reg} regime", ""]
            langs = list(rows[0][1][0]["ir_r1"])
            head = ["method", "seeds", "steps", "caption-image pairs", "s/step"] + [f"IR R@1 {lang}" for lang in langs] + \
                   ["IR R@1 seen", "IR R@1 unseen", "mean recall", "MRV IR", "MRV IR seen", "MRV IR unseen",
                    "MRV TR", "MRV TR seen", "typed P@5"]
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for label, rs in rows:
                cells = [label, str(len(rs)), f"{np.mean([r['steps'] for r in rs]):.0f}",
                         f"{np.mean([r['pairs_seen'] for r in rs]):.0f}",
                         f"{np.mean([r['seconds_per_step'] for r in rs]):.2f}"]
                cells += [_pct([r["ir_r1"][lang] for r in rs]) for lang in langs]
                cells += [_pct([r[k] for r in rs if k in r]) for k in ("ir_r1_seen", "ir_r1_unseen")]
                cells += [_pct([r["mean_recall"] for r in rs])]
                cells += [_mean_std([r.get(k) for r in rs]) for k in ("mrv_t2i", "mrv_t2i_seen", "mrv_t2i_unseen",
                                                                      "mrv_i2t", "mrv_i2t_seen", "query_p5")]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
            paired = paired_rows(rows)
            if paired:
                ref_label = next(rs[0]["label"] for _, rs in rows if rs[0]["method"] == "one_to_k")
                head = ["against", "seeds paired", f"IR R@1 seen: {ref_label} minus it", f"{ref_label} ahead in",
                        f"MRV IR seen: it minus {ref_label}", f"{ref_label} more consistent in"]
                lines += [f"Paired by seed: {ref_label} against each other method trained with the same seed "
                          "(mean ± std of the per-seed differences; positive = "
                          f"{ref_label} better).", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                lines += ["| " + " | ".join(cells) + " |" for cells in paired] + [""]
            head = ["method", "seeds"] + [f"TR R@1 {lang}" for lang in langs] + \
                   ["IR R@5", "IR R@10", "TR R@5", "TR R@10", "MRV IR (variance)"]
            lines += ["Image-to-text R@1 per language; R@5 / R@10 are means over the languages.", "",
                      "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for label, rs in rows:
                cells = [label, str(len(rs))] + [_pct([r["tr_r1"][lang] for r in rs]) for lang in langs]
                cells += [_pct([r[k] for r in rs if k in r]) for k in ("ir_r5_mean", "ir_r10_mean", "tr_r5_mean",
                                                                       "tr_r10_mean")]
                cells += [_mean_std([r.get("mrv_var_t2i") for r in rs])]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
            lines += recall_at_k_tables(rows, langs)
            for key in (f"{part}-{reg}-recall", f"{part}-{reg}-mrv"):
                if key in plots:
                    lines += [f"![{key}]({plots[key]})", ""]
            if part == "methods" and f"mrv-recall-{reg}" in plots:
                lines += ["Consistency against recall, every run of this regime (methods, K ablation, noisy "
                          "captions) as one point: MRV falls as recall rises for any method, so a method is more "
                          "consistent than another at equal recall only if its points lie below the others' "
                          "curve.", "", f"![mrv-recall-{reg}]({plots[f'mrv-recall-{reg}']})", ""]
                in_regime = [r for r in results if r["regime"] == reg]
                curve, off = recall_curve(in_regime), off_curve_rows(in_regime)
                if off:
                    lines += [f"The curve (dashed): {curve_text(curve)}, fitted over every run but the English "
                              "pivot's. Each method's MRV over the curve's "
                              "at its own recall (geometric mean over its runs; 1 = on the curve, 3 = three times "
                              "less consistent than its recall predicts; the pivot is not in the fit):", "",
                              "| method | runs | MRV ÷ curve | range |", "|---|---|---|---|"]
                    lines += ["| " + " | ".join(row) + " |" for row in off] + [""]
    return "\n".join(lines).rstrip() + "\n"


def write_plots(results: list[dict], folder: Path, relative_to: Path) -> dict[str, str]:
    """Per part and regime: IR R@1 per language per method, and MRV per method (error bars:
    std over seeds). PNG files; returns {key: path relative to the report}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    groups = _groups(results)
    for part, reg in sorted({(p, r) for (p, r, _) in groups}):
        rows = [(label, rs) for (p, r, label), rs in groups.items() if p == part and r == reg]
        langs = list(rows[0][1][0]["ir_r1"])
        fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(langs) + 2), 3.6))
        width = 0.8 / len(rows)
        for i, (label, rs) in enumerate(rows):
            vals = np.array([[r["ir_r1"][lang] for lang in langs] for r in rs])
            ax.bar(np.arange(len(langs)) + i * width, vals.mean(0), width, yerr=vals.std(0), label=label, capsize=2)
        ax.set_xticks(np.arange(len(langs)) + 0.4 - width / 2, langs)
        ax.set_ylabel("IR R@1 (%)")
        ax.set_title(f"{part}, {reg}: recall per language (mean ± std over seeds)")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = folder / f"{part}-{reg}-recall.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        out[f"{part}-{reg}-recall"] = os.path.relpath(path, relative_to)
        fig, ax = plt.subplots(figsize=(6.5, 3.4))
        labels = [label for label, _ in rows]
        series = [(k, n) for k, n in (("mrv_t2i_seen", "IR, seen languages"), ("mrv_i2t_seen", "TR, seen languages"),
                                      ("mrv_t2i_unseen", "IR, unseen"), ("mrv_t2i", "IR, all languages"))
                  if all(k in r for _, rs in rows for r in rs)]
        width = 0.8 / max(1, len(series))
        for j, (key, name) in enumerate(series):
            vals = [[r[key] for r in rs] for _, rs in rows]
            ax.bar(np.arange(len(rows)) + j * width, [np.mean(v) for v in vals], width,
                   yerr=[np.std(v) for v in vals], label=f"MRV {name}", capsize=2)
        ax.set_yscale("log")  # seen-language MRV is ~1-10, over unseen languages ~100
        ax.set_xticks(np.arange(len(rows)) + 0.4 - width / 2, labels, rotation=20, ha="right", fontsize=7)
        ax.set_ylabel("MRV (log; lower = more consistent)")
        ax.set_title(f"{part}, {reg}: MRV (mean ± std over seeds)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = folder / f"{part}-{reg}-mrv.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        out[f"{part}-{reg}-mrv"] = os.path.relpath(path, relative_to)
    for reg in sorted({r["regime"] for r in results}):
        path = _plot_mrv_against_recall([r for r in results if r["regime"] == reg and "mrv_t2i_seen" in r],
                                        reg, folder / f"mrv-recall-{reg}.png", plt)
        if path is not None:
            out[f"mrv-recall-{reg}"] = os.path.relpath(path, relative_to)
    return out


def _plot_mrv_against_recall(results: list[dict], regime: str, path: Path, plt) -> Path | None:
    """Every run of a regime as one point: seen-language IR R@1 against seen-language MRV.
    A weaker model ranks its gold images lower, where ranks spread more, so MRV falls as recall
    rises for any method; this shows whether a method is more consistent than others at equal
    recall (off the common curve), not only more accurate."""
    if not results:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, part in dict.fromkeys((r["label"], r["part"]) for r in results):
        rs = [r for r in results if r["label"] == label and r["part"] == part]
        marker = {"noise": "s", "caption_num": "^"}.get(part, "o")
        ax.scatter([r["ir_r1_seen"] for r in rs], [r["mrv_t2i_seen"] for r in rs], marker=marker, s=22,
                   label=f"{label} (MT-noisy captions)" if part == "noise" else label)
    curve = recall_curve(results)
    if curve is not None:
        xs = np.linspace(min(r["ir_r1_seen"] for r in results), max(r["ir_r1_seen"] for r in results), 50)
        ax.plot(xs, np.exp(np.polyval(curve, xs)), "k--", lw=0.8, label="fit (all but the pivot)")
    ax.set_yscale("log")
    ax.set_xlabel("IR R@1, seen languages (%)")
    ax.set_ylabel("MRV IR, seen languages (log)")
    ax.set_title(f"{regime} regime: consistency against recall (one point per run)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(plan: dict, out: Path, report: Path) -> dict:
    """Collect the finished runs, write results.json in ``out`` and the report with its plots."""
    results, missing = collect(plan, out)
    atomic_write_json(out / "results.json", {"plan": plan, "results": results, "missing": missing})
    plots = write_plots(results, report.parent / report.stem, report.parent) if results else {}
    atomic_write_text(report, render_report(plan, results, missing, plots))
    return {"results": len(results), "missing": len(missing)}

"""Write docs/analysis/default_ccrk.md: how the whole CCRK model of the default recipe was made and
what ITM re-ranking does.

    python train/report_ccrk.py --run runs/default-ccrk --stage1 runs/default \
        --stage1-cache runs/cache_text_features.json --states-cache runs/cache_text_states.log \
        --dual-report assets/eval_report.json --notes docs/analysis/default_ccrk_notes.md --out docs/analysis/default_ccrk.md

Every number comes from files the runs and the evaluation CLI wrote: the two runs' summary.json
(timings, per-loss history, the final evaluation with ``train.eval_rerank_k``), the caching
scripts' output, and the stage-1 dual encoder's report on the same test splits (the embedded
default's ``assets/eval_report.json``), or any ``python -m ccr_demo.eval --out`` report.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

GOAL_RERANKED_R1 = 97.0


def _load(path: str) -> dict | None:
    if not path:
        return None
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".log"):  # a caching script's stdout: its JSON is the last {...} block
        text = text[text.rindex("\n{") + 1:]
    return json.loads(text)


def _r1_row(name: str, block: dict, langs: list[str], direction: str) -> str:
    return f"| {name} | " + " | ".join(f"{block[direction][lang]['1']:.1f}" for lang in langs) + " |"


def render(run: dict, report: dict, stage1: dict | None, stage1_cache: dict | None, states_cache: dict | None,
           dual: dict | None) -> str:
    langs = report["languages"]
    rr, official = report.get("rerank"), report.get("official")
    lines = ["# The whole CCRK model on the default recipe", "",
             "Stage 1 is the dual encoder of the shipped config `default` (docs/analysis/default_model.md); stage 2, "
             "`accelerate launch train/pretrain.py --config default-ccrk`, adds a 2-layer fusion "
             "encoder (width 256) and trains ITC + ITM (1-to-K hard-positive language, hard negatives) + MLM, weight 1 "
             "each, starting from stage 1's weights. This page is written by `train/report_ccrk.py` from the runs' "
             "files; the results are the stage-2 trainer's final evaluation (`train.eval_rerank_k: 16`) on the same "
             "1000-scene test split and 500 typed queries as the embedded default (`assets/`), whose own report "
             "(the stage-1 dual encoder) is the comparison row.", ""]
    # ---------------------------------------------------------------- build time
    rows = []
    if stage1_cache:
        rows.append(("stage 1: data + pooled caption features", stage1_cache["data_seconds"]
                     + stage1_cache["text_cache_seconds"]))
    if stage1:
        rows.append((f"stage 1: dual-encoder training, {stage1['steps']} steps ({stage1['epochs']} epochs)",
                     stage1["train_seconds"]))
    if states_cache:
        rows.append((f"token states of every distinct caption ({states_cache['text_state_cache']['unique']} strings, "
                     "locked e5-small)", states_cache["text_state_cache_seconds"]))
    rows.append((f"stage 2: ITC + ITM + MLM, {run['steps']} steps ({run['epochs']} epochs) with evaluation",
                 run["train_seconds"]))
    total = sum(s for _, s in rows)
    lines += ["## The build and its time", "", "| phase | seconds |", "|---|---|"]
    lines += [f"| {name} | {s:.0f} |" for name, s in rows]
    lines += [f"| **total** | **{total:.0f} ({total / 60:.1f} min)** |", "",
              "The machine's 2 cores were shared with other jobs during parts of these runs.", ""]
    fusion = run.get("fusion") or {}
    lines += ["## How it was trained", "", "| setting | value |", "|---|---|",
              f"| objectives | {', '.join(f'{k} x{v:g}' for k, v in run.get('objectives', {}).items())} |",
              f"| ITM positive language | {fusion.get('itm_positive')} (official neg_sample_type 1) |",
              f"| MLM | masked at the {str(fusion.get('mlm_masking', '')).replace('_', ' ')}, probability "
              f"{fusion.get('mlm_probability')}, at most {fusion.get('mlm_max_masks')} masks, softmax over "
              f"{fusion.get('mlm_vocabulary_size', 'the full')} tokens ({fusion.get('mlm_vocabulary')}) |", ""]
    hist = [h for h in run.get("history", []) if h.get("losses")]
    if hist:
        picks = [hist[0], *hist[len(hist) // 4::max(1, len(hist) // 4)][:3], hist[-1]]
        lines += ["| step | itc | itm | mlm |", "|---|---|---|---|"]
        seen = set()
        for h in picks:
            if h["step"] in seen:
                continue
            seen.add(h["step"])
            p = h["losses"]
            lines.append(f"| {h['step']} | {p.get('itc', 0):.3f} | {p.get('itm', 0):.3f} | {p.get('mlm', 0):.3f} |")
        lines.append("")
    # ---------------------------------------------------------------- goals
    if rr:
        r1 = [rr["t2i"][lang]["1"] for lang in langs]
        lines += ["## Goal of issue 12, measured", "", "| goal | measured | reached |", "|---|---|---|",
                  f"| re-ranking lifts full-caption IR R@1 to >= {GOAL_RERANKED_R1}% in every language | "
                  f"{min(r1):.1f}-{max(r1):.1f}% | {'yes' if min(r1) >= GOAL_RERANKED_R1 else 'no'} |",
                  f"| re-ranking lowers MRV | IR {report['mrv']['t2i']:.3f} -> {rr['mrv']['t2i']:.3f}, TR "
                  f"{report['mrv']['i2t']:.3f} -> {rr['mrv']['i2t']:.3f} | "
                  f"{'yes' if rr['mrv']['t2i'] < report['mrv']['t2i'] and rr['mrv']['i2t'] < report['mrv']['i2t'] else 'no'} |",
                  ""]
    # ---------------------------------------------------------------- R@1 and MRV side by side
    for direction, title in (("t2i", "Text-to-image R@1 (%)"), ("i2t", "Image-to-text R@1 (%)")):
        lines += [f"## {title}, {report.get('n_instances', '?')} test scenes", "",
                  "| ranking | " + " | ".join(langs) + " |", "|---" * (len(langs) + 1) + "|"]
        if dual:
            lines.append(_r1_row("stage 1 dual encoder", dual, langs, direction))
        lines.append(_r1_row("contrastive (this model)", report, langs, direction))
        if rr:
            lines.append(_r1_row(f"ITM re-ranked top {rr['k']}", rr, langs, direction))
            lines.append(_r1_row("official protocol", official, langs, direction))
        lines.append("")
    lines += ["## MRV (std of the gold's rank across the 10 languages; lower is more consistent)", "",
              "| ranking | IR | TR |", "|---|---|---|"]
    if dual:
        lines.append(f"| stage 1 dual encoder | {dual['mrv']['t2i']:.3f} | {dual['mrv']['i2t']:.3f} |")
    lines.append(f"| contrastive (this model) | {report['mrv']['t2i']:.3f} | {report['mrv']['i2t']:.3f} |")
    if rr:
        lines.append(f"| ITM re-ranked top {rr['k']} (exact: golds outside the top k keep their rank) | "
                     f"{rr['mrv']['t2i']:.3f} | {rr['mrv']['i2t']:.3f} |")
        lines.append(f"| official protocol (scores outside the top k set to -100; the paper's tables) | "
                     f"{official['mrv']['t2i']:.3f} | {official['mrv']['i2t']:.3f} |")
    lines.append("")
    q = report.get("queries") or {}
    if q:
        lines += ["## Typed queries (500, held-out phrasings), P@5", "",
                  "| ranking | " + " | ".join(q["languages"]) + " | mean |", "|---" * (len(q["languages"]) + 2) + "|"]
        if dual and dual.get("queries"):
            dq = dual["queries"]
            lines.append("| stage 1 dual encoder | " + " | ".join(f"{dq['per_language'][lang]['p@5']:.3f}"
                                                                 for lang in q["languages"])
                         + f" | {dq['mean']['p@5']:.3f} |")
        lines.append("| contrastive (this model) | " + " | ".join(f"{q['per_language'][lang]['p@5']:.3f}"
                                                                 for lang in q["languages"])
                     + f" | {q['mean']['p@5']:.3f} |")
        if q.get("rerank"):
            p5 = q["rerank"]["p@5"]
            lines.append(f"| ITM re-ranked top {rr['k'] if rr else '?'} | " + " | ".join(f"{p5[lang]:.3f}"
                                                                                 for lang in q["languages"])
                         + f" | {sum(p5[lang] for lang in q['languages']) / len(q['languages']):.3f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/default-ccrk")
    p.add_argument("--stage1", default="runs/default")
    p.add_argument("--stage1-cache", default="", help="JSON printed by train/cache_text_features.py for stage 1")
    p.add_argument("--states-cache", default="", help="output of the token-state caching (JSON or its log)")
    p.add_argument("--report", default="", help="an evaluation report to use instead of the run's final one")
    p.add_argument("--dual-report", default="", help="the stage-1 model's report on the same splits")
    p.add_argument("--notes", default="", help="a markdown file appended as is (analysis written by hand)")
    p.add_argument("--out", default="docs/analysis/default_ccrk.md")
    a = p.parse_args(argv)
    run = json.loads((Path(a.run) / "summary.json").read_text(encoding="utf-8"))
    stage1 = json.loads((Path(a.stage1) / "summary.json").read_text(encoding="utf-8")) if a.stage1 else None
    report = json.loads(Path(a.report).read_text(encoding="utf-8")) if a.report else run["eval"][0]
    report = report["reports"][0] if "reports" in report else report
    text = render(run, report, stage1, _load(a.stage1_cache), _load(a.states_cache), _load(a.dual_report))
    if a.notes:
        text += "\n" + Path(a.notes).read_text(encoding="utf-8")
    Path(a.out).write_text(text, encoding="utf-8")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

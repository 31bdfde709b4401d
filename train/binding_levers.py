"""The binding levers side by side: each trained with the same budget, measured on the validation split.

Why: the embedded default finds what is in a picture but not where, how many, or which colour
goes with which shape. Each lever is a named training option; this script trains the default
recipe once per lever (same data seed, same optimizer steps, same evaluation), on a smaller
budget than the default so the table fits one session, and writes the lever table:
typed-query precision@5 by kind of query, full-caption IR R@1, MRV, top-5 overlap, minutes.

Settings are chosen on the validation split (``val`` scenes and ``val_queries``), never on
the test splits. Runs are resumable: a lever whose ``summary.json`` exists is not retrained.

    python train/binding_levers.py                   # train what is missing, then write the table
    python train/binding_levers.py --levers baseline twins --steps 1500
    python train/binding_levers.py --report-only     # the table from the runs there are
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ccr_demo.training.configs import load_config
from ccr_demo.training.loop import train
from ccr_demo.utils.fileio import atomic_write_text

DATA = "runs/data/binding"
# What each finished run measured, kept in the repository (runs/ is not): the table is written
# from here, so it survives a fresh checkout. A run's summary is copied in when it finishes.
RESULTS = Path("docs/analysis/binding_runs.json")
BUDGET = {"steps": 450, "train_scenes": 1000, "val_scenes": 500, "val_queries": 500}  # --steps changes the steps

TWINS = {"twins": 0.5}  # a share of the training scenes get a twin (data.generate.twins)
NEGATIVES = {"hard_negatives": 1}  # one hard negative per training caption (data.generate.hard_negatives)
ATTN = ["model.image_pool=attn", "model.image_kwargs={output_stride: 16}"]
# lever name -> (what it changes, what the data needs beyond the common world, config overrides)
LEVERS = {
    "baseline": ("the default recipe (avg pooling, no twins, no hard negatives)", {}, []),
    "twins": ("minimal pairs: half the scenes get a twin one bound property apart, trained in the same batch",
              TWINS, ["train.twin_batches=true"]),
    "attn-pool": ("attention pooling with learned positions over a 4 x 4 map (output stride 16)", {}, ATTN),
    "twins+attn-pool": ("both", TWINS, ["train.twin_batches=true", *ATTN]),
    "hard-negatives": ("one caption hard negative per image in the image->text softmax", NEGATIVES,
                       ["train.hard_negatives=1"]),
    "all": ("twins, attention pooling and hard negatives", {**TWINS, **NEGATIVES},
            ["train.twin_batches=true", "train.hard_negatives=1", *ATTN]),
    "hn+coords": ("hard negatives, and the image tower reads each pixel's x, y (CoordConv)", NEGATIVES,
                  ["train.hard_negatives=1", "model.image_coords=true"]),
    "hn+attn32": ("hard negatives, and attention pooling over the 2 x 2 map of output stride 32", NEGATIVES,
                  ["train.hard_negatives=1", "model.image_pool=attn"]),
    "hn+96px": ("hard negatives at 96 px input (a 3 x 3 last map) instead of 64", NEGATIVES,
                ["train.hard_negatives=1", "model.image_size=96"]),
}

# The re-ranker: the fusion stage (default-ccrk's recipe) trained on top of one dual-encoder
# lever's model, on that lever's data; measured with and without ITM re-ranking of the top 16.
RERANK_K = 16
RERANK_BUDGET = {"steps": 375}  # default-ccrk: 12 epochs of 2000 scenes at batch 64
RERANK_LEVERS = {
    "itm": ("the paper's ITM: negatives drawn from the batch by the hard-negative rule", []),
    "itm+caption-negatives": ("also each image's caption hard negatives (one bound property changed) as ITM "
                              "negatives", ["train.itm_caption_negatives=true"]),
}

KINDS = [  # the typed-query granularities, grouped as the table reads
    ("colour + shape", ["colour_shape"]),
    ("size + colour + shape", ["size_colour_shape"]),
    ("colour + shape + background", ["colour_shape_background"]),
    ("shape + position", ["shape_position"]),
    ("colour + shape + position", ["colour_shape_position", "size_colour_shape_position"]),
    ("count", ["count_shape", "count_colour_shape"]),
    ("two objects", ["two_objects"]),
    ("two objects + places", ["two_objects_position", "two_objects_relation"]),
    ("shape / background alone", ["shape", "background", "size_shape"]),
]

HEADER = (["lever"] + [k for k, _ in KINDS]
          + ["P@5 mean", "top-5 overlap", "IR R@1 mean (min-max)", "MRV (t2i)", "train min"])


def lever_config(name: str, out: Path, steps: int = BUDGET["steps"]):
    _, data_options, lever_overrides = LEVERS[name]
    data = "-".join([DATA, *(k.replace("_", "-") for k in sorted(data_options))])
    extra = "".join(f", {k}: {v}" for k, v in sorted(data_options.items()))
    overrides = [
        f"data.train={data}/train", f"data.eval=[{data}/val]", f"data.eval_queries=[{data}/val_queries]",
        f"data.generate={{out: {data}, n_train: {BUDGET['train_scenes']}, n_val: {BUDGET['val_scenes']}, "
        f"n_test: 0, n_test_compositional: 0, image_size: 128, seed: 0, queries_per_scene: 4, "
        f"n_val_queries: {BUDGET['val_queries']}{extra}}}",
        f"train.max_steps={steps}", "train.epochs=100000", "train.eval_every_epochs=100000",
        f"train.output_dir={out / name}", "train.log_with=none", "train.keep_checkpoints=0",
        f"train.model_name=binding lever {name}",
    ] + lever_overrides
    return load_config("default", overrides)


def rerank_config(name: str, out: Path, init: Path, init_lever: str = "hard-negatives",
                  steps: int = RERANK_BUDGET["steps"]):
    """The fusion stage on ``init`` (a finished lever run's model), on that lever's data."""
    dual = lever_config(init_lever, out)
    overrides = [
        f"train.init_from={init}",
        f"data.train={dual.data.train}", f"data.eval=[{dual.data.eval[0]}]",
        f"data.eval_queries=[{dual.data.eval_queries[0]}]",
        "data.generate=" + json.dumps(dual.data.generate).replace('"', ""),
        f"train.max_steps={steps}", "train.epochs=100000", "train.eval_every_epochs=100000",
        f"train.eval_rerank_k={RERANK_K}", f"train.hard_negatives={dual.train.hard_negatives}",
        f"train.output_dir={out / name}", "train.log_with=none", "train.keep_checkpoints=0",
        f"train.model_name=binding re-ranker lever {name}",
    ] + [o for o in LEVERS[init_lever][2] if o.startswith("model.")] + RERANK_LEVERS[name][1]
    return load_config("default-ccrk", overrides)


def run_rerank(names: list[str], out: Path, init: Path, init_lever: str, steps: int, results: Path = RESULTS) -> None:
    for name in names:
        if not (out / name / "summary.json").is_file():
            print(f"[{name}] {RERANK_LEVERS[name][0]}", flush=True)
            train(rerank_config(name, out, init, init_lever, steps))
        summary = json.loads((out / name / "summary.json").read_text())
        data = load_results(results)
        data.setdefault(f"rerank-{steps}", {})[name] = {**measured(summary), "rerank": rerank_measured(summary),
                                                        "init": f"{init_lever}"}
        atomic_write_text(results, json.dumps(data, indent=1, sort_keys=True) + "\n")


def rerank_measured(summary: dict) -> dict:
    report = summary["eval"][0]
    return {"t2i_r1": {lang: report["rerank"]["t2i"][lang]["1"] for lang in report["languages"]},
            "mrv_t2i": report["rerank"]["mrv"]["t2i"],
            "queries": {k: report["queries"]["rerank"][k] for k in ("mean", "p@5_by_granularity")}}


def run(names: list[str], out: Path, steps: int, results: Path = RESULTS) -> None:
    for name in names:
        if (out / name / "summary.json").is_file():
            print(f"[{name}] done already: {out / name / 'summary.json'}")
        else:
            print(f"[{name}] {LEVERS[name][0]}", flush=True)
            start = time.time()
            summary = train(lever_config(name, out, steps))
            print(f"[{name}] {summary['steps']} steps in {time.time() - start:.0f} s", flush=True)
        record(results, steps, name, json.loads((out / name / "summary.json").read_text()))


def measured(summary: dict) -> dict:
    """The part of a run's summary the table reads."""
    report = summary["eval"][0]
    q = report["queries"]
    return {"eval": [{"languages": report["languages"], "t2i": {lang: {"1": report["t2i"][lang]["1"]}
                                                                for lang in report["languages"]},
                      "mrv": {"t2i": report["mrv"]["t2i"]},
                      "queries": {"p@5_by_granularity": q["p@5_by_granularity"], "mean": {"p@5": q["mean"]["p@5"]},
                                  "consistency": {"top5_overlap": q["consistency"]["top5_overlap"]}}}],
            "train_seconds": summary["train_seconds"], "steps": summary.get("steps")}


def load_results(results: Path) -> dict:
    return json.loads(results.read_text()) if results.is_file() else {}


def record(results: Path, steps: int, name: str, summary: dict) -> None:
    data = load_results(results)
    data.setdefault(str(steps), {})[name] = measured(summary)
    atomic_write_text(results, json.dumps(data, indent=1, sort_keys=True) + "\n")


def row(name: str, out: Path, results: dict | None = None) -> list[str] | None:
    """The table row of one lever: from its run folder if there, else from the kept results
    (``results``: that budget's entries of RESULTS)."""
    path = out / name / "summary.json"
    if path.is_file():
        summary = json.loads(path.read_text())
    elif results and name in results:
        summary = results[name]
        if "cells" in summary:  # measured before runs were kept here: the row as it was written then
            return [f"`{name}`", *(summary["cells"].get(h, "-") for h in HEADER[1:])]
    else:
        return None
    report = summary["eval"][0]
    langs = report["languages"]
    q = report["queries"]
    by_kind = q["p@5_by_granularity"]
    cells = [f"`{name}`"]
    for _, grans in KINDS:
        vals = [by_kind[g] for g in grans if g in by_kind]
        cells.append(f"{sum(vals) / len(vals):.2f}" if vals else "-")
    r1 = [report["t2i"][lang]["1"] for lang in langs]
    cells += [f"{q['mean']['p@5']:.3f}", f"{q['consistency']['top5_overlap']:.3f}",
              f"{sum(r1) / len(r1):.1f} ({min(r1):.1f}-{max(r1):.1f})", f"{report['mrv']['t2i']:.3f}",
              f"{summary['train_seconds'] / 60:.1f}"]
    return cells


def budgets(out: Path, results: dict) -> list[int]:
    """The step budgets there are runs of (``out/<steps>-steps/<lever>``, or kept results)."""
    found = {int(p.name.split("-")[0]) for p in out.glob("*-steps") if p.name.split("-")[0].isdigit()}
    return sorted(found | {int(s) for s in results})


def write_report(out: Path, path: Path, results: Path = RESULTS) -> str:
    header = HEADER
    lines = [
        "# Binding levers: the same budget each, measured on the validation split",
        "",
        "Written by `python train/binding_levers.py` from the runs in `runs/binding/` and what",
        f"finished runs measured, kept in `{RESULTS}` (rerun it to regenerate). Each lever trains",
        "the default recipe (`--config default`: resnet10t at 64 px,",
        "locked e5-small text tower, 1-to-K loss, 10 languages) with the same budget:",
        f"the steps named above each table, batches of 64 images, on a {BUDGET['train_scenes']}-scene",
        "shapes world (seed 0; a twins run has its twins beside those scenes), then one evaluation",
        f"on the **validation** split: {BUDGET['val_scenes']} scenes x 10 languages (full captions,",
        f"one gold image each) and {BUDGET['val_queries']} typed queries over them. The test splits are",
        "not used here. Precision@5 per kind of typed query is the mean over the 10 languages; IR R@1",
        "is text-to-image over the full captions; one seed per lever. \"train min\" is the training",
        "loop's time on the 2-core machine (caption caching and evaluation not counted), as shared",
        "with whatever else ran at the time: compare it roughly.",
        "",
        "Which side of the dual encoder loses binding: [linear probes](binding_probes.md)",
        "(`train/binding_probes.py`) on the locked text features and on a trained image tower.",
    ]
    kept = load_results(results)
    for steps in budgets(out, kept):
        rows = [r for r in (row(n, out / f"{steps}-steps", kept.get(str(steps))) for n in LEVERS) if r is not None]
        lines += ["", f"## {steps} optimizer steps", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    for key in sorted((k for k in kept if k.startswith("rerank-")), key=lambda k: int(k.split("-")[1])):
        lines += rerank_section(int(key.split("-")[1]), kept[key])
    lines += ["", "What each lever changes:", ""]
    lines += [f"- `{n}`: {about} (`{' '.join(o) or 'no overrides'}`)" for n, (about, _, o) in LEVERS.items()]
    lines += [f"- re-ranker `{n}`: {about} (`{' '.join(o) or 'no overrides'}`)"
              for n, (about, o) in RERANK_LEVERS.items()]
    text = "\n".join(lines) + "\n"
    atomic_write_text(path, text)
    return text


def rerank_section(steps: int, runs: dict) -> list[str]:
    """The re-ranker table: each fusion-stage lever, contrastive -> after ITM re-ranking."""
    head = ["re-ranker lever", "on", "IR R@1 (contrastive -> re-ranked)", "P@5 mean (-> re-ranked)",
            *(f"{k} re-ranked" for k, _ in KINDS), "MRV t2i re-ranked", "train min"]
    lines = ["", f"## The re-ranker: {steps} fusion-stage steps, top {RERANK_K} re-ranked by ITM", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in RERANK_LEVERS:
        if name not in runs:
            continue
        r = runs[name]
        report, rr = r["eval"][0], r["rerank"]
        langs = report["languages"]
        mean = lambda d: sum(d[lang] for lang in langs) / len(langs)  # noqa: E731
        before = mean({lang: report["t2i"][lang]["1"] for lang in langs})
        by_kind = rr["queries"]["p@5_by_granularity"]
        cells = [f"`{name}`", f"`{r['init']}`", f"{before:.1f} -> {mean(rr['t2i_r1']):.1f}",
                 f"{report['queries']['mean']['p@5']:.3f} -> {rr['queries']['mean']:.3f}"]
        for _, grans in KINDS:
            vals = [by_kind[g] for g in grans if g in by_kind]
            cells.append(f"{sum(vals) / len(vals):.2f}" if vals else "-")
        cells += [f"{rr['mrv_t2i']:.3f}", f"{r['train_seconds'] / 60:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--levers", nargs="*", default=list(LEVERS), choices=list(LEVERS))
    p.add_argument("--out", type=Path, default=Path("runs/binding"))
    p.add_argument("--report", type=Path, default=Path("docs/analysis/binding.md"))
    p.add_argument("--steps", type=int, default=BUDGET["steps"], help="optimizer steps of every lever's run")
    p.add_argument("--results", type=Path, default=RESULTS, help="what finished runs measured (kept in git)")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--rerank", nargs="*", choices=list(RERANK_LEVERS), default=None,
                   help="train these re-ranker levers (the fusion stage) instead, on --init-lever's model")
    p.add_argument("--init-lever", default="hard-negatives", choices=list(LEVERS),
                   help="the dual-encoder lever (at --init-steps) the re-ranker levers start from")
    p.add_argument("--init-steps", type=int, default=1500)
    a = p.parse_args(argv)
    if a.rerank is not None and not a.report_only:
        init = a.out / f"{a.init_steps}-steps" / a.init_lever / "model"
        if not (init / "config.json").is_file():
            p.error(f"no finished dual-encoder run at {init}: "
                    f"train --levers {a.init_lever} --steps {a.init_steps} first")
        steps = a.steps if a.steps != BUDGET["steps"] else RERANK_BUDGET["steps"]
        run_rerank(a.rerank or list(RERANK_LEVERS), a.out / f"rerank-{steps}-steps", init, a.init_lever, steps,
                   a.results)
    elif not a.report_only:
        run(a.levers, a.out / f"{a.steps}-steps", a.steps, a.results)
    print(write_report(a.out, a.report, a.results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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
}

KINDS = [  # the typed-query granularities, grouped as the table reads
    ("colour + shape", ["colour_shape"]),
    ("size + colour + shape", ["size_colour_shape"]),
    ("colour + shape + background", ["colour_shape_background"]),
    ("shape + position", ["shape_position"]),
    ("colour + shape + position", ["colour_shape_position", "size_colour_shape_position"]),
    ("count", ["count_shape", "count_colour_shape"]),
    ("shape / background alone", ["shape", "background", "size_shape"]),
]


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


def run(names: list[str], out: Path, steps: int) -> None:
    for name in names:
        if (out / name / "summary.json").is_file():
            print(f"[{name}] done already: {out / name / 'summary.json'}")
            continue
        print(f"[{name}] {LEVERS[name][0]}", flush=True)
        start = time.time()
        summary = train(lever_config(name, out, steps))
        print(f"[{name}] {summary['steps']} steps in {time.time() - start:.0f} s", flush=True)


def row(name: str, out: Path) -> list[str] | None:
    path = out / name / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
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


def budgets(out: Path) -> list[int]:
    """The step budgets there are runs of (``out/<steps>-steps/<lever>``)."""
    return sorted(int(p.name.split("-")[0]) for p in out.glob("*-steps") if p.name.split("-")[0].isdigit())


def write_report(out: Path, path: Path) -> str:
    header = (["lever"] + [k for k, _ in KINDS]
              + ["P@5 mean", "top-5 overlap", "IR R@1 mean (min-max)", "MRV (t2i)", "train min"])
    lines = [
        "# Binding levers: the same budget each, measured on the validation split",
        "",
        "Written by `python train/binding_levers.py` from the runs in `runs/binding/` (rerun it to",
        "regenerate). Each lever trains the default recipe (`--config default`: resnet10t at 64 px,",
        "locked e5-small text tower, 1-to-K loss, 10 languages) with the same budget:",
        f"the steps named above each table, batches of 64 images, on a {BUDGET['train_scenes']}-scene",
        "shapes world (seed 0; a twins run has its twins beside those scenes), then one evaluation",
        f"on the **validation** split: {BUDGET['val_scenes']} scenes x 10 languages (full captions,",
        f"one gold image each) and {BUDGET['val_queries']} typed queries over them. The test splits are",
        "not used here. Precision@5 per kind of typed query is the mean over the 10 languages; IR R@1",
        "is text-to-image over the full captions; one seed per lever. \"train min\" is the training",
        "loop's time on the 2-core machine (caption caching and evaluation not counted), as shared",
        "with whatever else ran at the time: compare it roughly.",
    ]
    for steps in budgets(out):
        rows = [r for r in (row(n, out / f"{steps}-steps") for n in LEVERS) if r is not None]
        lines += ["", f"## {steps} optimizer steps", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "What each lever changes:", ""]
    lines += [f"- `{n}`: {about} (`{' '.join(o) or 'no overrides'}`)" for n, (about, _, o) in LEVERS.items()]
    text = "\n".join(lines) + "\n"
    atomic_write_text(path, text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--levers", nargs="*", default=list(LEVERS), choices=list(LEVERS))
    p.add_argument("--out", type=Path, default=Path("runs/binding"))
    p.add_argument("--report", type=Path, default=Path("docs/analysis/binding.md"))
    p.add_argument("--steps", type=int, default=BUDGET["steps"], help="optimizer steps of every lever's run")
    p.add_argument("--report-only", action="store_true")
    a = p.parse_args(argv)
    if not a.report_only:
        run(a.levers, a.out / f"{a.steps}-steps", a.steps)
    print(write_report(a.out, a.report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

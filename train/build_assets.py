"""Rebuild the embedded default (assets/) from nothing, one resumable step at a time.

Why: the app ships three models trained by this repository's own recipe (the 1-to-K default,
its 1-to-1 baseline with the same recipe and budget, and the whole CCRK model with its fusion
encoder), their galleries and evaluation reports. This script is the one place that says how
they are made, in order; a step whose output exists is skipped, so a killed build resumes.

    python train/build_assets.py --dry-run       # the commands, in order, and which are done
    python train/build_assets.py                 # run what is missing, under runs/
    python train/build_assets.py --install       # then replace assets/ items with the new ones

Steps: the default run (data, caption cache, training; `--config default`), the 1-to-1
baseline (`train.loss=one_to_one`, same data and budget), the fusion stage on the default
(`--config default-ccrk`), its re-rank weight chosen on the **validation** split
(`ccr_demo.eval.calibrate`), the evaluation reports on the test split, and the galleries.
Nothing here is tuned on the test split. --install swaps each item into assets/ (the old one
is removed only after the new one is in place), then recomputes the app's "no good match"
thresholds for the installed models (assets/no_match.json).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

RUNS = Path("runs")
DATA = RUNS / "data" / "shapes-queries"  # default.yaml's data.generate.out
LAUNCH = ["accelerate", "launch", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
          "--dynamo_backend", "no", "train/pretrain.py"]
GALLERY = [sys.executable, "-m", "ccr_demo.gallery", "build", "--iglue", str(DATA / "test"), "--batch-size", "128"]
EVAL = [sys.executable, "-m", "ccr_demo.eval", "--data", str(DATA / "test"), "--queries", str(DATA / "test_queries"),
        "--cached-text-features"]


@dataclass
class Step:
    name: str
    command: list[str]
    done_when: Path  # the file the step writes last

    def done(self) -> bool:
        return self.done_when.is_file()


def steps(out: Path = RUNS / "assets") -> list[Step]:
    ccrk = RUNS / "default-ccrk" / "model"
    return [
        Step("default (1-to-K)", [*LAUNCH, "--config", "default"], RUNS / "default" / "summary.json"),
        Step("baseline (1-to-1)", [*LAUNCH, "--config", "default", "train.loss=one_to_one",
                                   f"train.output_dir={RUNS / 'default-1to1'}",
                                   "train.model_name=ccr-demo shapes 1-to-1 baseline (e5-small + resnet10t)"],
             RUNS / "default-1to1" / "summary.json"),
        Step("fusion stage (CCRK)", [*LAUNCH, "--config", "default-ccrk"], RUNS / "default-ccrk" / "summary.json"),
        Step("re-rank weight on validation",
             [sys.executable, "-m", "ccr_demo.eval", "--model", str(ccrk), "--data", str(DATA / "val"),
              "--queries", str(DATA / "val_queries"), "--cached-text-features", "--rerank-k", "16",
              "--out", str(RUNS / "default-ccrk" / "val_report.json")], RUNS / "default-ccrk" / "val_report.json"),
        Step("write the weight", [sys.executable, "-m", "ccr_demo.eval.calibrate", "--model", str(ccrk), "--report",
                                  str(RUNS / "default-ccrk" / "val_report.json"), "--write"],
             RUNS / "default-ccrk" / "calibrated"),
        *(Step(f"evaluate {name}", [*EVAL, "--model", str(RUNS / run / "model"), *extra, "--out",
                                    str(out / report)], out / report)
          for name, run, report, extra in (("default", "default", "eval_report.json", ["--keep-ranks"]),
                                           ("baseline", "default-1to1", "eval_report-1to1.json", ["--keep-ranks"]),
                                           ("CCRK", "default-ccrk", "eval_report-ccrk.json", ["--rerank-k", "16"]))),
        Step("gallery default (+ captions)", [*GALLERY, "--model", str(RUNS / "default" / "model"), "--out",
                                              str(out / "gallery"), "--captions", "--captions-out",
                                              str(out / "gallery-captions")], out / "gallery-captions" / "gallery.json"),
        Step("gallery baseline", [*GALLERY, "--model", str(RUNS / "default-1to1" / "model"), "--out",
                                  str(out / "gallery-1to1")], out / "gallery-1to1" / "gallery.json"),
        Step("gallery CCRK", [*GALLERY, "--model", str(ccrk), "--out", str(out / "gallery-ccrk")],
             out / "gallery-ccrk" / "gallery.json"),
    ]


NO_MATCH = [sys.executable, "-m", "ccr_demo.ui.calibration", "--assets"]

# assets/ item <- what the build made
INSTALL = {"model": RUNS / "default" / "model", "model-1to1": RUNS / "default-1to1" / "model",
           "model-ccrk": RUNS / "default-ccrk" / "model", "shapes_test": DATA / "test",
           "test_queries": DATA / "test_queries"}


def install_items(out: Path) -> dict[str, Path]:
    items = dict(INSTALL)
    for name in ("gallery", "gallery-captions", "gallery-1to1", "gallery-ccrk", "eval_report.json",
                 "eval_report-1to1.json", "eval_report-ccrk.json"):
        items[name] = out / name
    return items


def install(assets: Path, items: dict[str, Path]) -> None:
    """Each item copied beside its old self, then swapped in; the old one removed last."""
    missing = [str(src) for src in items.values() if not src.exists()]
    if missing:
        raise SystemExit(f"build_assets: not built yet: {', '.join(missing)}")
    for name, src in items.items():
        target, staged, old = assets / name, assets / f".{name}.new", assets / f".{name}.old"
        for leftover in (staged, old):
            if leftover.is_dir():
                shutil.rmtree(leftover)
            elif leftover.exists():
                leftover.unlink()
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, staged)
        if target.exists():
            target.rename(old)
        staged.rename(target)
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
        print(f"installed {target} <- {src}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="print the steps and which are done; run nothing")
    p.add_argument("--out", type=Path, default=RUNS / "assets", help="where galleries and reports are made")
    p.add_argument("--install", action="store_true", help="after the steps, replace the items in --assets")
    p.add_argument("--assets", type=Path, default=Path("assets"))
    a = p.parse_args(argv)
    for step in steps(a.out):
        state = "done" if step.done() else "to do"
        print(f"[{state}] {step.name}: {shlex.join(step.command)}", flush=True)
        if a.dry_run or step.done():
            continue
        step.done_when.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(step.command, check=True)
        if step.name == "write the weight":
            step.done_when.write_text("model.fusion.rerank_itc_weight written by ccr_demo.eval.calibrate\n")
    if a.install and not a.dry_run:
        install(a.assets, install_items(a.out))
        # the app's "no good match" threshold belongs to the installed models (keyed by fingerprint)
        subprocess.run(NO_MATCH + [str(a.assets)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

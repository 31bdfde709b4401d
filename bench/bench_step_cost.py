"""What a training step of each ablation method costs, for reading the ablation at equal wall clock.

The ablation (docs/analysis/ablation.md) matches 1-to-K against 1-to-1 at equal steps and at equal
caption-image pairs (1-to-1 given K x the steps). Equal wall clock lies between the two and
depends on the regime: with a locked, cached text tower a 1-to-K step adds only K x the text
rows to the loss (the image tower dominates), while with a trained text tower it runs the
tower over K x the captions. This bench measures it: each method's run config from the
full plan (``ccr_demo.training.ablation.plan.run_config``: the same recipe, data and official details),
trained for ``--steps`` steps through ``ccr_demo.training.loop.train`` with evaluation off, methods
alternating, ``--repeats`` rounds. train() times its whole loop, so the first steps' warm-up
is included. Seconds per step are medians over the rounds; ratios are to 1-to-K's median from
the same run.

Run: python bench/bench_step_cost.py [--steps 24] [--repeats 2] [--out docs/bench/bench_step_cost.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _machine import machine  # noqa: E402

METHODS = ["one_to_k", "one_to_one", "pivot"]


def step_seconds(spec, steps: int, out: Path) -> float:
    """Seconds per step of ``steps`` steps of the run ``spec`` (no evaluation, no tracker)."""
    from ccr_demo.training.ablation.plan import run_config
    from ccr_demo.training.loop import train

    cfg = run_config(spec, out)
    cfg.train.max_steps = steps
    cfg.train.log_with = "none"
    cfg.train.save_every_steps = 0
    cfg.data.eval, cfg.data.eval_queries = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = train(cfg)
    return summary["train_seconds"] / summary["steps"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--regimes", default="locked,scratch")
    parser.add_argument("--out", default="docs/bench/bench_step_cost.md")
    args = parser.parse_args(argv)

    from ccr_demo.training.ablation.plan import METHODS as LABELS
    from ccr_demo.training.ablation.plan import load_plan, plan_runs

    plan = load_plan("full")
    regimes = [r for r in args.regimes.split(",") if r]
    specs = {(s.regime, s.method): s for s in plan_runs(plan) if s.part == "methods" and s.seed == 0}
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for regime in regimes:
                for method in METHODS:
                    s = step_seconds(specs[(regime, method)], args.steps, Path(tmp) / f"r{r}")
                    times.setdefault((regime, method), []).append(s)
                    print(f"{regime} {method} round {r}: {s:.3f} s/step", flush=True)
    k = len(plan["languages"])
    lines = [
        "# Benchmark: seconds per training step of each ablation method",
        "",
        f"Produced by `bench/bench_step_cost.py` ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC): each method's "
        f"run config from the full ablation plan (seed 0), {args.steps} steps through `ccr_demo.training.loop.train` with "
        f"evaluation off, methods alternating, {args.repeats} rounds; median s/step. Machine: {machine()}. Load "
        f"average before: {load_before}; after: {', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores: the "
        "ablation's own runs may have shared them; the ratios come from one run, alternating).",
        "",
        f"K = {k}. *1-to-1, K x pairs* trains {k} x the steps of 1-to-1, so its wall clock is {k} x 1-to-1's "
        "per-step cost times the steps; *steps 1-to-1 gets in 1-to-K's time* = 1-to-K s/step / 1-to-1 s/step.",
        "",
        "| regime | method | s/step (rounds) | median | vs 1-to-K | steps 1-to-1 gets in 1-to-K's time |",
        "|---|---|---|---|---|---|",
    ]
    for regime in regimes:
        base = statistics.median(times[(regime, "one_to_k")])
        for method in METHODS:
            t = times[(regime, method)]
            m = statistics.median(t)
            gets = f"{base / m:.2f} x" if method == "one_to_one" else ""
            lines.append(f"| {regime} | {LABELS[method][0]} | {', '.join(f'{x:.3f}' for x in t)} | {m:.3f} | "
                         f"{m / base:.2f} x | {gets} |")
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from ccr_demo.utils.fileio import atomic_write_bytes

    atomic_write_bytes(out, text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

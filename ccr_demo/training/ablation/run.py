"""The paper's ablation as one command: 1-to-K against its baselines, over seeds, with the table.

    ccr-ablation --plan quick|full|PLAN.yaml [--out DIR] [--report docs/analysis/ablation.md]
    python -m ccr_demo.training.ablation ...  (the same)

A plan (shipped: ``quick``, ``full``; or any plan YAML) names the regimes (a base training config each: a
locked, cached text tower; towers trained from scratch), the methods, the seeds, and the extra
parts: the K ablation (``train.caption_num`` k of K languages per image per step) and training
on machine-translation-noisy captions. Every run is an ordinary ``ccr_demo.training.loop.train`` in
its own folder under ``--out``; a finished run (its summary.json) is never trained again and an
unfinished one resumes from its last checkpoint, so a killed ablation restarts where it
stopped. Several drivers may share one ``--out`` (a run is claimed by an exclusive lock on a
file in its folder, released when its driver exits or dies), e.g. one per core. The report
(tables and plots of the mean and spread over seeds) is written from whatever runs are finished
and says which are missing.

Fairness is explicit: "1-to-1" sees one caption per image per step, "1-to-K" K of them;
"1-to-1, K x pairs" trains K times the steps, so it sees as many caption-image pairs as 1-to-K.
Each row reports its steps, caption-image pairs seen and seconds per step (noisy: the runs share
the cores; bench/bench_step_cost.py measures the methods' costs side by side).

This module runs the plan (claiming, resuming) and is the command; the plan and each run's
config live in `ccr_demo.training.ablation.plan`, the tables and plots in
`ccr_demo.training.ablation.report`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from ccr_demo.training.ablation.plan import check_unchanged, load_plan, plan_runs, run_config
from ccr_demo.training.ablation.report import write_report
from ccr_demo.utils.config import ConfigError

# --------------------------------------------------------------------------- running
LOCK_FILE = ".ablation.lock"


def claim(folder: Path) -> FileLock | None:
    """Lock the run for this driver: an exclusive `filelock.FileLock` on its lock file (an OS
    lock, ``flock`` on Unix), held while it trains and released when the driver exits or dies, so
    a crashed driver leaves no stale lock and two drivers restarting together cannot both take
    one over. Returns the held lock (``.release()`` it), or None when another driver holds the
    run. The lock file names the holder's process id, for a person looking."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    with open(folder / LOCK_FILE, "w", encoding="utf-8") as f:  # the file stays: its inode is the lock
        f.write(str(os.getpid()))
    return lock


def run_all(plan: dict, out: Path, max_runs: int = 0, log=print) -> dict:
    """Train every unfinished run of the plan (resuming where one stopped); returns counts."""
    from ccr_demo.training.checkpoints import latest_checkpoint
    from ccr_demo.training.loop import release_processes, train

    done = trained = skipped = 0
    for spec in plan_runs(plan):
        folder = out / spec.name
        if (folder / "summary.json").is_file():
            done += 1
            continue
        if max_runs and trained >= max_runs:
            break
        lock = claim(folder)
        if lock is None:
            skipped += 1
            continue
        try:
            if (folder / "summary.json").is_file():  # another driver finished it in the meantime
                done += 1
                continue
            cfg = run_config(spec, out)
            resume = latest_checkpoint(cfg) is not None
            log(f"[ablation] {spec.name}: {'resuming' if resume else 'training'}")
            start = time.perf_counter()
            train(cfg, resume=resume)
            release_processes()
            log(f"[ablation] {spec.name}: done in {time.perf_counter() - start:.0f} s")
            trained += 1
        finally:
            lock.release()  # the file stays: unlinking it could let two drivers lock two different files
    return {"finished_before": done, "trained": trained, "claimed_by_others": skipped,
            "planned": len(plan_runs(plan))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default="quick", help="a shipped plan (quick, full) or a plan YAML")
    parser.add_argument("--out", default="", help="run folders (default: runs/ablation-<plan>)")
    parser.add_argument("--report", default="", help="the markdown report (default: <out>/ablation.md)")
    parser.add_argument("--max-runs", type=int, default=0, help="train at most this many runs now (0 = all)")
    parser.add_argument("--report-only", action="store_true", help="write the report from the finished runs")
    args = parser.parse_args(argv)
    try:
        plan = load_plan(args.plan)
        plan["name"] = args.plan
        out = Path(args.out or f"runs/ablation-{Path(args.plan).stem}")
        report = Path(args.report) if args.report else out / "ablation.md"
        for spec in plan_runs(plan):  # every run's config is checked before the first one trains
            run_config(spec, out)
            check_unchanged(spec, out)
        if not args.report_only:
            print(json.dumps(run_all(plan, out, args.max_runs)))
        print(json.dumps(write_report(plan, out, report)), f"-> {report}")
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

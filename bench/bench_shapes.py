"""Benchmark the shapes world generator: wall time for N scenes (PNGs + 10 captions each).

The target is 10,000 scenes in under 60 s on the 2-core CI machine. Prints a Markdown
table; docs/bench/bench_shapes.md quotes it.

    python bench/bench_shapes.py --scenes 10000 --workers 1,2
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from ccr_demo import LANGUAGES
from ccr_demo.data.shapes import generate_dataset


def _size_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", type=int, default=10000, help="scenes in all (90%% train, 10%% test)")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts to time")
    p.add_argument("--size", type=int, default=128)
    a = p.parse_args()
    n_test = a.scenes // 10
    n_train = a.scenes - n_test
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; {a.scenes} scenes at {a.size} px, {len(LANGUAGES)} languages")
    print()
    print("| workers | scenes | seconds | scenes/s | output MB |")
    print("|--------:|-------:|--------:|---------:|----------:|")
    for workers in (int(w) for w in a.workers.split(",")):
        tmp = Path(tempfile.mkdtemp(prefix="bench_shapes."))
        try:
            t0 = time.perf_counter()
            out = generate_dataset(tmp / "out", n_train, 0, n_test, 0, image_size=a.size, seed=0,
                                   workers=workers, progress=False)
            seconds = time.perf_counter() - t0
            print(f"| {workers} | {a.scenes} | {seconds:.1f} | {a.scenes / seconds:.0f} | {_size_mb(out):.1f} |",
                  flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

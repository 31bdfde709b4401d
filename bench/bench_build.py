"""Benchmark building an image gallery: images/s of `python -m ccr_demo.index build` with the
default model (its image tower), over batch sizes, decode threads and 1 vs 2 processes.

Every configuration runs the real command in a subprocess (2 processes: `torch.distributed.run
--standalone --nproc-per-node 2`, what `accelerate launch` runs), each process with cores /
processes threads (--threads). images/s is the build record's (gallery.json "build": images encoded / the
seconds from the first to the last process's end of encoding, merge and index excluded); wall
is the whole command (imports, model load, merge, save). Images: the first --count files of
the shapes test set (repeated when more are asked for), linked into a temporary folder.

    python bench/bench_build.py --count 1000 --out docs/bench_build.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _images(src: Path, count: int, dest: Path) -> Path:
    files = sorted(p for p in src.iterdir() if p.is_file())
    if not files:
        raise SystemExit(f"{src}: no images")
    dest.mkdir(parents=True)
    for i, f in zip(range(count), itertools.cycle(files)):
        (dest / f"{i:07d}{f.suffix}").symlink_to(f.resolve())
    return dest


def _run(model: str, images: Path, out: Path, processes: int, threads: int, batch: int, workers: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    launch = [sys.executable] if processes == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                      "--standalone", "--nproc-per-node", str(processes)]
    cmd = [*launch, "-m", "ccr_demo.index", "build", "--model", model, "--images", str(images), "--out", str(out),
           "--batch-size", str(batch), "--workers", str(workers), "--cpu"]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{run.stderr[-3000:]}")
    info = json.loads((out / "gallery.json").read_text())
    return {"threads": threads, "wall": wall, "build": info["build"], "vectors_sha256": info["sha256"]["vectors.npy"]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / "assets" / "model"))
    p.add_argument("--images", default=str(ROOT / "assets" / "shapes_test" / "images"))
    p.add_argument("--count", type=int, default=1000, help="images per build")
    p.add_argument("--batch-sizes", default="16,64,256")
    p.add_argument("--workers", default="0,2", help="decode threads to time")
    p.add_argument("--processes", default="1,2")
    p.add_argument("--threads", default="auto",
                   help="threads per process to time, comma-separated; auto = cores / processes")
    p.add_argument("--out", help="write the Markdown report here (default: print it)")
    a = p.parse_args(argv)
    batches = [int(b) for b in a.batch_sizes.split(",")]
    workers = [int(w) for w in a.workers.split(",")]
    procs = [int(n) for n in a.processes.split(",")]
    command = "python bench/bench_build.py " + " ".join(argv if argv is not None else sys.argv[1:])
    model_cfg = json.loads((Path(a.model) / "config.json").read_text())["model"]
    lines = [
        "# Gallery build throughput",
        "",
        f"`{command}` (rerun it to remake this page).",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, no GPU used; "
        f"Python {platform.python_version()}. Model: `{Path(a.model).name}` (image tower "
        f"`{model_cfg['image_tower']}` at {model_cfg['image_size']} px); {a.count} PNG images "
        f"from `{Path(a.images).relative_to(ROOT) if Path(a.images).is_relative_to(ROOT) else a.images}`. "
        f"Load average when it started: {os.getloadavg()[0]:.1f}"
        + (" (above the core count: other jobs shared the cores, and the figures are pessimistic)."
           if os.getloadavg()[0] > (os.cpu_count() or 1) else "."),
        "",
        "images/s: the build record's (images encoded / seconds from the start of encoding until every process",
        "has finished its shard; merge, index and save excluded). wall: the whole command, imports and model",
        "load included. threads/process: OMP_NUM_THREADS of each process. `same vectors`: vectors.npy is",
        "byte-identical to the first 1-process build's with the same batch size ('-': that row itself, or none).",
        "",
        "| processes | threads/process | batch | decode threads | images/s | encode s | wall s | same vectors |",
        "|---:|---:|---:|---:|---:|---:|---:|:---|",
    ]
    print("\n".join(lines), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_build."))
    try:
        images = _images(Path(a.images), a.count, tmp / "images")
        reference: dict[int, str] = {}
        runs = [(n, t, batch, w) for n in procs
                for t in dict.fromkeys(max(1, (os.cpu_count() or 1) // n) if t == "auto" else int(t)
                                       for t in a.threads.split(","))
                for batch in batches for w in workers]
        for n, t, batch, w in runs:
            r = _run(a.model, images, tmp / f"g-{n}-{t}-{batch}-{w}", n, t, batch, w)
            b = r["build"]
            key = batch
            if key not in reference and n == 1:
                reference[key], same = r["vectors_sha256"], "-"
            else:
                same = "-" if key not in reference else ("yes" if reference[key] == r["vectors_sha256"] else "no")
            row = (f"| {n} | {r['threads']} | {batch} | {w} | {b['images_per_second']:.1f} | "
                   f"{b['encode_seconds']:.1f} | {r['wall']:.1f} | {same} |")
            lines.append(row)
            print(row, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.out:
        Path(a.out).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

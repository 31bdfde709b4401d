"""Benchmark building an image gallery: images/s of `python -m ccr_demo.gallery build` with the
default model (its image tower), over batch sizes, decode threads and 1 vs 2 processes.

Every configuration runs the real command in a subprocess (2 processes: `torch.distributed.run
--standalone --nproc-per-node 2`, what `accelerate launch` runs), each process with cores /
processes threads (--threads). images/s is the build record's (gallery.json "build": images encoded / the
seconds from the first to the last process's end of encoding, merge and index excluded); wall
is the whole command (imports, model load, merge, save). Images: the first --count files of
the shapes test set (repeated when more are asked for), linked into a temporary folder.

    python bench/bench_build.py --count 1000 --out docs/bench/bench_build.md

``--thumbnails 0,256`` times instead what thumbnails cost: the same images as one WIT file
(``url<TAB>base64`` lines, so no image has a file and each gets a thumbnail), built with each
thumbnail size in turn (sizes alternate, ``--repeats`` rounds, medians), 1 process; the report's
section for it is replaced in ``--out`` and the rest of the page kept.
"""

from __future__ import annotations

import argparse
import base64
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

from _report import replace_section

ROOT = Path(__file__).resolve().parents[1]
THUMBNAILS_HEADING = "## Base64 images: what thumbnails cost"


def _images(src: Path, count: int, dest: Path) -> Path:
    files = sorted(p for p in src.iterdir() if p.is_file())
    if not files:
        raise SystemExit(f"{src}: no images")
    dest.mkdir(parents=True)
    for i, f in zip(range(count), itertools.cycle(files)):
        (dest / f"{i:07d}{f.suffix}").symlink_to(f.resolve())
    return dest


def _wit_file(images: Path, dest: Path) -> Path:
    """The images as one WIT image file: ``url<TAB>base64`` a line."""
    with open(dest, "w", encoding="ascii") as f:
        for p in sorted(images.iterdir()):
            f.write(f"https://example.org/{p.name}\t{base64.b64encode(p.read_bytes()).decode('ascii')}\n")
    return dest


def _run(model: str, images: Path, out: Path, processes: int, threads: int, batch: int, workers: int,
         source: tuple[str, ...] = ()) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    launch = [sys.executable] if processes == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                      "--standalone", "--nproc-per-node", str(processes)]
    cmd = [*launch, "-m", "ccr_demo.gallery", "build", "--model", model, *(source or ("--images", str(images))),
           "--out", str(out), "--batch-size", str(batch), "--workers", str(workers), "--threads", str(threads),
           "--cpu"]
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
    p.add_argument("--thumbnails", help="time these thumbnail sizes (e.g. 0,256) on the images as base64 instead")
    p.add_argument("--repeats", type=int, default=3, help="rounds per thumbnail size (with --thumbnails)")
    a = p.parse_args(argv)
    command = "python bench/bench_build.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if a.thumbnails:
        return thumbnail_cost(a, [int(x) for x in a.thumbnails.split(",")], command)
    batches = [int(b) for b in a.batch_sizes.split(",")]
    workers = [int(w) for w in a.workers.split(",")]
    procs = [int(n) for n in a.processes.split(",")]
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
        "load included. threads/process: each process's --threads (the build sets it, whatever OMP_NUM_THREADS",
        "says). `same vectors`: vectors.npy is byte-identical to the first 1-process build's with the same batch",
        "size ('-': that row itself, or none); guaranteed for the same --threads, by chance across thread counts.",
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
        old = Path(a.out).read_text(encoding="utf-8") if Path(a.out).is_file() else ""
        kept = THUMBNAILS_HEADING + old.split(THUMBNAILS_HEADING, 1)[1] if THUMBNAILS_HEADING in old else ""
        Path(a.out).write_text("\n".join(lines) + "\n" + ("\n" + kept if kept else ""), encoding="utf-8")


def thumbnail_cost(a, sizes: list[int], command: str) -> None:
    """Build the same base64 images once per thumbnail size and round; the report section."""
    import statistics

    threads = os.cpu_count() or 1
    batch, workers = 64, 2
    tmp = Path(tempfile.mkdtemp(prefix="bench_build_thumbs."))
    runs: dict[int, list[dict]] = {size: [] for size in sizes}
    try:
        images = _images(Path(a.images), a.count, tmp / "images")
        wit = _wit_file(images, tmp / "images.tsv")
        for r in range(a.repeats):
            for size in (sizes if r % 2 == 0 else sizes[::-1]):  # alternate: load hits every size alike
                out = tmp / f"g-{size}-{r}"
                res = _run(a.model, images, out, 1, threads, batch, workers,
                           source=("--wit", str(wit), "--thumbnails", str(size)))
                res["thumb_bytes"] = sum(p.stat().st_size for p in (out / "thumbnails").rglob("*.jpg")) \
                    if (out / "thumbnails").is_dir() else 0
                runs[size].append(res)
                shutil.rmtree(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = statistics.median(r["build"]["images_per_second"] for r in runs[sizes[0]])
    lines = [THUMBNAILS_HEADING, "",
             f"`{command}` (remakes this section only). The same {a.count} images as one WIT file "
             f"(`url<TAB>base64` lines: no image has a file, so each gets a thumbnail); 1 process, {threads} threads, "
             f"batch {batch}, {workers} decode threads (which also make the thumbnails); {a.repeats} rounds, sizes "
             f"alternating; medians. Load average at the end: {os.getloadavg()[0]:.1f}.", "",
             f"| --thumbnails | images/s | vs {sizes[0]} | encode s | wall s | thumbnails on disk |",
             "|---:|---:|---:|---:|---:|---:|"]
    for size in sizes:
        rs = runs[size]
        ips = statistics.median(r["build"]["images_per_second"] for r in rs)
        lines.append(f"| {size} | {ips:.1f} | {ips / base:.2f}x | "
                     f"{statistics.median(r['build']['encode_seconds'] for r in rs):.1f} | "
                     f"{statistics.median(r['wall'] for r in rs):.1f} | "
                     f"{statistics.median(r['thumb_bytes'] for r in rs) / 2**20:.1f} MiB |")
    section = "\n".join(lines) + "\n"
    print(section)
    if a.out:
        old = Path(a.out).read_text(encoding="utf-8") if Path(a.out).is_file() else ""
        Path(a.out).write_text(replace_section(old, THUMBNAILS_HEADING, section), encoding="utf-8")


if __name__ == "__main__":
    main()

"""Galleries larger than memory: a memory-mapped float16 Flat gallery searched in 6 languages.

What it measures, per gallery size (default 1M and 10M random L2-normalised vectors, D = 256,
stored as float16 so vectors.npy is N x 512 bytes):

* creation (once; resumable, reused by later runs): the vectors are drawn chunk by chunk
  straight into an ``np.lib.format.open_memmap`` file and items.jsonl is streamed, so the
  whole gallery is never in RAM; gallery.json (with checksums) is written last, so a folder
  without it is an unfinished build that the next run continues;
* in a fresh subprocess per gallery: ``Gallery.load(dir, mmap=True)`` time with the full checks
  (streamed sha256 of both files, unit norms chunk by chunk, unique ids) and with
  ``verify=False``; then per 6-language query set (6 noisy copies, cosine ~0.7, of one gallery
  vector, as in bench_index.py) the latency of ``search_with_ranks`` (top-10 per language plus
  the exact rank of every returned item under every language: one chunked pass over the mapped
  vectors) and of ``search`` (top-10 only: a chunked pass keeping a running top-k); how often
  the planted vector comes first; and the subprocess's peak RSS (``VmHWM``: it includes the
  mapped file pages resident at any moment, which the pass releases chunk by chunk. Not
  ``ru_maxrss``: Linux folds the forked parent's high-water mark into the child's at exec, so
  right after this script created a gallery it reported the creating process's ~5.8 GB).

Run (the lead's full measurement; ~6 GB of disk under --dir, creation ~5-10 min, then ~10 min):
    python bench/bench_mmap.py --sizes 1000000,10000000 --dir /tmp/ccr_mmap_bench --out docs/bench/bench_mmap.md
Small check: python bench/bench_mmap.py --sizes 200000 --reps 3 --out /tmp/bench_mmap_small.md
"""

from __future__ import annotations

import os

# see bench_index.py: torch's and faiss's OpenMP pools must not spin against each other
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from ccr_demo.gallery.gallery import Gallery
from ccr_demo.gallery.storage import INFO_NAME, ITEMS_NAME, VECTORS_NAME
from ccr_demo.utils.hashing import file_sha256

LANGS = ["en", "de", "fr", "cs", "zh", "ja"]
K = 10
WRITE_ROWS = 1 << 18  # rows drawn per creation chunk: 256 MB of float32 at D = 256


def create(folder: Path, n: int, dim: int) -> float:
    """Write a float16 Flat gallery of n random unit vectors into folder (resumable) -> seconds spent."""
    if (folder / INFO_NAME).is_file() and Gallery.read_info(folder)["count"] == n:
        return 0.0
    t = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    progress = folder / "progress.json"
    done = json.loads(progress.read_text())["rows"] if progress.is_file() else 0
    path = folder / VECTORS_NAME
    vectors = (np.load(path, mmap_mode="r+") if done else
               np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, dim)))
    for start in range(done, n, WRITE_ROWS):
        rows = min(WRITE_ROWS, n - start)
        x = np.random.default_rng(start).standard_normal((rows, dim), dtype=np.float32)  # seeded per chunk
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        vectors[start:start + rows] = x
        vectors.flush()
        progress.write_text(json.dumps({"rows": start + rows}))
        print(f"  {folder.name}: {start + rows:,} / {n:,} rows", file=sys.stderr, flush=True)
    del vectors
    with open(folder / ITEMS_NAME, "w", encoding="utf-8") as f:
        for start in range(0, n, 1 << 16):
            f.write("".join(f'{{"id": "i{i:09d}"}}\n' for i in range(start, min(n, start + (1 << 16)))))
    # gallery.json as Gallery.save writes it, taken from a one-row gallery of the same kind
    info = Gallery.from_vectors(np.ones((1, dim), np.float32), vectors_dtype="float16").info()
    info.update(count=n, sha256={name: file_sha256(folder / name) for name in (VECTORS_NAME, ITEMS_NAME)})
    (folder / (INFO_NAME + ".tmp")).write_text(json.dumps(info, indent=2) + "\n")
    os.replace(folder / (INFO_NAME + ".tmp"), folder / INFO_NAME)  # last: the gallery is complete
    progress.unlink()
    return time.perf_counter() - t


def queries(vectors: np.ndarray, reps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """reps query sets of 6 noisy copies (cosine ~0.7) of a random gallery row -> ([reps, 6, D], rows)."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(vectors), reps)
    base = np.asarray(vectors[rows], np.float32)[:, None, :]
    noise = rng.standard_normal((reps, len(LANGS), vectors.shape[1])).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=-1, keepdims=True)
    q = 0.7 * base + 0.714 * noise
    return q / np.linalg.norm(q, axis=-1, keepdims=True), rows


def measure(folder: Path, reps: int) -> dict:
    """Runs in a fresh subprocess: load times, search latencies, planted@1, peak RSS."""
    t = time.perf_counter()
    g = Gallery.load(folder, mmap=True)
    load_verified = time.perf_counter() - t
    t = time.perf_counter()
    Gallery.load(folder, mmap=True, verify=False)
    load_unverified = time.perf_counter() - t
    q, planted = queries(g.vectors, reps + 1)
    ranks_ms, search_ms, first = [], [], []
    for i in range(reps + 1):  # query set 0 warms up
        t = time.perf_counter()
        res = g.search_with_ranks(q[i], K, LANGS)
        ranks_ms.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        g.search(q[i], K)
        search_ms.append((time.perf_counter() - t) * 1e3)
        first.append(float((res.positions[:, 0] == planted[i]).mean()))
        assert res.item_ranks is not None and (res.item_ranks[res.positions[:, :1] == res.items[None]] == 0).all()
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {
        "count": g.count, "dim": g.embed_dim, "dtype": g.vectors_dtype,
        "file_gb": (folder / VECTORS_NAME).stat().st_size / 1e9,
        "load_s": load_verified, "load_noverify_s": load_unverified,
        "ranks_ms": [float(np.percentile(ranks_ms[1:], p)) for p in (50, 95)],
        "search_ms": [float(np.percentile(search_ms[1:], p)) for p in (50, 95)],
        "planted_at_1": float(np.mean(first[1:])), "reps": reps,
        "peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024,  # this process's own peak (see the docstring)
        "rss_end": {k: status.get(k, "").strip() for k in ("VmRSS", "RssAnon", "RssFile")},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1000000,10000000", help="comma-separated gallery sizes")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--reps", type=int, default=10, help="query sets measured per gallery (after one warm-up)")
    p.add_argument("--dir", default="/tmp/ccr_mmap_bench", help="where the galleries are created (and kept)")
    p.add_argument("--out", help="markdown report to write (e.g. docs/bench/bench_mmap.md)")
    p.add_argument("--measure", help=argparse.SUPPRESS)  # internal: the fresh subprocess
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.reps)))
        return 0
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        folder = Path(args.dir) / f"flat-float16-{n}x{args.dim}"
        made = create(folder, n, args.dim)
        proc = subprocess.run([sys.executable, __file__, "--measure", str(folder), "--reps", str(args.reps)],
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["created_s"] = made
        rows.append(r)
        print(json.dumps(r), flush=True)
    import faiss
    import torch

    table = ["| items | vectors.npy | load (checked) | load (verify=False) | 6 languages, top-10 + exact ranks "
             "p50 / p95 | top-10 only p50 / p95 | planted@1 | peak RSS |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['count']:,} x {r['dim']} | {r['file_gb']:.2f} GB {r['dtype']} | {r['load_s']:.1f} s | "
                     f"{r['load_noverify_s']:.1f} s | {r['ranks_ms'][0]:.0f} / {r['ranks_ms'][1]:.0f} ms | "
                     f"{r['search_ms'][0]:.0f} / {r['search_ms'][1]:.0f} ms | {r['planted_at_1']:.3f} | "
                     f"{r['peak_rss_mb']:.0f} MB |")
    cmd = "python bench/bench_mmap.py " + " ".join(a for a in sys.argv[1:])
    lines = [
        "# Galleries larger than memory: memory-mapped float16 Flat galleries",
        "",
        f"Produced by `{cmd}` on {datetime.now(timezone.utc):%Y-%m-%d}, "
        f"{(time.perf_counter() - started) / 60:.1f} min (gallery creation included where it ran).",
        f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, Python "
        f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), faiss "
        f"{faiss.__version__}, numpy {np.__version__}. Load average before / after: {load_before:.1f} / "
        f"{os.getloadavg()[0]:.1f}.",
        "",
        "Random L2-normalised vectors stored as float16, index `Flat`, loaded with "
        "`Gallery.load(dir, mmap=True)` in a fresh process per gallery. Each query set is 6 noisy copies "
        "(cosine ~0.7) of one gallery vector, like one caption in 6 languages; the embeddings are given, "
        "so text encoding (~90 ms for e5-small, docs/bench/bench_index.md) is not included. "
        f"Latency over {rows[0]['reps'] if rows else 0} query sets after one warm-up. "
        "*top-10 + exact ranks*: `search_with_ranks`, one chunked pass over the mapped vectors (rows upcast "
        "to float32 2**16 at a time, pages released after each chunk) holding the [6, N] float32 scores. "
        "*top-10 only*: `search`, a chunked pass keeping a running top-10. *Peak RSS*: `VmHWM` of the "
        "measuring process (loads and searches), mapped file pages included.",
        "",
        *table,
        "",
        "- The files were in the OS page cache (they had just been written or read), so load and search "
        "times are those of a warm cache; from a cold disk each pass reads vectors.npy once.",
        "- *load (checked)* streams both files through sha256 and the vectors through the unit-norm "
        "check, and parses every items.jsonl line (unique ids, paths); *verify=False* only indexes the "
        "lines (records are then checked when read).",
        "- RSS at the end of each run (VmRSS / RssAnon / RssFile): "
        + "; ".join(f"{r['count']:,}: {r['rss_end']['VmRSS']} / {r['rss_end']['RssAnon']} / {r['rss_end']['RssFile']}"
                    for r in rows) + ".",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

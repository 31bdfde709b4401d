"""Query latency of a 6-language text search: encoding (batched vs sequential, fp32 vs int8) and
``Gallery.search_texts`` end to end, with and without the query cache. One run, side by side.

With the default model (assets/model: multilingual-e5-small text tower, MLP projection to D=256):

* encoding the 6 queries of ``bench_index.QUERIES``: 6 sequential ``encode_texts`` calls vs one
  batched call, for the fp32 tower and each int8 recipe (``ccr_demo.model.query_encoder``); plus the
  tokenizer alone (6 calls vs 1), to show how much of a call is not the tower;
* ``search_texts`` end to end (fingerprint check, one batched encode, one exact pass over the
  gallery with exact ranks) on a Flat gallery of random unit vectors (``--items``, default
  100,000) built with the model's fingerprint: the model itself (today's path), a
  ``QueryEncoder`` fp32 and int8 without cache, and a cached ``QueryEncoder`` asked the same
  query again (a repeated query: no tower pass); and, to show where a cached query's time goes,
  ``search_with_ranks`` alone given the embeddings and the per-call model check alone
  (``weights_fingerprint``: cached, but it walks ``model.state_dict()`` to see that no tensor changed).

Every variant of a table runs interleaved (order flipped every repetition, ``bench_index.timed``)
so load from other processes hits all alike; ratios are of p50s from the same run. Whether an
int8 recipe is accurate enough is docs/analysis/int8_validation.md (``bench/validate_int8.py``).

Run: python bench/bench_latency.py --out docs/bench/bench_latency.md   (a few minutes on 2 cores)
Quick check: python bench/bench_latency.py --items 2000 --reps 3
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # why: bench/bench_index.py

import argparse  # noqa: E402
import sys  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_index import QUERIES, K, fmt, machine, timed, unit  # noqa: E402  (the script's own folder)

from ccr_demo.gallery.gallery import Gallery
from ccr_demo.model.fingerprint import weights_fingerprint
from ccr_demo.model.modeling import CCRModel
from ccr_demo.model.query_encoder import INT8_RECIPES, QueryEncoder
from ccr_demo.utils.fileio import atomic_write_text

TEXTS = list(QUERIES.values())


def ratio(slow: tuple[float, float], fast: tuple[float, float]) -> str:
    return f"{slow[0] / fast[0]:.2f}x"


def bench_encoding(model: CCRModel, encoders: dict[str, QueryEncoder], reps: int) -> list[str]:
    fns = {"tokenize: 1 call": lambda i: model.tokenize(TEXTS),
           "tokenize: 6 calls": lambda i: [model.tokenize([t]) for t in TEXTS]}
    for name, enc in encoders.items():
        fns[f"{name}: 1 call"] = lambda i, e=enc: e.encode_texts(TEXTS)
        fns[f"{name}: 6 calls"] = lambda i, e=enc: [e.encode_texts([t]) for t in TEXTS]
    got = timed(fns, reps, warmup=2)
    rows = ["| path | batched (1 call) | sequential (6 calls) | speed-up of batching |", "|---|---|---|---|"]
    for name in ["tokenize", *encoders]:
        b, s = got[f"{name}: 1 call"], got[f"{name}: 6 calls"]
        rows.append(f"| {name} | {fmt(b)} | {fmt(s)} | {ratio(s, b)} |")
    return rows


def bench_search(model: CCRModel, encoders: dict[str, QueryEncoder], items: int, reps: int) -> tuple[list[str], dict]:
    rng = np.random.default_rng(0)
    vectors = unit(rng.standard_normal((items, model.config.embed_dim), dtype=np.float32))
    g = Gallery.from_vectors(vectors, index_factory="Flat", kind="text", fingerprint=weights_fingerprint(model))
    cached = QueryEncoder(model)
    emb = model.encode_texts(TEXTS)
    langs = list(QUERIES)
    fns = {"model (today's path)": lambda i: g.search_texts(model, QUERIES, K)}
    for name, enc in encoders.items():
        fns[f"QueryEncoder {name}, no cache"] = lambda i, e=enc: g.search_texts(e, QUERIES, K)
    fns["QueryEncoder fp32, cached (repeated query)"] = lambda i: g.search_texts(cached, QUERIES, K)
    fns["search_with_ranks only (embeddings given)"] = lambda i: g.search_with_ranks(emb, K, languages=langs)
    fns["model check only (weights_fingerprint, cached)"] = lambda i: weights_fingerprint(model)
    got = timed(fns, reps, warmup=2)
    base = got["model (today's path)"]
    rows = ["| path | p50 / p95 ms | speed-up vs the model |", "|---|---|---|"]
    rows += [f"| {name} | {fmt(t)} | {ratio(base, t)} |" for name, t in got.items()]
    return rows, {"cache": cached.cache_info()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="assets/model")
    p.add_argument("--items", type=int, default=100_000, help="gallery size (random unit vectors)")
    p.add_argument("--reps", type=int, default=30, help="timed repetitions of each variant")
    p.add_argument("--recipes", default=",".join(INT8_RECIPES), help="comma-separated int8 recipes to time")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--out", default="", help="write the markdown report here (default: print it)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    model = CCRModel.from_pretrained(args.model).eval()
    encoders = {"fp32": QueryEncoder(model, cache_size=0)}
    encoders.update({f"int8 {r}": QueryEncoder(model, int8=r, cache_size=0) for r in args.recipes.split(",") if r})
    enc_rows = bench_encoding(model, encoders, args.reps)
    print("encoding done", file=sys.stderr, flush=True)
    search_rows, info = bench_search(model, encoders, args.items, args.reps)
    lines = [
        "# Query latency: 6-language text search",
        "",
        f"Written by `python {' '.join(sys.argv)}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"Machine: {machine()}; load average at the start {load}, of which this run is at most 1 "
        "(other processes on the same cores slow every row; the interleaving keeps the ratios fair).",
        "",
        f"Model `{args.model}` (multilingual-e5-small text tower, D={model.config.embed_dim}); queries: the 6 "
        f"captions of `bench/bench_index.py` ({', '.join(QUERIES)}). p50 / p95 ms over {args.reps} repetitions "
        "of each row, all rows of a table interleaved after 2 warm-up rounds; speed-ups are ratios of p50s "
        "from the same run. int8 = `torch.ao.quantization.quantize_dynamic` of the recipe's nn.Linear "
        "layers (`ccr_demo.model.query_encoder`); their accuracy: docs/analysis/int8_validation.md.",
        "",
        "## Encoding the 6 queries: one batched call vs 6 calls",
        "",
        "`QueryEncoder.encode_texts` with its cache off (fp32 = `CCRModel.encode_texts`); *tokenize*: the "
        "fast tokenizer alone (`model.tokenize`).",
        "",
        *enc_rows,
        "",
        f"## search_texts end to end ({args.items:,}-item Flat gallery, k = {K}, exact ranks)",
        "",
        "Random unit vectors built with the model's fingerprint, so every call also checks the model. "
        f"The cached encoder answers the same 6 texts every time (cache after the run: {info['cache']}).",
        "",
        *search_rows,
    ]
    text = "\n".join(lines) + "\n"
    if args.out:
        atomic_write_text(Path(args.out), text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)


if __name__ == "__main__":
    main()

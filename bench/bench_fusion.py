"""What the fusion encoder costs: a training step with itc + itm + mlm against itc alone, and a
6-language search with ITM re-ranking of the top 16 against plain search.

1. Training step (forward + backward + AdamW), same batch, the default-ccrk architecture
   (resnet10t 64 px, e5-small locked and cached, 2-layer fusion width 256): 64 images x 10
   captions of 4-16 words. The text tower is cached in both arms, so its features and token
   states are random tensors of the real shapes (the step never runs the text tower); pixels
   are random. Arms alternate, --repeats each.
2. Search: the app's search callback on the app's model (CCR_MODEL / CCR_GALLERY, else the
   embedded default; it must have the fusion encoder, else this arm is skipped) for 6
   languages, re-ranking off vs on (k 16), alternating, --searches each; the image-memory cache
   is cleared before every re-ranked search unless --warm, so the figure includes encoding
   the 16 x 6 candidate images.

Run: python bench/bench_fusion.py [--out docs/bench/bench_fusion.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERIES = {"en": "a red circle on the left", "de": "ein roter Kreis links", "fr": "un cercle rouge à gauche",
           "cs": "červený kruh vlevo", "zh": "左边的红色圆形", "ja": "左の赤い丸"}


def _config(objectives: dict):
    from ccr_demo.training.configs import load_config

    cfg = load_config("default-ccrk", ["train.init_from=", "train.output_dir=/tmp/bench_fusion"])
    cfg.train.losses = objectives
    return cfg.validate()


def training_steps(repeats: int, batch: int) -> dict:
    from ccr_demo.training.init import build_model
    from ccr_demo.training.losses import one_to_k_loss
    from ccr_demo.training.objectives import FusionObjectives, corpus_vocabulary
    from ccr_demo.training.optim import param_groups

    full = _config({"itc": 1.0, "itm": 1.0, "mlm": 1.0})
    torch.manual_seed(0)
    model = build_model(full).train()
    K, H = len(full.languages), model.text_tower.num_features
    pixels = torch.randn(batch, 3, 64, 64)
    features = torch.randn(batch * K, H)
    words = "a small red star on the left of a big blue circle on a striped background".split()
    texts = [" ".join(words[: 3 + i % (len(words) - 3)]) + f" {i}" for i in range(batch * K)]

    class _States:  # random token states of the real shapes, looked up by string as the trainer does
        def lookup(self, rows):
            mask = model.tokenize(rows)["attention_mask"]
            return torch.randn(len(rows), mask.shape[1], H), mask

    vocab = corpus_vocabulary(model, texts)  # train.mlm_vocabulary: corpus, as default-ccrk
    objectives = FusionObjectives(full, K, _States(), vocab)
    optimizer = torch.optim.AdamW(param_groups(model, full))

    def step(with_fusion: bool) -> float:
        start = time.perf_counter()
        outputs = model(pixels, text_features=features, with_fusion_inputs=with_fusion)
        img, txt, tau = outputs[:3]
        loss = one_to_k_loss(img, txt.view(batch, K, -1), tau)
        if with_fusion:
            # token ids of the captions: the MLM path tokenizes the chosen positives
            parts = objectives(model, img, txt, tau.detach(), outputs[3], None, None, texts, texts, 0)
            loss = loss + parts["itm"] + parts["mlm"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    step(True), step(False)  # warm up both
    times = {"itc": [], "itc+itm+mlm": []}
    for _ in range(repeats):
        times["itc"].append(step(False))
        times["itc+itm+mlm"].append(step(True))
    return {k: statistics.median(v) for k, v in times.items()}


def searches(n: int, warm: bool) -> dict | None:
    from ccr_demo.ui import callbacks as cb
    from ccr_demo.ui.loading import load_app_state
    from ccr_demo.ui.rerank_view import ImageMemoryCache

    app = load_app_state(assets=ROOT / "assets")
    if not app.model.has_fusion:
        print("the embedded default has no fusion encoder: search arm skipped")
        return None
    times = {"plain": [], "re-ranked top 16": []}
    for i in range(n + 1):  # the first round warms both up and is dropped
        for name, rerank in (("plain", False), ("re-ranked top 16", True)):
            if rerank and not warm:
                app.image_memory = ImageMemoryCache(app.limits.image_memory_items, app.limits.image_memory_bytes)
            start = time.perf_counter()
            result = cb.search(app, QUERIES, k=5, rerank=rerank, rerank_k=16)
            times[name].append(time.perf_counter() - start)
            if i == 0 and not result.ok:
                raise RuntimeError(f"search failed: {result}")
    return {k: statistics.median(v[1:]) for k, v in times.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--searches", type=int, default=10)
    p.add_argument("--warm", action="store_true", help="keep the image-memory cache between searches")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    steps = training_steps(args.repeats, args.batch)
    print(steps)
    search = searches(args.searches, args.warm) if args.searches else None
    print(search)
    lines = [f"# Fusion encoder cost ({datetime.now(timezone.utc):%Y-%m-%d}, {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores, torch {torch.__version__} threads {torch.get_num_threads()})", "",
             f"`python bench/bench_fusion.py {' '.join(argv if argv is not None else sys.argv[1:])}` — medians of "
             f"{args.repeats} alternating repeats, one run.", "",
             f"Training step, {args.batch} images x 10 captions, default-ccrk architecture, text tower cached:", "",
             "| objectives | s / step |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in steps.items()]
    lines += ["", f"Ratio itc+itm+mlm / itc: **{steps['itc+itm+mlm'] / steps['itc']:.2f}x**"]
    if search:
        where = os.environ.get("CCR_MODEL", "the embedded default")
        lines += ["", f"Search, 6 languages, model {where} over a 1000-image Flat gallery, {args.searches} searches each "
                      f"({'warm' if args.warm else 'cold'} image-memory cache):", "",
                  "| search | ms |", "|---|---|"]
        lines += [f"| {k} | {1000 * v:.1f} |" for k, v in search.items()]
        lines += ["", f"Ratio re-ranked / plain: **{search['re-ranked top 16'] / search['plain']:.2f}x**"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where binding is lost: linear probes on the text features and on a trained image tower.

Why: the binding levers (train/binding_levers.py) change the training; these probes say which
side of the dual encoder keeps bound properties at all, to aim the next lever. Each probe is a
linear (logistic) classifier trained on 70% of the rows and scored on the other 30%:
- text: the locked text tower's pooled features of the training split's position queries
  ("a square on the left") -> the stated position (5 classes), per language;
- image: a trained model's image features of training images -> which shapes, positions,
  (shape, position) pairs and (colour, shape) pairs the scene holds (multi-label, F1), from the
  pooled vector and from the last feature map before pooling.
A bound pair is rarer than a shape alone, so its probe has fewer positives to learn from: read
the bound rows against each other (pooled vs map), not only against the unbound ones.

    python train/binding_probes.py --model runs/binding/1500-steps/hard-negatives/model \\
        --data runs/data/binding-hard-negatives/train --out docs/analysis/binding_probes.md
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch

from ccr_demo.data.images import load_image
from ccr_demo.model.modeling import CCRModel
from ccr_demo.model.text_cache import TextFeatureCache
from ccr_demo.utils.fileio import atomic_write_text

POSITION_KINDS = ("shape_position", "colour_shape_position")


def read_rows(folder: Path, limit: int) -> list[dict]:
    rows = []
    for part in sorted(folder.glob("part_*.data")):
        rows += [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines()]
    return rows[:limit]


def split(n: int, share: float = 0.7, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = int(n * share)
    return order[:cut], order[cut:]


def fit(x: torch.Tensor, y: torch.Tensor, multilabel: bool, l2: float = 1e-2):
    """A linear probe fitted with L-BFGS on standardised features; returns predict(x)."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xs = (x - mu) / sd
    out = y.shape[1] if multilabel else int(y.max()) + 1
    w = torch.zeros(x.shape[1], out, requires_grad=True)
    b = torch.zeros(out, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=300)
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits if multilabel else torch.nn.functional.cross_entropy

    def closure():
        opt.zero_grad()
        loss = loss_fn(xs @ w + b, y) + l2 * (w ** 2).sum() / out
        loss.backward()
        return loss

    opt.step(closure)
    return lambda z: ((z - mu) / sd) @ w.detach() + b.detach()


def f1(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    tp = (predicted & truth).sum().item()
    return 2 * tp / max(1, 2 * tp + (predicted & ~truth).sum().item() + (~predicted & truth).sum().item())


def text_probe(model: CCRModel, rows: list[dict], languages: list[str]) -> dict[str, tuple[int, float]]:
    """{language: (captions, held-out accuracy)} of position from the pooled text feature."""
    data = defaultdict(list)
    for row in rows:
        for variant in row.get("variants") or ():
            query = variant.get("query") or {}
            if variant.get("granularity") in POSITION_KINDS and "position" in query:
                for lang in languages:
                    data[lang].append((variant["caption"][lang], query["position"]))
    texts = sorted({t for items in data.values() for t, _ in items})
    cache = TextFeatureCache.build(model, texts, progress=False)
    features = dict(zip(texts, cache.lookup(texts)))
    out = {}
    for lang, items in data.items():
        labels = {p: i for i, p in enumerate(sorted({p for _, p in items}))}
        if len(items) < 20 or len(labels) < 2:  # too few to fit and score a probe
            continue
        x = torch.stack([features[t] for t, _ in items]).float()
        y = torch.tensor([labels[p] for _, p in items])
        train, test = split(len(y))
        predict = fit(x[train], y[train], multilabel=False)
        out[lang] = (len(items), float((predict(x[test]).argmax(1) == y[test]).float().mean()))
    return out


TARGETS = {
    "shape": lambda o: o["shape"],
    "position": lambda o: o["position"],
    "shape + position": lambda o: (o["shape"], o["position"]),
    "colour + shape": lambda o: (o["colour"], o["shape"]),
}


def image_probe(model: CCRModel, rows: list[dict], folder: Path) -> dict[str, dict[str, float]]:
    """{features: {target: held-out F1}} for the pooled vector and the flattened last map."""
    images = [model.image_processor(load_image(str(folder / r["image_path"]))) for r in rows]
    tower = model.image_tower.eval()
    with torch.no_grad():
        maps = torch.cat([tower.backbone.forward_features(tower.with_coords(torch.stack(images[i:i + 100])))
                          for i in range(0, len(images), 100)])
        pooled = torch.cat([tower(torch.stack(images[i:i + 100])) for i in range(0, len(images), 100)])
    train, test = split(len(rows))
    out = {}
    for name, x in (("pooled vector (what retrieval uses)", pooled),
                    (f"last feature map, flattened ({tuple(maps.shape[1:])})", maps.flatten(1))):
        out[name] = {}
        for target, key in TARGETS.items():
            keys = sorted({key(o) for r in rows for o in r["scene"]["objects"]}, key=str)
            index = {k: i for i, k in enumerate(keys)}
            y = torch.zeros(len(rows), len(keys))
            for j, r in enumerate(rows):
                for o in r["scene"]["objects"]:
                    y[j, index[key(o)]] = 1
            keep = (y[train].sum(0) >= 5) & (y[test].sum(0) >= 2)  # targets the split can learn and score
            y = y[:, keep]
            if not keep.any():
                out[name][target] = (0, float("nan"))
                continue
            predict = fit(x[train], y[train], multilabel=True)
            out[name][target] = (int(keep.sum()), f1(predict(x[test]) > 0, y[test].bool()))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a trained model folder (its image tower is probed)")
    p.add_argument("--data", required=True, help="a shapes-world training split (part_*.data with scenes)")
    p.add_argument("--rows", type=int, default=1000, help="rows probed")
    p.add_argument("--languages", default="en,de,zh,ja,ru")
    p.add_argument("--out", type=Path, default=None, help="write the tables here (markdown)")
    a = p.parse_args(argv)
    model = CCRModel.from_pretrained(a.model).eval()
    rows = read_rows(Path(a.data), a.rows)
    text = text_probe(model, rows, a.languages.split(","))
    image = image_probe(model, rows, Path(a.data))
    lines = ["# Where binding is lost: linear probes", "",
             f"Written by `python train/binding_probes.py --model {a.model} --data {a.data}` (rerun it to",
             f"regenerate); {len(rows)} training rows, 70% to fit each probe, 30% to score it.", "",
             "## Text: the locked tower's pooled feature of a position query -> its position (5 classes)", "",
             "| language | captions | held-out accuracy |", "|---|---|---|"]
    lines += [f"| {lang} | {n} | {acc:.3f} |" for lang, (n, acc) in text.items()]
    lines += ["", "## Image: the trained image tower -> what the scene holds (multi-label, held-out F1)", "",
              "| features | " + " | ".join(f"{t} (targets)" for t in TARGETS) + " |", "|---" * (len(TARGETS) + 1) + "|"]
    for name, scores in image.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f} ({n})" for n, v in scores.values()) + " |")
    text_out = "\n".join(lines) + "\n"
    print(text_out)
    if a.out:
        atomic_write_text(a.out, text_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Can a fresh fusion encoder learn ITM from what it reads? Tower outputs vs projected tokens.

Takes a trained dual encoder (stage 1, `runs/default/model` from the shipped config default),
freezes it, and trains ONLY a new 2-layer fusion encoder (width 256) with ITM on test-set
image/caption pairs, negatives drawn uniformly at random (the easiest ITM there is), once per
kind of input (`model.fusion.inputs`):
- tower: the locked e5's last hidden states and the image tower's raw feature map (official);
- projected: the same tokens through the trained projection heads (the aligned space).
Prints the ITM loss every 25 steps (chance: ln 2 = 0.693) for each arm, same seed and batches.

Run: python bench/lever_fusion_inputs.py --model runs/default/model --data assets/shapes_test
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(model_dir: str, data: str, inputs: str, steps: int, lr: float, n: int, batch: int) -> list[float]:
    from PIL import Image

    from ccr_demo.data.testset import ParallelTestSet
    from ccr_demo.model.configuration import FusionConfig
    from ccr_demo.model.fusion import FusionEncoder
    from ccr_demo.model.modeling import CCRModel

    torch.manual_seed(0)
    model = CCRModel.from_pretrained(model_dir).eval()
    ts = ParallelTestSet.from_iglue(data)
    with torch.no_grad():
        pixels = model.image_processor.batch([Image.open(ts.image_paths[i]) for i in range(n)])
        pooled, tokens = model.image_tower.forward_tokens(pixels)
        enc = model.tokenize([ts.captions["en"][ts.first_text["en"][i]] for i in range(n)])
        states, mask = model.text_states(enc["input_ids"], enc["attention_mask"]), enc["attention_mask"]
        if inputs == "projected":
            pooled, tokens = model.image_projection(pooled), model.image_projection(tokens)
            states = model.text_projection(states)
    fusion = FusionEncoder(FusionConfig(layers=2, heads=4, width=256, dropout=0.1), states.shape[-1],
                           pooled.shape[-1], tokens.shape[1], 8)
    optimizer = torch.optim.AdamW(fusion.parameters(), lr=lr)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, n, (batch,), generator=g)
        neg = (idx + torch.randint(1, n, (batch,), generator=g)) % n
        memory = fusion.image_memory(torch.cat([pooled[idx], pooled[neg]]), torch.cat([tokens[idx], tokens[neg]]))
        fused = fusion(torch.cat([states[idx], states[idx]]), torch.cat([mask[idx], mask[idx]]), memory)
        labels = torch.cat([torch.ones(batch), torch.zeros(batch)]).long()
        loss = F.cross_entropy(fusion.itm_logits(fused), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="runs/default/model")
    p.add_argument("--data", default="assets/shapes_test")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--n", type=int, default=256, help="test pairs to train on")
    p.add_argument("--batch", type=int, default=32)
    a = p.parse_args(argv)
    curves = {inputs: run(a.model, a.data, inputs, a.steps, a.lr, a.n, a.batch) for inputs in ("tower", "projected")}
    print("| step | " + " | ".join(f"ITM loss, {k} inputs" for k in curves) + " |")
    print("|---" * (len(curves) + 1) + "|")
    for s in range(0, a.steps, 25):
        window = slice(s, s + 25)
        print(f"| {s}-{min(s + 24, a.steps - 1)} | "
              + " | ".join(f"{sum(c[window]) / len(c[window]):.3f}" for c in curves.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

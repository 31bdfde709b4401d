"""train/binding_probes.py: the probes run on a small world and a tiny model and write their
tables; the probe itself separates what is separable and not what is noise."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("binding_probes", ROOT / "train" / "binding_probes.py")
probes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probes)


def test_a_linear_probe_reads_a_linear_signal_and_not_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 16, generator=g)
    y = (x[:, 3] > 0).long()
    train, test = probes.split(300)
    predict = probes.fit(x[train], y[train], multilabel=False)
    assert (predict(x[test]).argmax(1) == y[test]).float().mean() > 0.95
    noise = torch.randint(0, 2, (300,), generator=g)
    predict = probes.fit(x[train], noise[train], multilabel=False)
    assert (predict(x[test]).argmax(1) == noise[test]).float().mean() < 0.7


def test_the_script_writes_its_tables(tmp_path, monkeypatch):
    from ccr_demo.data.shapes import generate_dataset
    from ccr_demo.model.modeling import CCRModel

    monkeypatch.setenv("CCR_DEMO_CACHE", str(tmp_path / "cache"))
    world = generate_dataset(tmp_path / "w", n_train=80, n_val=0, n_test=0, n_test_compositional=0, image_size=32,
                             seed=2, workers=1, progress=False, n_test_queries=0)
    CCRModel(dict(image_tower="resnet10t", image_size=32, text_tower="random:bert", embed_dim=16, languages=["en"],
                  text_kwargs={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                               "intermediate_size": 64})).save_pretrained(tmp_path / "m")
    out = tmp_path / "probes.md"
    assert probes.main(["--model", str(tmp_path / "m"), "--data", str(world / "train"), "--languages", "en",
                        "--out", str(out)]) == 0
    text = out.read_text()
    assert "| en |" in text and "| pooled vector (what retrieval uses) |" in text and "flattened" in text

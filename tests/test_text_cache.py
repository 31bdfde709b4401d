"""The per-string text-feature store: encodes each distinct string once, resumes, reports hits."""

from __future__ import annotations

import torch

from ccr_demo.model.configuration import ModelConfig
from ccr_demo.model.modeling import CCRModel
from ccr_demo.model.text_cache import TextFeatureCache, TextFeatureStore, store_key


def _model(seed=0):
    torch.manual_seed(seed)
    return CCRModel(ModelConfig(image_tower="test_efficientnet", image_size=32, text_tower="random:bert",
                                text_kwargs={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                             "intermediate_size": 64}, embed_dim=16)).eval()


def test_features_equal_the_tower_and_only_new_strings_are_encoded(tmp_path, monkeypatch):
    model = _model()
    store = TextFeatureStore(tmp_path / "store")
    calls = []
    real = model.text_features
    monkeypatch.setattr(model, "text_features", lambda ids, mask: calls.append(len(ids)) or real(ids, mask))
    first = ["a red star", "ein roter Stern", "a red star", "红色的五角星"]
    cache = TextFeatureCache.build(model, first, store=store, batch_size=2, progress=False)
    assert cache.stats.as_dict() == {"occurrences": 4, "unique": 3, "already_stored": 0, "encoded": 3,
                                     "hit_rate": 0.25}
    assert sum(calls) == 3
    with torch.inference_mode():
        enc = model.tokenize(["ein roter Stern"])
        direct = real(enc["input_ids"], enc["attention_mask"])
    torch.testing.assert_close(cache.lookup(["ein roter Stern"]), direct, rtol=1e-5, atol=1e-6)
    calls.clear()
    more = first + ["two circles", "deux cercles"]
    cache2 = TextFeatureCache.build(model, more, store=store, batch_size=2, progress=False)
    assert sum(calls) == 2 and cache2.stats.already_stored == 3 and cache2.stats.encoded == 2
    torch.testing.assert_close(cache2.lookup(["a red star"]), cache.lookup(["a red star"]))
    assert len(store.shards()) == 2  # one shard per filling run, each written whole


def test_a_killed_filling_run_keeps_finished_shards(tmp_path, monkeypatch):
    model = _model()
    store = TextFeatureStore(tmp_path / "store")
    texts = [f"caption {i}" for i in range(10)]
    real = model.text_features
    seen = []

    def dies_on_third_batch(ids, mask):
        seen.append(1)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return real(ids, mask)

    monkeypatch.setattr(model, "text_features", dies_on_third_batch)
    try:
        store.add(model, texts, batch_size=2, shard_size=4, progress=False)
    except KeyboardInterrupt:
        pass
    assert len(store.stored_texts()) == 4  # the first shard (2 batches) survived
    assert not list(store.folder.glob(".*tmp"))
    monkeypatch.setattr(model, "text_features", real)
    cache = TextFeatureCache.build(model, texts, store=store, batch_size=2, progress=False)
    assert cache.stats.already_stored == 4 and cache.stats.encoded == 6


def test_store_key_follows_weights_and_text_settings():
    a, b = _model(0), _model(1)
    assert store_key(a) == store_key(_model(0))
    assert store_key(a) != store_key(b)
    c = _model(0)
    c.config.text_prefix = "query: "
    assert store_key(c) != store_key(a)

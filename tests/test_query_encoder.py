"""QueryEncoder: the LRU cache of encoded queries, the int8 copy of the text tower, and its use
in Gallery.search_texts in place of the model (the gallery's fingerprint check still applies)."""

import numpy as np
import pytest
import torch
from conftest import tiny_config
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

from ccr_demo.gallery.errors import GalleryError
from ccr_demo.gallery.gallery import Gallery
from ccr_demo.model.fingerprint import weights_fingerprint
from ccr_demo.model.modeling import CCRModel
from ccr_demo.model.query_encoder import INT8_RECIPES, QueryEncoder, quantize_text_tower

QUERIES = {"en": "a red circle", "de": "ein roter Kreis", "zh": "红色的圆", "fr": "un cercle rouge"}
CAPTIONS = ["a red circle", "a blue square", "ein roter Kreis", "ein blauer Würfel", "红色的圆", "蓝色的方块"]


def _spy(model):
    calls = []
    real = model.encode_texts

    def spy(texts, *args, **kwargs):
        calls.append(list(texts))
        return real(texts, *args, **kwargs)

    model.encode_texts = spy
    return calls


def test_cache_matches_model_and_skips_repeats(tiny_model):
    texts = list(QUERIES.values())
    ref = tiny_model.encode_texts(texts)
    enc = QueryEncoder(tiny_model, cache_size=8)
    calls = _spy(tiny_model)
    first = enc.encode_texts(texts + [texts[0]])  # a repeat inside one call is encoded once
    assert calls == [texts]
    torch.testing.assert_close(first, torch.cat([ref, ref[:1]]), rtol=0, atol=1e-6)
    again = enc.encode_texts([texts[2], "a green triangle", texts[0]])  # two hits, one miss
    assert calls[1:] == [["a green triangle"]]
    torch.testing.assert_close(again[[0, 2]], ref[[2, 0]], rtol=0, atol=1e-6)
    torch.testing.assert_close(again[1], tiny_model.encode_texts(["a green triangle"])[0], rtol=0, atol=1e-6)
    assert enc.cache_info() == {"hits": 2, "misses": 6, "size": 5, "max_size": 8}


def test_cache_returns_copies_and_stays_bounded(tiny_model):
    enc = QueryEncoder(tiny_model, cache_size=2)
    out = enc.encode_texts(["a red circle"])
    saved = out.clone()
    out.zero_()  # a caller editing its result in place
    torch.testing.assert_close(enc.encode_texts(["a red circle"]), saved, rtol=0, atol=0)
    enc.encode_texts(["b"])
    enc.encode_texts(["a red circle"])  # used most recently: "b" is the least recent
    enc.encode_texts(["c"])
    calls = _spy(tiny_model)
    enc.encode_texts(["a red circle", "c"])
    assert calls == [] and enc.cache_info()["size"] == 2
    enc.encode_texts(["b"])
    assert calls == [["b"]]
    off = QueryEncoder(tiny_model, cache_size=0)
    off.encode_texts(["x"])
    off.encode_texts(["x"])
    assert calls[1:] == [["x"], ["x"]] and off.cache_info()["size"] == 0


def test_bad_input_is_a_clear_error(tiny_model):
    enc = QueryEncoder(tiny_model)
    with pytest.raises(TypeError, match="list of strings"):
        enc.encode_texts("a red circle")
    with pytest.raises(ValueError, match="empty"):
        enc.encode_texts([])
    with pytest.raises(TypeError, match="item 1"):
        enc.encode_texts(["a", 3])
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="cache_size"):
            QueryEncoder(tiny_model, cache_size=bad)
    with pytest.raises(ValueError, match="unknown int8 recipe"):
        QueryEncoder(tiny_model, int8="int4")
    with torch.no_grad():
        next(tiny_model.text_projection.parameters())[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        QueryEncoder(tiny_model)


@pytest.mark.parametrize("recipe", sorted(INT8_RECIPES))
def test_int8_copy_quantizes_its_layers_and_leaves_the_model_alone(tiny_model, recipe):
    fp = weights_fingerprint(tiny_model)
    texts = list(QUERIES.values()) + ["a much longer caption: three small red circles left of a big blue square"]
    ref = tiny_model.encode_texts(texts)
    enc = QueryEncoder(tiny_model, int8=recipe, cache_size=0)
    quantized = [n for n, m in enc._tower.named_modules() if isinstance(m, DynamicQuantizedLinear)]
    linears = [n for n, m in tiny_model.text_tower.named_modules() if isinstance(m, nn.Linear)]
    assert quantized == [n for n in linears if INT8_RECIPES[recipe](n)] and quantized
    assert all(isinstance(m, nn.Linear) for n, m in tiny_model.text_tower.named_modules() if n in linears)
    assert weights_fingerprint(tiny_model) == fp and enc.source_fingerprint == fp
    got = enc.encode_texts(texts)
    assert got.shape == ref.shape and got.dtype == torch.float32
    torch.testing.assert_close(got.norm(dim=1), torch.ones(len(texts)))
    cos = (got * ref).sum(1)
    assert (cos > 0.9).all() and not torch.equal(got, ref)  # close to fp32, yet really int8
    # rows come back in input order: each text alone gives its own row (up to the activation scale,
    # which dynamic quantization takes from the whole batch)
    torch.testing.assert_close(enc.encode_texts([texts[-1]])[0], got[-1], rtol=0, atol=1e-3)


def test_quantize_text_tower_refuses_a_recipe_that_selects_nothing(tiny_model):
    INT8_RECIPES["nothing"] = lambda name: False
    try:
        with pytest.raises(ValueError, match="selects no nn.Linear"):
            quantize_text_tower(tiny_model.text_tower, "nothing")
    finally:
        del INT8_RECIPES["nothing"]


def test_gallery_search_texts_takes_the_encoder(tiny_model):
    g = Gallery.build(tiny_model, CAPTIONS, kind="text", progress=False,
                      metadata=[{"id": f"c{i}"} for i in range(len(CAPTIONS))])
    plain = g.search_texts(tiny_model, QUERIES, 3)
    enc = QueryEncoder(tiny_model)
    for _ in range(2):  # uncached, then cached: the same result as the model itself
        res = g.search_texts(enc, QUERIES, 3)
        np.testing.assert_allclose(res.query_emb, plain.query_emb, atol=1e-6)
        np.testing.assert_array_equal(res.positions, plain.positions)
        np.testing.assert_array_equal(res.item_ranks, plain.item_ranks)
    assert enc.cache_info()["hits"] == len(QUERIES)
    int8 = g.search_texts(QueryEncoder(tiny_model, int8="all"), QUERIES, 3)
    assert int8.positions.shape == plain.positions.shape

    torch.manual_seed(1)
    other = QueryEncoder(CCRModel(tiny_config()))
    with pytest.raises(GalleryError, match="fingerprint"):
        g.search_texts(other, QUERIES, 3)
    with torch.no_grad():  # the source model changes after the encoder was made: its cache is stale
        next(tiny_model.text_projection.parameters()).add_(0.5)
    with pytest.raises(GalleryError, match="changed since the encoder was made"):
        g.search_texts(enc, QUERIES, 3)

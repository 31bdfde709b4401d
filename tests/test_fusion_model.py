"""The fusion encoder inside CCRModel: image tokens, save / load, old checkpoints, init_from."""

import json

import pytest
import timm
import torch

from ccr_demo.model.configuration import ModelConfig
from ccr_demo.model.modeling import CCRModel
from ccr_demo.model.towers import ImageTower, feature_tokens
from ccr_demo.utils.config import ConfigError, from_dict

TINY = dict(image_tower="resnet10t", image_size=64, text_tower="random:bert", embed_dim=32,
            text_kwargs={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 64})


def _fusion_model(**fusion):
    torch.manual_seed(0)
    return CCRModel({**TINY, "fusion": {"layers": 1, "heads": 2, "dropout": 0.0, **fusion}}).eval()


def test_feature_maps_of_every_layout_become_tokens():
    x = torch.arange(2 * 3 * 2 * 5, dtype=torch.float).view(2, 5, 3, 2)  # NCHW, 5 channels
    t = feature_tokens(x, 5)
    assert t.shape == (2, 6, 5) and torch.equal(t[1, 4], x[1, :, 2, 0])
    assert torch.equal(feature_tokens(x.permute(0, 2, 3, 1), 5), t)  # NHWC (Swin)
    assert torch.equal(feature_tokens(t, 5), t)  # ViT tokens
    with pytest.raises(ValueError, match="no axis of 7 channels"):
        feature_tokens(x, 7)


@pytest.mark.parametrize("name,size", [("resnet10t", 64), ("test_vit", 160)])
def test_one_tower_pass_gives_the_pooled_vector_and_the_tokens(name, size):
    tower = ImageTower(timm.create_model(name, num_classes=0)).eval()
    x = torch.randn(2, 3, size, size)
    pooled, tokens = tower.forward_tokens(x)
    torch.testing.assert_close(pooled, tower(x))
    assert tokens.shape[0] == 2 and tokens.shape[2] == tower.num_features


def test_fusion_model_saves_and_loads_with_identical_scores(tmp_path):
    model = _fusion_model()
    assert model.has_fusion and model.fusion.num_image_tokens == 4  # 64 px / 32 -> 2 x 2
    model.save_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["model"]["fusion"]["layers"] == 1
    loaded = CCRModel.from_pretrained(tmp_path / "m")
    pixels = torch.randn(3, 3, 64, 64)
    texts = ["a red star", "ein blauer Kreis", "一个红色的星星"]
    states, mask = loaded.encode_text_states(texts)
    memory = loaded.encode_image_memory(pixels)
    torch.testing.assert_close(loaded.match_scores(memory, states, mask), model.match_scores(memory, states, mask))
    torch.testing.assert_close(loaded.encode_texts(texts), model.encode_texts(texts))
    assert loaded.fingerprint() == model.fingerprint()


def test_a_dual_encoder_has_no_fusion_and_says_so(tmp_path):
    model = CCRModel(TINY)
    assert not model.has_fusion and model.fusion is None
    model.save_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    del meta["model"]["fusion"]  # a model saved before the fusion encoder existed
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    loaded = CCRModel.from_pretrained(tmp_path / "m")
    assert not loaded.has_fusion
    with pytest.raises(ValueError, match="dual encoder"):
        loaded.encode_image_memory(torch.zeros(1, 3, 64, 64))


def test_pairs_must_align_and_images_must_have_the_model_size():
    model = _fusion_model()
    states, mask = model.encode_text_states(["a", "b"])
    with pytest.raises(ValueError, match="pairs must align"):
        model.match_scores(model.encode_image_memory(torch.zeros(3, 3, 64, 64)), states.repeat(2, 1, 1)[:3][:2],
                           mask[:2])
    with pytest.raises(ValueError, match="tokens"):
        model.encode_image_memory(torch.zeros(1, 3, 96, 96))


def test_the_match_score_depends_on_the_image_and_on_the_text():
    model = _fusion_model()
    states, mask = model.encode_text_states(["a red star", "a blue circle on the left"])
    memory = model.encode_image_memory(torch.randn(2, 3, 64, 64))
    s = model.match_scores(memory, states, mask)
    swapped_text = model.match_scores(memory, states.flip(0), mask.flip(0))
    swapped_image = model.match_scores(memory.flip(0), states, mask)
    assert not torch.allclose(s, swapped_text) and not torch.allclose(s, swapped_image)


def test_mlm_logits_are_tied_to_the_token_embeddings():
    model = _fusion_model()
    h = torch.randn(5, model.fusion.width)
    emb = model.text_tower.input_embeddings().weight
    full = model.fusion.mlm_logits(h, emb)
    assert full.shape == (5, emb.shape[0])
    ids = torch.tensor([3, 7, 40])
    torch.testing.assert_close(model.fusion.mlm_logits(h, emb, ids), full[:, ids])
    assert not any(p is emb for p in model.fusion.parameters())  # tied, not copied


def test_fusion_config_is_validated():
    with pytest.raises(ConfigError, match="not divisible"):
        from_dict(ModelConfig, {"fusion": {"layers": 2, "heads": 3, "width": 64}})
    with pytest.raises(ConfigError, match="layers"):
        from_dict(ModelConfig, {"fusion": {"layers": -1}})


def test_init_from_copies_a_dual_encoder_under_a_fresh_fusion_encoder(tmp_path):
    from ccr_demo.training.init import init_from_pretrained

    torch.manual_seed(1)
    dual = CCRModel(TINY)
    dual.save_pretrained(tmp_path / "dual")
    full = _fusion_model()
    fresh = {k: v.clone() for k, v in full.fusion.state_dict().items()}
    assert init_from_pretrained(full, str(tmp_path / "dual")) == ["fusion"]
    for k, v in dual.state_dict().items():
        assert torch.equal(full.state_dict()[k], v), k
    assert all(torch.equal(full.fusion.state_dict()[k], v) for k, v in fresh.items())
    other = CCRModel({**TINY, "embed_dim": 16, "fusion": {"layers": 1, "heads": 2}})
    with pytest.raises(ValueError, match="embed_dim"):
        init_from_pretrained(other, str(tmp_path / "dual"))


def test_init_from_a_smaller_image_size_resizes_the_image_positions(tmp_path):
    """Fine-tuning at a higher resolution (the paper: 384 px after 224): the fusion encoder's
    learned image-token positions are resized as a grid; everything else is copied."""
    from ccr_demo.training.init import init_from_pretrained, resize_image_positions

    small = _fusion_model()  # 64 px -> 2 x 2 tokens
    small.save_pretrained(tmp_path / "small")
    torch.manual_seed(3)
    big = CCRModel({**TINY, "image_size": 128, "fusion": {"layers": 1, "heads": 2}})  # 4 x 4 tokens
    assert init_from_pretrained(big, str(tmp_path / "small")) == []
    table = big.fusion.image_position
    assert table.shape == (1, 17, small.fusion.width)
    torch.testing.assert_close(table[:, 0], small.fusion.image_position[:, 0])
    grid = table[0, 1:].reshape(4, 4, -1)
    assert torch.equal(table, resize_image_positions(small.fusion.image_position, 16))
    # a constant grid stays constant
    const = torch.ones(1, 5, 3)
    assert torch.allclose(resize_image_positions(const, 9), torch.ones(1, 10, 3))
    assert grid.shape[:2] == (4, 4)
    with pytest.raises(ValueError, match="not square"):
        resize_image_positions(torch.zeros(1, 7, 2), 16)


def test_projected_inputs_read_the_projection_heads(tmp_path):
    """model.fusion.inputs: projected feeds the fusion encoder the towers' tokens through the
    trained projection heads (the aligned space); "tower" reads the raw tower outputs."""
    pixels = torch.randn(2, 3, 64, 64)
    scores = {}
    for inputs in ("tower", "projected"):
        model = _fusion_model(inputs=inputs)
        assert model.fusion.text_width == (32 if inputs == "projected" else model.text_tower.num_features)
        states, mask = model.encode_text_states(["a red star", "ein blauer Kreis"])
        before = model.match_scores(model.encode_image_memory(pixels), states, mask)
        with torch.no_grad():
            model.text_projection.weight.mul_(3.0)
            model.image_projection.weight.mul_(3.0)
        after = model.match_scores(model.encode_image_memory(pixels), states, mask)
        scores[inputs] = (before, after)
    assert torch.equal(*scores["tower"])  # projections play no part
    assert not torch.allclose(*scores["projected"])
    model = _fusion_model(inputs="projected")
    model.save_pretrained(tmp_path / "m")
    loaded = CCRModel.from_pretrained(tmp_path / "m")
    assert loaded.config.fusion.inputs == "projected"
    states, mask = loaded.encode_text_states(["a red star"])
    memory = loaded.encode_image_memory(pixels[:1])
    torch.testing.assert_close(loaded.match_scores(memory, states, mask), model.match_scores(memory, states, mask))
    with pytest.raises(ConfigError, match="inputs"):
        from_dict(ModelConfig, {"fusion": {"layers": 1, "inputs": "raw"}})


def test_a_dual_encoder_keeps_the_fingerprint_it_had_before_the_fusion_section(tmp_path):
    """Galleries record the fingerprint of the model that built them: adding the fusion section
    to the config must not change a dual encoder's, or every gallery built before is refused."""
    import hashlib

    from ccr_demo.model.fingerprint import state_dict_sha256, weights_fingerprint
    from ccr_demo.utils.config import to_dict

    model = CCRModel(TINY)
    legacy = to_dict(model.config)
    del legacy["fusion"], legacy["image_pool"], legacy["image_coords"]  # as hashed before these keys existed
    h = hashlib.sha256(json.dumps(legacy, sort_keys=True).encode())
    h.update(state_dict_sha256(model).encode())
    assert model.fingerprint() == weights_fingerprint(model) == h.hexdigest()[:16]
    assert _fusion_model().fingerprint() != CCRModel({**TINY, "fusion": {"layers": 1, "heads": 2,
                                                                          "inputs": "projected"}}).fingerprint()

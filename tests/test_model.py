"""CCRModel: encoding contract, odd inputs, locking, training signal, exact save/load."""

import json

import numpy as np
import pytest
import torch
from conftest import tiny_config
from PIL import Image

from ccr_demo.model.configuration import ModelConfig
from ccr_demo.model.modeling import CCRModel
from ccr_demo.training.losses import one_to_k_loss
from ccr_demo.utils.config import ConfigError


def _images():
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))
    return [
        rgb,
        rgb.convert("RGBA"),
        rgb.convert("L"),
        rgb.convert("CMYK"),
        rgb.convert("P"),
        Image.fromarray(rng.integers(0, 65535, (20, 30), dtype=np.uint16)),  # 16-bit grey
        Image.new("RGB", (3, 500), (10, 200, 30)),  # extreme aspect ratio
    ]


TEXTS = ["a red circle", "ein roter Kreis", "红色的圆", "", "🙂🙂", "x" * 10_000, "mixed 混合 смесь"]


def test_encode_contract(tiny_model):
    img = tiny_model.encode_images(_images(), batch_size=3)
    txt = tiny_model.encode_texts(TEXTS, batch_size=4)
    for emb, n in ((img, len(_images())), (txt, len(TEXTS))):
        assert emb.shape == (n, 32) and emb.dtype == torch.float32 and emb.device.type == "cpu"
        assert torch.allclose(emb.norm(dim=1), torch.ones(n), atol=1e-5)
        assert torch.isfinite(emb).all()
    # batching does not change results
    assert torch.allclose(tiny_model.encode_texts(TEXTS, batch_size=1), txt, atol=1e-5)


def test_long_text_is_truncated_not_rejected(tiny_model):
    enc = tiny_model.tokenize(["x" * 10_000])
    assert enc["input_ids"].shape[1] == tiny_model.config.text_max_length


def test_bad_encode_inputs(tiny_model):
    with pytest.raises(ValueError, match="empty list of images"):
        tiny_model.encode_images([])
    with pytest.raises(ValueError, match="empty list of texts"):
        tiny_model.encode_texts([])
    with pytest.raises(TypeError, match="single string"):
        tiny_model.encode_texts("a red circle")
    with pytest.raises(TypeError, match="item 1"):
        tiny_model.encode_texts(["ok", 3])
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        tiny_model.encode_images(torch.zeros(2, 32, 32))
    with pytest.warns(UserWarning, match="not among the model's training languages"):
        tiny_model.encode_texts(["hola"], language="es")


def test_lock_freezes_tower_and_keeps_eval_mode(tiny_model):
    tiny_model.lock_text_tower()
    tiny_model.train()
    assert not tiny_model.text_tower.training and tiny_model.image_tower.training
    assert not any(p.requires_grad for p in tiny_model.text_tower.parameters())
    assert all(p.requires_grad for p in tiny_model.image_tower.parameters())


def test_temperature_is_clamped():
    model = CCRModel(tiny_config())
    with torch.no_grad():
        model.temperature.fill_(5.0)
    assert model.logit_temperature.item() == pytest.approx(0.5)
    with torch.no_grad():
        model.temperature.fill_(-1.0)
    assert model.logit_temperature.item() == pytest.approx(0.001)


def test_twenty_steps_of_one_to_k_lower_the_loss():
    """Random image/caption pairs with K=3 captions each: the model must learn to match them."""
    torch.manual_seed(0)
    model = CCRModel(tiny_config())
    model.train()
    B, K = 8, 3
    pixels = torch.randn(B, 3, 32, 32)
    words = ["red", "blue", "green", "tiny", "huge", "star", "moon", "tree"]
    texts = [[f"{w} {lang}" for lang in ("en", "de", "zh")] for w in words]
    enc = model.tokenize([t for row in texts for t in row])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        img, txt, tau = model(pixels, enc["input_ids"], enc["attention_mask"])
        loss = one_to_k_loss(img, txt.view(B, K, -1), tau)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_save_load_round_trip_is_exact(tiny_model, tmp_path):
    with torch.no_grad():
        tiny_model.temperature.fill_(0.05)
    tiny_model.save_pretrained(tmp_path / "m")
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json", "README.md"} <= files
    loaded = CCRModel.from_pretrained(tmp_path / "m")
    assert torch.equal(loaded.encode_images(_images()), tiny_model.encode_images(_images()))
    assert torch.equal(loaded.encode_texts(TEXTS), tiny_model.encode_texts(TEXTS))
    assert loaded.logit_temperature.item() == pytest.approx(0.05)
    assert loaded.fingerprint() == tiny_model.fingerprint()
    assert loaded.config == tiny_model.config


def test_save_is_atomic_and_replaces(tiny_model, tmp_path, monkeypatch):
    target = tmp_path / "m"
    tiny_model.save_pretrained(target)
    before = (target / "model.safetensors").read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr("ccr_demo.model.modeling.save_file", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        tiny_model.save_pretrained(target)
    assert (target / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temp folder left behind


def test_loading_never_unpickles(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x80\x04 not safetensors")
    with pytest.raises(Exception) as err:
        CCRModel.from_pretrained(tmp_path / "m")
    assert "pickle" not in type(err.value).__name__.lower()


def test_bad_model_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        CCRModel.load_folder(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="not valid JSON"):
        CCRModel.load_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a ccr_demo model config"):
        CCRModel.load_folder(tmp_path)


def test_bad_config_is_rejected():
    with pytest.raises(ConfigError, match="text_pooling"):
        ModelConfig(text_pooling="max").validate()
    with pytest.raises(ConfigError, match="unknown image tower"):
        CCRModel(tiny_config(image_tower="nope:thing"))
    with pytest.raises(ConfigError, match="image tower 'no_such_timm_model'"):
        CCRModel(tiny_config(image_tower="no_such_timm_model"))


def _attn_config(**kw) -> ModelConfig:
    settings = dict(image_tower="resnet10t", image_size=64, image_pool="attn", image_kwargs={"output_stride": 16},
                    text_tower="random:bert", embed_dim=32, languages=["en"],
                    text_kwargs={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                 "intermediate_size": 64})
    return ModelConfig(**{**settings, **kw}).validate()


def test_attention_pooling_keeps_where_things_are_and_round_trips(tmp_path):
    """model.image_pool="attn": learned position embeddings over the last feature map, so
    moving features to other positions changes the pooled vector (averaging cannot tell)."""
    model = CCRModel(_attn_config()).eval()
    pool = model.image_tower.pool
    assert pool.pos_embed.shape[0] == 4 * 4 + 1  # 64 px at output stride 16: a 4 x 4 map, plus the query token
    with torch.no_grad():
        pool.pos_embed.normal_(std=0.5)
        features = torch.randn(2, model.image_tower.num_features, 4, 4)
        flipped = features.flip(-1)  # the same features, left and right exchanged
        assert torch.allclose(features.mean((2, 3)), flipped.mean((2, 3)), atol=1e-6)
        assert not torch.allclose(pool(features), pool(flipped), atol=1e-3)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    before = model.encode_images([image])
    model.save_pretrained(tmp_path / "m")
    again = CCRModel.from_pretrained(tmp_path / "m")
    assert again.config.image_pool == "attn" and torch.equal(again.encode_images([image]), before)
    # a step trains the pooling's position embeddings
    model.train()
    loss = model.image_tower(torch.randn(2, 3, 64, 64)).pow(2).mean()
    loss.backward()
    assert pool.pos_embed.grad is not None and pool.pos_embed.grad.abs().sum() > 0


def test_image_pool_is_checked_and_the_default_keeps_old_fingerprints(tiny_model):
    from ccr_demo.model.configuration import identity_dict

    with pytest.raises(ConfigError, match="image_pool"):
        ModelConfig(image_pool="max").validate()
    assert "image_pool" not in identity_dict(tiny_model.config)  # "avg": hashed as before the key existed
    assert identity_dict(_attn_config())["image_pool"] == "attn"
    with pytest.raises(ConfigError, match="feature map"):
        CCRModel(_attn_config(image_tower="test_vit", image_kwargs={"img_size": 64}))


def test_coordinate_channels_let_an_averaged_vector_say_where_things_are(tmp_path):
    """model.image_coords (CoordConv): the tower reads each pixel's x and y, so the same object
    on the left and on the right gives different average-pooled vectors even where a plain
    tower's zero padding cannot tell them apart; round-trips, and refuses pretrained weights."""
    from ccr_demo.model.configuration import identity_dict

    model = CCRModel(_attn_config(image_pool="avg", image_kwargs={}, image_coords=True)).eval()
    tower = model.image_tower
    first = tower.backbone.conv1[0] if isinstance(tower.backbone.conv1, torch.nn.Sequential) else tower.backbone.conv1
    assert first.in_channels == 5
    with torch.no_grad():
        x = tower.with_coords(torch.zeros(1, 3, 4, 6))
        assert x.shape == (1, 5, 4, 6)
        assert x[0, 3, 0].tolist() == pytest.approx(torch.linspace(-1, 1, 6).tolist())  # x runs left to right
        assert x[0, 4, :, 0].tolist() == pytest.approx(torch.linspace(-1, 1, 4).tolist())  # y top to bottom
        # A blank image: a plain convolution gives the same response at every interior
        # position (translation invariance); with the coordinate channels the responses differ.
        blank = torch.zeros(1, 3, 16, 16)
        plain = torch.nn.functional.conv2d(blank, first.weight[:, :3], padding=1)[..., 2:-2, 2:-2]
        placed = first(tower.with_coords(blank))[..., 2:-2, 2:-2]
        assert torch.allclose(plain, plain[..., :1, :1].expand_as(plain))
        assert (placed - placed[..., :1, :1]).abs().amax() > 1e-3
    image = Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    before = model.encode_images([image])
    model.save_pretrained(tmp_path / "m")
    again = CCRModel.from_pretrained(tmp_path / "m")
    assert again.config.image_coords and torch.equal(again.encode_images([image]), before)
    assert identity_dict(again.config)["image_coords"] is True
    assert "image_coords" not in identity_dict(_attn_config())  # off: hashed as before the key existed
    with pytest.raises(ConfigError, match="image_coords"):
        CCRModel(_attn_config(image_tower="offline:efficientnet_lite0", image_pool="avg", image_coords=True))

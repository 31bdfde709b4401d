"""Binding negatives for ITM (train.itm_twin_negatives, train.itm_caption_negatives): the pairs
only a model that binds can call false, added to the paper's hard-negative rule; off = its rule."""

from __future__ import annotations

import pytest
import torch

from ccr_demo.model.modeling import CCRModel
from ccr_demo.training import objectives
from ccr_demo.training.configs import load_config
from ccr_demo.training.losses import MatchingDraw
from ccr_demo.training.objectives import FusionObjectives, with_twin_negatives
from ccr_demo.utils.config import ConfigError

TINY = dict(image_tower="resnet10t", image_size=64, text_tower="random:bert", embed_dim=32, languages=["en", "de"],
            text_kwargs={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 64}, fusion={"layers": 1, "heads": 2, "dropout": 0.0})


def test_a_twin_replaces_the_drawn_negative_image_unless_the_caption_is_true_of_it():
    draw = MatchingDraw(torch.tensor([0, 2, 4, 6]), torch.tensor([1, 0, 0, 0]), torch.tensor([3, 3, 0, 1]))
    twin_of = torch.tensor([1, 0, -1, -1])  # images 0 and 1 are twins; 2 and 3 have none in the batch
    out = with_twin_negatives(draw, twin_of, None)
    assert out.negative_image.tolist() == [1, 0, 0, 1]
    assert torch.equal(out.positive, draw.positive) and torch.equal(out.negative_text, draw.negative_text)
    exclude = torch.zeros(4, 4, dtype=torch.bool)
    exclude[0, 1] = True  # item 1's caption is also true of image 0: image 0 is no negative for it
    assert with_twin_negatives(draw, twin_of, exclude).negative_image.tolist() == [1, 3, 0, 1]


class _States:
    """A token-state cache stand-in: the text tower's states of each string, computed now."""

    def __init__(self, model):
        self.model = model

    def lookup(self, texts):
        return self.model.encode_text_states(list(texts))


@pytest.mark.parametrize("caption_negatives", [False, True])
def test_caption_negatives_are_extra_false_pairs_in_the_positives_language(monkeypatch, caption_negatives):
    torch.manual_seed(0)
    model = CCRModel(TINY).eval()
    cfg = load_config("tiny-ccrk", ["train.lock_text=true", "train.cache_text_features=true", "train.hard_negatives=1",
                                    f"train.itm_caption_negatives={str(caption_negatives).lower()}",
                                    "model.languages=[en, de]"])
    texts = ["a red star", "ein roter Stern", "a blue circle", "ein blauer Kreis"]
    negatives = ["a green star", "ein gruener Stern", "a blue square", "ein blaues Quadrat"]  # [b=2, P=1, K=2]
    seen = {}

    def fake_itm_loss(pos, neg):
        seen["pos"], seen["neg"] = len(pos), len(neg)
        return pos.sum() * 0 + neg.sum() * 0

    fused_texts = []
    real_lookup = _States.lookup
    monkeypatch.setattr(objectives, "itm_loss", fake_itm_loss)
    monkeypatch.setattr(_States, "lookup", lambda self, t: (fused_texts.append(list(t)), real_lookup(self, t))[1])
    run = FusionObjectives(cfg, K=2, states_cache=_States(model))
    with torch.no_grad():
        img = torch.nn.functional.normalize(torch.randn(2, 32), dim=-1)
        txt = torch.nn.functional.normalize(torch.randn(4, 32), dim=-1)
        memory = model.encode_image_memory(torch.randn(2, 3, 64, 64))
    cfg.train.losses = {"itc": 1.0, "itm": 1.0}
    run(model, img, txt, 0.07, memory, None, None, texts, texts, step=0,
        caption_negatives=negatives, caption_negative_exists=torch.tensor([[True], [False]]))
    assert seen["pos"] == 2
    if caption_negatives:
        assert seen["neg"] == 2 * 2 + 1  # the paper's 2b, plus image 0's own negative (image 1 has none)
        extra = fused_texts[-1]
        assert len(extra) == 1 and extra[0] in negatives[:2]  # image 0's, in the language of its positive
    else:
        assert seen["neg"] == 2 * 2


def test_binding_negatives_are_checked_up_front():
    with pytest.raises(ConfigError, match="itm_caption_negatives"):
        load_config("tiny-ccrk", ["train.itm_caption_negatives=true", "train.lock_text=true"])
    with pytest.raises(ConfigError, match="itm loss"):
        load_config("tiny", ["train.itm_twin_negatives=true"])
    with pytest.raises(ConfigError, match="locked, cached text tower"):
        load_config("tiny-ccrk", ["train.hard_negatives=1", "train.lock_text=false"])
    ok = load_config("tiny-ccrk", ["train.hard_negatives=1", "train.lock_text=true", "train.itm_caption_negatives=true",
                                   "train.itm_twin_negatives=true"])
    assert ok.train.itm_caption_negatives and ok.train.itm_twin_negatives

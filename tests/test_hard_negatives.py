"""Caption hard negatives (NegCLIP-style): written by the generator, masked by the scene dicts,
added to the image->text softmax only; off gives the paper's loss exactly."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from ccr_demo import LANGUAGES
from ccr_demo.data.languages import plan_from_scene
from ccr_demo.data.queries import is_relevant
from ccr_demo.data.scene import Scene
from ccr_demo.data.shapes import generate_dataset
from ccr_demo.training.datasets import MultilingualPretrainDataset
from ccr_demo.training.losses import one_to_k_loss


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("negatives") / "w", n_train=60, n_val=0, n_test=0,
                            n_test_compositional=0, image_size=16, seed=5, workers=1, progress=False,
                            n_test_queries=0, hard_negatives=2)


def test_every_written_negative_is_false_of_its_scene_in_every_language(world):
    rows = [json.loads(line) for line in (world / "train" / "part_00000.data").read_text().splitlines()]
    kinds, n = set(), 0
    for row in rows:
        own = Scene.from_dict(row["scene"])
        captions = [row["caption"], *(v["caption"] for v in row["variants"])]
        for neg in row["negatives"]:
            assert set(neg["caption"]) == set(LANGUAGES)
            if neg["of"] == 0:
                assert plan_from_scene(Scene.from_dict(neg["scene"])) != plan_from_scene(own)
            else:
                assert is_relevant(row["variants"][neg["of"] - 1]["query"], row["scene"])
                assert not is_relevant(neg["query"], row["scene"])
            for lang in LANGUAGES:  # never the text of a caption that is true of the scene
                assert neg["caption"][lang] != captions[neg["of"]][lang]
            kinds.add(neg["kind"])
            n += 1
        assert sum(neg["of"] == 0 for neg in row["negatives"]) <= 2
    assert n > 200 and {"colour", "position", "move"} <= kinds, kinds


def test_the_mask_keeps_own_negatives_and_drops_those_true_of_another_image(world):
    ds = MultilingualPretrainDataset(world / "train", ["en", "de"], full_caption_prob=0.0)
    idx = list(range(24))
    texts = ds.negative_texts(idx, 2)
    assert len(texts) == 24 * 2 * 2
    mask = ds.negative_mask(idx, 2)
    assert mask.shape == (24, 24 * 2 * 2)
    for c, i in enumerate(idx):
        negs = ds.hard_negatives(i)
        for m in range(2):
            cols = slice((c * 2 + m) * 2, (c * 2 + m + 1) * 2)
            if m >= len(negs):  # padding: never used
                assert not mask[:, cols].any()
                continue
            assert mask[c, cols].all()  # false of its own image by construction
            for b, j in enumerate(idx):
                if b != c and "query" in negs[m]:
                    assert mask[b, cols].all() == (not is_relevant(negs[m]["query"], ds.records[j].scene))
    assert (~mask).any() and mask.any()
    assert set(texts) <= set(ds.all_texts())  # the text cache holds every negative


def test_off_is_the_papers_loss_and_a_masked_negative_changes_nothing():
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    txt = F.normalize(torch.randn(4, 3, 8, generator=g), dim=-1)
    negs = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    for mode in ("official", "balanced"):
        plain = one_to_k_loss(img, txt, 0.1, mode=mode)
        none_used = one_to_k_loss(img, txt, 0.1, mode=mode, negatives=negs,
                                  negatives_mask=torch.zeros(4, 5, dtype=torch.bool))
        assert torch.equal(plain, none_used)
        used = one_to_k_loss(img, txt, 0.1, mode=mode, negatives=negs,
                             negatives_mask=torch.ones(4, 5, dtype=torch.bool))
        assert used > plain  # more negatives in the image->text softmax


def test_a_negative_like_the_positive_costs_most_and_gets_a_gradient():
    g = torch.Generator().manual_seed(1)
    img = F.normalize(torch.randn(2, 8, generator=g), dim=-1)
    txt = F.normalize(torch.randn(2, 1, 8, generator=g), dim=-1)
    close = img[0].clone().requires_grad_(True)  # scores as high as a text can against image 0
    far = (-img[0]).clone()
    mask = torch.tensor([[True], [False]])
    near_loss = one_to_k_loss(img, txt, 0.1, negatives=close[None], negatives_mask=mask)
    far_loss = one_to_k_loss(img, txt, 0.1, negatives=far[None], negatives_mask=mask)
    assert near_loss > far_loss
    near_loss.backward()
    assert close.grad is not None and close.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="negatives_mask"):
        one_to_k_loss(img, txt, 0.1, negatives=far[None], negatives_mask=torch.ones(2, 2, dtype=torch.bool))

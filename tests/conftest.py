"""Shared fixtures. Tests never reach a model hub: everything is built locally."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from ccr_demo.model.configuration import ModelConfig

# The real xFlickr&CO test annotations (IGLUE, MIT): part of the repository, so every clone runs
# the tests that read them (tests/data/xflickrco/README.md).
XFLICKRCO = Path(__file__).resolve().parent / "data" / "xflickrco"


def tiny_config(**overrides) -> ModelConfig:
    """Random-init tiny timm + tiny BERT: builds in well under a second."""
    base = dict(image_tower="test_efficientnet", text_tower="random:bert", image_size=32, embed_dim=32,
                text_max_length=32, languages=["en", "de", "zh"],
                text_kwargs=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    base.update(overrides)
    return ModelConfig(**base)


@pytest.fixture
def tiny_model():
    import torch

    from ccr_demo.model.modeling import CCRModel

    torch.manual_seed(0)
    return CCRModel(tiny_config())


@pytest.fixture
def tiny_model_dir(tiny_model, tmp_path):
    """The tiny model saved as a folder (what the command lines and the app load)."""
    tiny_model.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


@pytest.fixture
def tiny_saved_model(tiny_model_dir):
    """The tiny model as loaded back from its folder (its weights fingerprint is the folder's)."""
    from ccr_demo.model.modeling import CCRModel

    return CCRModel.from_pretrained(tiny_model_dir)

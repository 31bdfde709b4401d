"""The model a run starts from (`build_model`): built from ``model``, optionally initialised from a
saved model (``train.init_from``: `init_from_pretrained`, resizing the fusion encoder's image
positions for another image size), towers locked and unused fusion heads frozen as configured."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ccr_demo.model.configuration import ModelConfig
from ccr_demo.model.modeling import CONFIG_NAME, CCRModel, saved_config
from ccr_demo.training.config import ExperimentConfig
from ccr_demo.training.optim import freeze_unused_heads
from ccr_demo.utils.config import ConfigError

# What a model must share with the train.init_from model to take its weights.
INIT_FROM_KEYS = ("image_tower", "text_tower", "text_pooling", "text_prefix", "embed_dim", "projection")


def build_model(cfg: ExperimentConfig) -> CCRModel:
    """The run's model before training: ``cfg.model`` built (random or pretrained towers), the weights
    of ``train.init_from`` copied in, the towers ``train.lock_*`` asks for locked, unused heads frozen."""
    model = CCRModel(cfg.model)
    if cfg.train.init_from:
        init_from_pretrained(model, cfg.train.init_from)
    if cfg.train.lock_image:
        model.lock_image_tower()
    if cfg.train.lock_text:
        model.lock_text_tower()
    freeze_unused_heads(model, cfg)
    return model


def check_init_from(folder: str | Path, config: ModelConfig) -> None:
    """ConfigError naming train.init_from unless ``folder`` is a saved model whose architecture
    ``config`` (the run's model section) can take: read from its config.json alone, so a run can
    refuse before it generates data or encodes a caption."""
    if not (Path(folder) / CONFIG_NAME).is_file():
        raise ConfigError(f"train.init_from {str(folder)!r} is not a saved model folder (no config.json): "
                          "train one first, e.g. with ccr-pretrain")
    try:
        saved = saved_config(folder)
    except ValueError as e:
        raise ConfigError(f"train.init_from {str(folder)!r}: {e}") from None
    differ = [k for k in INIT_FROM_KEYS if getattr(saved, k) != getattr(config, k)]
    if differ:
        raise ConfigError(f"train.init_from {str(folder)!r}: its model differs in {differ} "
                          f"({[getattr(saved, k) for k in differ]} there, {[getattr(config, k) for k in differ]} in "
                          f"model.*): set model.* as the saved model has it")


def init_from_pretrained(model: CCRModel, folder: str) -> list[str]:
    """Copy a saved model's weights into ``model`` (train.init_from): the towers, projections
    and temperature of e.g. a trained dual encoder, under a new fusion encoder. Returns the
    top-level parts that keep their fresh initialisation. Towers and sizes must match."""
    check_init_from(folder, model.config)
    source = CCRModel.from_pretrained(folder)
    own = model.state_dict()
    state = {k: v for k, v in source.state_dict().items() if k in own}
    key = "fusion.image_position"  # another image size (fine-tuning at 384 px after 224): resize the grid
    if key in state and state[key].shape != own[key].shape:
        state[key] = resize_image_positions(state[key], own[key].shape[1] - 1)
    wrong = [k for k, v in state.items() if v.shape != own[k].shape]
    if wrong:
        raise ConfigError(f"train.init_from {folder}: tensors of other shapes, e.g. {wrong[0]}")
    missing, _ = model.load_state_dict(state, strict=False)
    return sorted({k.split(".", 1)[0] for k in missing})


def resize_image_positions(table: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """[1, 1+N, W] learned image-token positions (token 0: the pooled vector) -> [1, 1+n_tokens, W],
    the square grid resized bicubically, as ViT position embeddings are for a new resolution."""
    old, new = table.shape[1] - 1, n_tokens
    side_old, side_new = math.isqrt(old), math.isqrt(new)
    if side_old ** 2 != old or side_new ** 2 != new:
        raise ValueError(f"image-token positions: cannot resize a {old}-token grid to {new} tokens (not square)")
    grid = table[:, 1:].reshape(1, side_old, side_old, -1).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, size=(side_new, side_new), mode="bicubic", align_corners=False)
    return torch.cat([table[:, :1], grid.permute(0, 2, 3, 1).reshape(1, new, -1)], dim=1)

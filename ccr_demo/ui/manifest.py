"""Which models the app compares: a models manifest (``models.json``) or ``CCR_MODELS``.

A manifest is ``{"models": [{"name": ..., "model": DIR, "gallery": DIR, "about": ...}, ...]}``
with paths relative to its own folder; each path must resolve inside that folder
(``utils.paths.resolve_inside``: no absolute path, no ``..`` or symlink out), so a manifest can
point the app only at files beside it. ``CCR_MODELS`` is a manifest path or
``name=MODEL@GALLERY;...`` (server configuration: any folder or Hub id). Both give a list of
``ModelSpec``, checked by ``check_names`` (1 to ``MAX_MODELS`` distinct, printable names);
anything unusable is a ``ModelsConfigError`` naming the entry. Nothing is loaded here
(``loading`` does that).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ccr_demo.ui.ranges import shown_text
from ccr_demo.ui.state import ENV_MODELS
from ccr_demo.utils.paths import resolve_inside

MANIFEST_NAME = "models.json"  # beside the default model: assets/models.json


MAX_MODEL_NAME = 40


MAX_MODELS = 4  # each one is a model in memory and a search per query


@dataclass(frozen=True)
class ModelSpec:
    """One configured model: its name in the UI and API, and where its model and gallery are."""

    name: str
    model: str
    gallery: str
    how: str  # where the entry came from, for messages


class ModelsConfigError(ValueError):
    """A models manifest or CCR_MODELS value that cannot be used, naming the entry."""


def check_names(specs: list[ModelSpec], where: str) -> list[ModelSpec]:
    """``specs`` unchanged if there are 1 to ``MAX_MODELS`` of them with distinct, usable names;
    else ModelsConfigError naming ``where`` (the manifest, variable or argument they came from)."""
    if len(specs) < 1:
        raise ModelsConfigError(f"{where}: lists no model")
    if len(specs) > MAX_MODELS:
        raise ModelsConfigError(f"{where}: {len(specs)} models; at most {MAX_MODELS} are compared")
    seen = set()
    for spec in specs:
        name = spec.name
        if not name or len(name) > MAX_MODEL_NAME or not name.isprintable() or name != name.strip():
            raise ModelsConfigError(f"{where}: model name {name!r} must be 1-{MAX_MODEL_NAME} printable "
                                    "characters without leading or trailing spaces")
        if name in seen:
            raise ModelsConfigError(f"{where}: model name {name!r} is used twice")
        seen.add(name)
    return specs


def _entry_path(folder: Path, relative: object, what: str, where: str) -> str:
    """``folder / relative`` resolved (symlinks followed), refused unless it stays inside ``folder``."""
    if not isinstance(relative, str) or not relative.strip():
        raise ModelsConfigError(f"{where}: {what} must be a path relative to {folder}, got {relative!r}")
    if Path(relative).is_absolute() or relative.startswith("~"):
        raise ModelsConfigError(f"{where}: {what} {relative!r} is absolute; paths in a manifest are relative to "
                                f"its folder ({folder}) and must stay inside it")
    target = resolve_inside(relative, folder)
    if target is None:
        raise ModelsConfigError(f"{where}: {what} {relative!r} resolves outside the manifest's folder "
                                f"{folder.resolve()} (or cannot be resolved)")
    return str(target)


def read_manifest(path: str | Path) -> list[ModelSpec]:
    """The models of a manifest: ``{"models": [{"name": ..., "model": DIR, "gallery": DIR}, ...]}``.
    Paths are relative to the manifest's folder and must resolve inside it (no absolute path,
    no ``..`` or symlink out), so a manifest can point the app only at files beside it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # not found, a name too long, a NUL byte, not UTF-8, not JSON
        raise ModelsConfigError(f"models manifest {shown_text(str(path))} cannot be read: "
                                f"{getattr(e, 'strerror', None) or e}") from None
    entries = data.get("models") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ModelsConfigError(f"models manifest {path}: expected {{\"models\": [{{\"name\", \"model\", "
                                f"\"gallery\"}}, ...]}}")
    specs = []
    for i, entry in enumerate(entries):
        where = f"models manifest {path}, entry {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ModelsConfigError(f"{where}: expected an object with a \"name\" string, got {entry!r}")
        unknown = set(entry) - {"name", "model", "gallery", "about"}
        if unknown:
            raise ModelsConfigError(f"{where}: unknown keys {sorted(unknown)} (known: name, model, gallery, about)")
        specs.append(ModelSpec(entry["name"], _entry_path(path.parent, entry.get("model"), "model", where),
                               _entry_path(path.parent, entry.get("gallery"), "gallery", where), how=str(path)))
    return check_names(specs, f"models manifest {path}")


def _is_file(value: str) -> bool:
    """``Path.is_file`` that is False for a value the OS cannot take as a name (over 255 bytes,
    a NUL byte): such a CCR_MODELS is read as entries, whose paths then say what is wrong."""
    try:
        return Path(value).is_file()
    except (OSError, ValueError):
        return False


def parse_models(value: str) -> list[ModelSpec]:
    """``CCR_MODELS``: a manifest file, or ``name=MODEL@GALLERY`` entries separated by ``;``
    (server configuration, like CCR_MODEL: folders or Hub ids, wherever the operator keeps them)."""
    value = value.strip()
    if value.endswith(".json") or _is_file(value):
        return read_manifest(value)
    specs = []
    for part in (p.strip() for p in value.split(";")):
        if not part:
            continue
        name, eq, rest = part.partition("=")
        model, at, gallery = rest.partition("@")
        if not eq or not at or not model.strip() or not gallery.strip():
            raise ModelsConfigError(f"${ENV_MODELS}: entry {part!r} is not name=MODEL@GALLERY")
        specs.append(ModelSpec(name.strip(), model.strip(), gallery.strip(), how=f"${ENV_MODELS}"))
    return check_names(specs, f"${ENV_MODELS}")

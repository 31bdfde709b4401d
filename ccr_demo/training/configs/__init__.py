"""The training configs shipped with the package: ``NAME.yaml`` here, the ablation plans in ``ablation/``.

Wherever a training config is named (``--config`` of ``ccr-pretrain`` / ``ccr-finetune`` /
``train/*.py``, the ``config:`` of an ablation plan's regimes), it is either a shipped name
(``default``, ``tiny``, ``paper``, ``finetune_shapes``, ``ablation/quick``, ...) or the path of a
YAML file, relative to the working directory. A name has no suffix; a shipped name wins over a
file of the same (suffix-less) name.
"""

from __future__ import annotations

from pathlib import Path

from ccr_demo.training.config import ExperimentConfig
from ccr_demo.utils.config import ConfigError, load_yaml

SHIPPED = Path(__file__).resolve().parent


def shipped_configs(folder: str = "") -> list[str]:
    """The shipped names of one folder, sorted: ``default``, ``tiny``, ... (``folder="ablation"``:
    ``ablation/full``, ``ablation/quick``)."""
    prefix = f"{folder}/" if folder else ""
    return sorted(prefix + p.stem for p in (SHIPPED / folder).glob("*.yaml"))


def shipped_path(name: str) -> Path | None:
    """The file of a shipped name (``tiny``, ``ablation/quick``), None when ``name`` names none."""
    folder, _, stem = name.rpartition("/")
    if folder not in ("", "ablation") or not stem or Path(stem).suffix:
        return None
    path = SHIPPED / folder / f"{stem}.yaml"
    return path if path.is_file() else None


def resolve_config(config: str | Path) -> Path:
    """A shipped name or a YAML path -> the file to read; ConfigError naming the shipped ones otherwise."""
    shipped = shipped_path(str(config))
    if shipped is not None:
        return shipped
    path = Path(config)
    if path.is_file():
        return path
    if not path.suffix:
        folder = "ablation" if str(config).startswith("ablation/") else ""
        raise ConfigError(f"config {str(config)!r}: no shipped config of that name and no such file "
                          f"(shipped: {', '.join(shipped_configs(folder))})")
    raise ConfigError(f"config file not found: {path} (or name a shipped config: {', '.join(shipped_configs())})")


def first_sentence(path: Path) -> str:
    """The first sentence of a shipped config's header comment (what ``--help`` shows)."""
    comment = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("# ").strip())
    return " ".join(comment).split(". ")[0].rstrip(".")


def load_config(config: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """The ``ExperimentConfig`` of a shipped name or YAML path, with ``section.key=value`` overrides."""
    return load_yaml(ExperimentConfig, resolve_config(config), overrides)

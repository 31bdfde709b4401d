"""Features of a locked text tower, computed once per distinct string and kept on disk.

Why: on CPU the text tower, not the image tower, bounds how much caption text a run can
afford (multilingual-e5-small encodes ~50 full captions or ~120 short queries a second on
2 cores). A locked tower's pooled output depends only on the string, so each distinct
string is encoded once, ever: the store lives under ``cache_dir()/text_features/<key>``
(key: the tower's weight hash, pooling, prefix, max length) as safetensors shards of at
most ``shard_size`` strings, each written atomically as soon as it is encoded. A killed
caching run resumes where it stopped, and a bigger dataset later encodes only its new
strings. Typed-query captions repeat a lot across scenes; the hit rate is reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from .fileio import cache_dir
from .model import CCRModel, state_dict_sha256

logger = logging.getLogger("ccr_demo.text_cache")

SHARD_GLOB = "shard_*.safetensors"


def store_key(model: CCRModel) -> str:
    """What a pooled feature depends on besides the string itself."""
    cfg = model.config
    h = hashlib.sha256(state_dict_sha256(model.text_tower).encode())
    h.update(json.dumps([cfg.text_pooling, cfg.text_prefix, cfg.text_max_length]).encode())
    return h.hexdigest()[:24]


@dataclass
class CacheStats:
    """How a cache was filled: ``hit_rate`` = share of caption occurrences not encoded now."""

    occurrences: int
    unique: int
    already_stored: int
    encoded: int

    @property
    def hit_rate(self) -> float:
        return 1.0 - self.encoded / self.occurrences if self.occurrences else 0.0

    def as_dict(self) -> dict:
        return {"occurrences": self.occurrences, "unique": self.unique, "already_stored": self.already_stored,
                "encoded": self.encoded, "hit_rate": round(self.hit_rate, 4)}

    def __str__(self) -> str:
        return (f"{self.occurrences} captions, {self.unique} distinct, {self.already_stored} already cached, "
                f"{self.encoded} encoded now (hit rate {self.hit_rate:.1%})")


class TextFeatureStore:
    """A folder of shards mapping strings to pooled text features."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @classmethod
    def for_model(cls, model: CCRModel, root: str | Path | None = None) -> "TextFeatureStore":
        return cls(Path(root) if root is not None else cache_dir() / "text_features" / store_key(model))

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob(SHARD_GLOB))

    def stored_texts(self) -> set[str]:
        out: set[str] = set()
        for path in self.shards():
            out.update(_shard_texts(path))
        return out

    def load(self, texts: Iterable[str]) -> tuple[list[str], torch.Tensor]:
        """(texts, features [n, H]) for those of ``texts`` in the store, in store order."""
        wanted = set(texts)
        names, feats = [], []
        for path in self.shards():
            shard_texts = _shard_texts(path)
            rows = [i for i, t in enumerate(shard_texts) if t in wanted]
            if not rows:
                continue
            with safe_open(str(path), framework="pt") as f:
                features = f.get_tensor("features")
            names.extend(shard_texts[i] for i in rows)
            feats.append(features[torch.as_tensor(rows)])
        return names, (torch.cat(feats) if feats else torch.empty(0, 0))

    def add(self, model: CCRModel, texts: Sequence[str], *, device: torch.device | str = "cpu",
            batch_size: int = 128, shard_size: int = 4096, progress: bool = True) -> None:
        """Encode ``texts`` (assumed not stored yet) and write them in shards as they finish."""
        texts = sorted(set(texts), key=lambda t: (len(t), t))  # similar lengths batch with little padding
        if not texts:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        start = len(self.shards())
        bar = tqdm(total=len(texts), desc="encode captions", unit="text", disable=not progress)
        with torch.inference_mode():
            for s, lo in enumerate(range(0, len(texts), shard_size)):
                chunk = texts[lo:lo + shard_size]
                feats = []
                for i in range(0, len(chunk), batch_size):
                    enc = model.tokenize(chunk[i:i + batch_size])
                    feats.append(model.text_features(enc["input_ids"].to(device),
                                                     enc["attention_mask"].to(device)).float().cpu())
                    bar.update(len(chunk[i:i + batch_size]))
                _write_shard(self.folder / f"shard_{start + s:06d}_{os.getpid()}.safetensors", chunk,
                             torch.cat(feats))
        bar.close()


def _shard_texts(path: Path) -> list[str]:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    try:
        texts = json.loads(meta["texts"])
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: not a text-feature shard (no 'texts' metadata): {e}") from None
    return texts


def _write_shard(path: Path, texts: list[str], features: torch.Tensor) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({"features": features.contiguous()}, str(tmp), metadata={"texts": json.dumps(texts)})
    os.replace(tmp, path)


class TextFeatureCache:
    """Cached pooled features for a fixed set of strings, looked up per batch."""

    def __init__(self, texts: list[str], features: torch.Tensor, stats: CacheStats | None = None):
        self.index = {t: i for i, t in enumerate(texts)}
        self.features = features
        self.stats = stats

    def lookup(self, texts: list[str]) -> torch.Tensor:
        return self.features[torch.as_tensor([self.index[t] for t in texts])]

    def encode(self, model: CCRModel, texts: list[str]) -> torch.Tensor:
        """Normalised embeddings of cached captions through the model's current projection."""
        with torch.inference_mode():
            return model.project_text(self.lookup(texts).to(model.device)).float().cpu()

    @classmethod
    def build(cls, model: CCRModel, texts: Sequence[str], *, is_main_process: bool = True,
              wait=lambda: None, device: torch.device | str = "cpu", batch_size: int = 128,
              store: TextFeatureStore | None = None, progress: bool = True) -> "TextFeatureCache":
        """Features for every string in ``texts`` (repeats allowed), encoding only what the
        store lacks. The main process encodes; ``wait`` is a barrier for the others."""
        store = store or TextFeatureStore.for_model(model)
        unique = set(texts)
        stats = None
        if is_main_process:
            stored = store.stored_texts() & unique
            missing = unique - stored
            stats = CacheStats(len(texts), len(unique), len(stored), len(missing))
            logger.info("text features: %s", stats)
            if progress:
                print(f"text features: {stats}", flush=True)
            store.add(model, sorted(missing), device=device, batch_size=batch_size, progress=progress)
        wait()
        names, features = store.load(unique)
        if len(set(names)) < len(unique):
            raise RuntimeError(f"text-feature store {store.folder} lacks {len(unique) - len(names)} strings")
        return cls(names, features, stats)

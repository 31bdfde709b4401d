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

from ccr_demo.model.fingerprint import state_dict_sha256
from ccr_demo.model.modeling import CCRModel
from ccr_demo.utils.fileio import cache_dir

logger = logging.getLogger("ccr_demo.model.text_cache")

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

    kind = "features"
    cache_folder = "text_features"  # under fileio.cache_dir()

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @classmethod
    def for_model(cls, model: CCRModel, root: str | Path | None = None) -> "TextFeatureStore":
        return cls(Path(root) if root is not None else cache_dir() / cls.cache_folder / store_key(model))

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob(SHARD_GLOB))

    def stored_texts(self) -> set[str]:
        out: set[str] = set()
        for path in self.shards():
            out.update(_shard_texts(path))
        return out

    def load(self, texts: Iterable[str]):
        """(texts, values) for those of ``texts`` in the store, in store order: features [n, H]
        here, a list of per-text token states in :class:`TextStateStore`."""
        wanted = set(texts)
        names, parts = [], []
        for path in self.shards():
            shard_texts = _shard_texts(path)
            rows = [i for i, t in enumerate(shard_texts) if t in wanted]
            if not rows:
                continue
            with safe_open(str(path), framework="pt") as f:
                parts.append(self._read_rows(f, rows))
            names.extend(shard_texts[i] for i in rows)
        return names, self._combine(parts)

    def _read_rows(self, shard, rows: list[int]):
        return shard.get_tensor("features")[torch.as_tensor(rows)]

    def _combine(self, parts: list):
        return torch.cat(parts) if parts else torch.empty(0, 0)

    def add(self, model: CCRModel, texts: Sequence[str], *, device: torch.device | str = "cpu",
            batch_size: int = 128, shard_size: int = 4096, progress: bool = True) -> None:
        """Encode ``texts`` (assumed not stored yet) and write them in shards as they finish."""
        texts = sorted(set(texts), key=lambda t: (len(t), t))  # similar lengths batch with little padding
        if not texts:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        start = len(self.shards())
        bar = tqdm(total=len(texts), desc=f"encode captions ({self.kind})", unit="text", disable=not progress)
        with torch.inference_mode():
            for s, lo in enumerate(range(0, len(texts), shard_size)):
                chunk = texts[lo:lo + shard_size]
                parts = []
                for i in range(0, len(chunk), batch_size):
                    enc = model.tokenize(chunk[i:i + batch_size])
                    parts.append(self._encode(model, enc["input_ids"].to(device), enc["attention_mask"].to(device)))
                    bar.update(len(chunk[i:i + batch_size]))
                tensors = {name: torch.cat([p[name] for p in parts]) for name in parts[0]}
                _write_shard(self.folder / f"shard_{start + s:06d}_{os.getpid()}.safetensors", chunk, tensors)
        bar.close()

    def _encode(self, model: CCRModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        return {"features": model.text_features(input_ids, attention_mask).float().cpu()}


def _shard_texts(path: Path) -> list[str]:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    try:
        texts = json.loads(meta["texts"])
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: not a text-feature shard (no 'texts' metadata): {e}") from None
    return texts


def _write_shard(path: Path, texts: list[str], tensors: dict[str, torch.Tensor]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"texts": json.dumps(texts)})
    os.replace(tmp, path)


def _fill_and_load(store: TextFeatureStore, model: CCRModel, texts: Sequence[str], is_main_process: bool, wait,
                   device, batch_size: int, progress: bool):
    """Encode what ``store`` lacks of ``texts`` (main process; ``wait`` is a barrier for the
    others), then load every distinct string of them."""
    unique = set(texts)
    stats = None
    if is_main_process:
        stored = store.stored_texts() & unique
        missing = unique - stored
        stats = CacheStats(len(texts), len(unique), len(stored), len(missing))
        logger.info("text %s: %s", store.kind, stats)
        if progress:
            print(f"text {store.kind}: {stats}", flush=True)
        store.add(model, sorted(missing), device=device, batch_size=batch_size, progress=progress)
    wait()
    names, values = store.load(unique)
    if len(set(names)) < len(unique):
        raise RuntimeError(f"text-{store.kind} store {store.folder} lacks {len(unique) - len(names)} strings")
    return names, values, stats


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
        names, features, stats = _fill_and_load(store, model, texts, is_main_process, wait, device, batch_size,
                                                progress)
        return cls(names, features, stats)


class TextStateStore(TextFeatureStore):
    """Per-string token states of a locked text tower (float16, unpadded): the fusion encoder's
    text input, so ITM / MLM over a cached tower cost no text-tower pass per step either.

    A shard holds ``states`` [sum of lengths, H] and ``lengths`` [n]; string i's states are
    rows offset_i : offset_i + length_i. ~15 tokens x 384 x 2 bytes = 11.5 KB per caption.
    """

    kind = "token states"
    cache_folder = "text_states"

    def _encode(self, model: CCRModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        states = model.text_states(input_ids, attention_mask).to(torch.float16).cpu()
        mask = attention_mask.bool().cpu()
        return {"states": states[mask], "lengths": mask.sum(1).to(torch.int32)}

    def _read_rows(self, shard, rows: list[int]) -> list[torch.Tensor]:
        """Per-text token states [length_i, H] of the shard's ``rows``."""
        pieces = torch.split(shard.get_tensor("states"), shard.get_tensor("lengths").long().tolist())
        return [pieces[i].clone() for i in rows]

    def _combine(self, parts: list) -> list[torch.Tensor]:
        return [states for part in parts for states in part]


class TextStateCache:
    """Cached token states for a fixed set of strings, looked up (and padded) per batch."""

    def __init__(self, texts: list[str], states: list[torch.Tensor], stats: CacheStats | None = None):
        self.index = {t: i for i, t in enumerate(texts)}
        self.states = states
        self.stats = stats

    def lookup(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(states [n, L, H] float32 zero-padded, attention mask [n, L] int64)."""
        rows = [self.states[self.index[t]] for t in texts]
        longest = max(r.shape[0] for r in rows)
        out = torch.zeros(len(rows), longest, rows[0].shape[1])
        mask = torch.zeros(len(rows), longest, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, :r.shape[0]] = r.float()
            mask[i, :r.shape[0]] = 1
        return out, mask

    @classmethod
    def build(cls, model: CCRModel, texts: Sequence[str], *, is_main_process: bool = True,
              wait=lambda: None, device: torch.device | str = "cpu", batch_size: int = 128,
              store: TextStateStore | None = None, progress: bool = True) -> "TextStateCache":
        """As :meth:`TextFeatureCache.build`, for token states."""
        store = store or TextStateStore.for_model(model)
        names, states, stats = _fill_and_load(store, model, texts, is_main_process, wait, device, batch_size, progress)
        return cls(names, states, stats)

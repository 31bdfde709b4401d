"""The query side of text search: a CCRModel's text path with an LRU cache of encoded queries
and, optionally, an int8 copy of its text tower.

Why: ``Gallery.search_texts`` spends most of its time encoding the queries (docs/bench/bench_latency.md).
A repeated query (the app's examples, a user re-running a search, the same text in several
languages' boxes) needs no tower pass at all; the cache keys on the exact text and returns
copies, so a caller that edits a result cannot change what later calls get.

The int8 copy is torch's own dynamic quantization (``torch.ao.quantization.quantize_dynamic``:
int8 weights, activations quantized per call) of a chosen set of the tower's ``nn.Linear``
layers; the source model is never changed. It is off by default: on the default model the
usual recipe (every Linear) does not keep the embeddings close enough to fp32
(docs/analysis/int8_validation.md has the numbers, from ``bench/validate_int8.py``). torch 2.14 marks
``torch.ao.quantization`` deprecated in favour of torchao; it is still torch's own CPU int8
path and needs no extra dependency, which is why it is used here. Dynamic quantization takes
each layer's activation scale from the whole batch, so an int8 embedding depends slightly on
the other texts encoded with it (the fp32 one does not).

A ``QueryEncoder`` stands in for its model where ``Gallery.search_texts`` takes one: it has
``config``, ``encode_texts`` and ``source_fingerprint``, the weights fingerprint of the source
model (computed from its tensors, as galleries check it), so a gallery built with the fp32
model accepts the encoder. If the source model's weights change after the encoder was made
(its int8 copy and cache would be stale), ``source_fingerprint`` raises instead.
"""

from __future__ import annotations

import copy
import warnings
from typing import Callable, Sequence

import torch
from torch import nn

from ccr_demo.model.fingerprint import check_finite, weights_fingerprint
from ccr_demo.model.processing import check_query_texts
from ccr_demo.utils.cache import LockedLRU

DEFAULT_CACHE_SIZE = 1024


def _attention_qko(name: str) -> bool:
    """Query, key and attention-output projections: the layers whose int8 copies keep the
    default model's embeddings within cosine 0.99 of fp32 (value and the feed-forward layers,
    fed by activations with outliers ~50-300x their mean, do not)."""
    return name.endswith((".attention.self.query", ".attention.self.key", ".attention.output.dense"))


# Which nn.Linear layers of the text tower (by module name) each int8 recipe quantizes.
INT8_RECIPES: dict[str, Callable[[str], bool]] = {
    "all": lambda name: True,  # the standard recipe: every Linear
    "attention-qko": _attention_qko,
}


def quantize_text_tower(tower: nn.Module, recipe: str = "all") -> nn.Module:
    """An int8 dynamic-quantized COPY of ``tower`` (eval mode; ``tower`` itself is unchanged)."""
    if recipe not in INT8_RECIPES:
        raise ValueError(f"unknown int8 recipe {recipe!r}: choose one of {sorted(INT8_RECIPES)}")
    chosen = INT8_RECIPES[recipe]
    layers = {name for name, m in tower.named_modules() if isinstance(m, nn.Linear) and chosen(name)}
    if not layers:
        raise ValueError(f"int8 recipe {recipe!r} selects no nn.Linear layer of this text tower")
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    copied = copy.deepcopy(tower).eval()
    with warnings.catch_warnings():  # torch 2.14's deprecation notices for torch.ao.quantization
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated", category=UserWarning)
        quantized = quantize_dynamic(copied, {name: default_dynamic_qconfig for name in layers},
                                     dtype=torch.qint8, inplace=True)
    for p in quantized.parameters():
        p.requires_grad_(False)
    return quantized


class QueryEncoder:
    """A CCRModel's ``encode_texts`` with an LRU cache and an optional int8 text tower.

    ``int8``: None (fp32, the model's own tower) or a recipe name from ``INT8_RECIPES``.
    ``cache_size``: how many distinct texts to keep (least recently used dropped first); 0 turns
    the cache off. Thread-safe: the app serves several requests at once.
    """

    def __init__(self, model, *, int8: str | None = None, cache_size: int = DEFAULT_CACHE_SIZE):
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size must be a whole number >= 0, got {cache_size!r}")
        check_finite(model, "the query encoder's model")
        self.model = model
        self.config = model.config
        self.int8 = int8
        self._made_from = weights_fingerprint(model)
        self._tower = quantize_text_tower(model.text_tower, int8) if int8 is not None else None
        self.cache_size = cache_size
        self._cache = LockedLRU(cache_size)  # text -> its embedding [D]; hits and misses per text given

    def __repr__(self) -> str:
        return (f"QueryEncoder({'int8 ' + self.int8 if self.int8 else 'fp32'}, cache {len(self._cache)}/"
                f"{self.cache_size}, model {self._made_from})")

    @property
    def source_fingerprint(self) -> str:
        """The source model's weights fingerprint, recomputed (cached until its tensors change)."""
        now = weights_fingerprint(self.model)
        if now != self._made_from:
            raise ValueError(f"the query encoder's model changed since the encoder was made (fingerprint "
                             f"{self._made_from}, now {now}): its cache and int8 copy are stale; make a new "
                             "QueryEncoder")
        return now

    @property
    def hits(self) -> int:
        return self._cache.hits

    @property
    def misses(self) -> int:
        return self._cache.misses

    def cache_info(self) -> dict[str, int]:
        return {"hits": self._cache.hits, "misses": self._cache.misses, "size": len(self._cache),
                "max_size": self.cache_size}

    def clear_cache(self) -> None:
        self._cache.clear()

    def encode_texts(self, texts: Sequence[str], language: str | None = None) -> torch.Tensor:
        """Strings -> L2-normalised float32 [N, D] on CPU, as ``CCRModel.encode_texts``; texts not in
        the cache are encoded together in one batch (each distinct text once)."""
        check_query_texts(texts, language, self.config.languages)
        found: dict[str, torch.Tensor] = {}
        for t in texts:  # each text given counts as one hit or miss, a repeat within the call too
            hit = self._cache.get(t)
            if hit is not None:
                found[t] = hit
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            fresh = self._encode(missing)
            for t, row in zip(missing, fresh):
                found[t] = row
                self._cache.put(t, row.clone())  # its own storage, not a view of the batch
        return torch.stack([found[t] for t in texts])  # a new tensor: callers cannot edit the cache

    def _encode(self, texts: list[str]) -> torch.Tensor:
        if self._tower is None:
            return self.model.encode_texts(texts)
        return self._encode_int8(texts)

    @torch.inference_mode()
    def _encode_int8(self, texts: list[str], batch_size: int = 128) -> torch.Tensor:
        """``CCRModel.encode_texts`` with the int8 tower: length-sorted batches, input order kept."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = []
        for start in range(0, len(texts), batch_size):
            enc = self.model.tokenize([texts[i] for i in order[start:start + batch_size]])
            features = self._tower(enc["input_ids"], enc["attention_mask"])
            out.append(self.model.project_text(features.to(self.model.device)).float().cpu())
        result = torch.empty(len(texts), self.config.embed_dim)
        result[torch.as_tensor(order)] = torch.cat(out)
        return result

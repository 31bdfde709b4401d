"""Masking captions for MLM, as X-VLM / CCRK's TextMaskingGenerator does.

Per caption: n = min(max_masks, max(1, round(len * probability))) positions, len counting
every token of the caption (special tokens included, as the official code counts [CLS]),
drawn uniformly among its non-special tokens; each chosen token becomes the tokenizer's mask
token with probability 0.8, a random vocabulary token with 0.1, and stays with 0.1. The
official generator also grows a position to its whole word and to skip-grams; this one masks
single tokens (a caption of the shapes world is a handful of short words).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MaskedText:
    input_ids: torch.Tensor  # [B, L] after masking
    masked: torch.Tensor  # [B, L] bool: positions MLM predicts
    labels: torch.Tensor  # [M] the original ids at the masked positions (row-major order)


def special_token_ids(tokenizer) -> set[int]:
    return set(int(i) for i in tokenizer.all_special_ids)


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, *, mask_token_id: int,
                special_ids: set[int], vocab_size: int, probability: float = 0.4, max_masks: int = 12,
                generator: torch.Generator | None = None) -> MaskedText:
    """Mask a padded batch [B, L]; every caption with a non-special token gets at least one mask."""
    if mask_token_id is None:
        raise ValueError("the tokenizer has no mask token: MLM cannot run with it")
    ids = input_ids.clone()
    masked = torch.zeros_like(ids, dtype=torch.bool)
    special = torch.zeros_like(ids, dtype=torch.bool)
    for s in special_ids:
        special |= ids == s
    candidates = attention_mask.bool() & ~special
    lengths = attention_mask.sum(1)
    for b in range(ids.shape[0]):
        cand = torch.nonzero(candidates[b]).squeeze(1)
        if len(cand) == 0:
            continue
        n = min(max_masks, max(1, int(round(float(lengths[b]) * probability))), len(cand))
        chosen = cand[torch.randperm(len(cand), generator=generator)[:n]]
        masked[b, chosen] = True
    labels = input_ids[masked]
    u = torch.rand(masked.shape, generator=generator)
    random_ids = torch.randint(0, vocab_size, masked.shape, generator=generator)
    ids = torch.where(masked & (u < 0.8), torch.full_like(ids, mask_token_id), ids)
    ids = torch.where(masked & (u >= 0.8) & (u < 0.9), random_ids, ids)
    return MaskedText(ids, masked, labels)

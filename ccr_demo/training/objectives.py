"""One training step's ITM and MLM losses through the fusion encoder (CCRK's
``get_unialign_matching_loss`` and ``get_unialign_mlm_loss``), kept out of the training loop.

Per step, with the global batch's contrastive embeddings (gathered across processes):
1. :func:`ccr_demo.training.losses.sample_matching` draws, for every image of the GLOBAL batch, its
   positive caption language (hard-positive rule by default), a hard negative text and a hard
   negative image, with a generator seeded by (seed, step): every process draws alike.
2. Each process scores its own images: B positives (image, positive text), B (negative image,
   positive text) and B (image, negative text). Negatives may live on another process: image
   memories are gathered with gradients; texts are looked up by string in the token-state
   cache, or gathered (padded) with gradients when the text tower runs.
   Two options add binding negatives (not in the paper; off = its rule): with
   ``train.itm_twin_negatives`` an image whose twin (a scene one bound property apart) is in
   the batch gets that twin as its negative image, where its positive caption is false of the
   twin; with ``train.itm_caption_negatives`` each image's caption hard negatives (one bound
   property changed, false of its scene), in its positive's language, are extra negative pairs.
3. MLM masks the positive caption and predicts it from the fusion encoder, conditioned on the
   image. Where the text tower runs, the tokens are masked at its input (a fresh pass over the
   masked ids, as the official code). Over cached token states of a locked tower, the masked
   positions' states are replaced by the fusion encoder's learned mask vector at the fusion
   input ("fusion_input"); the other positions' cached states were computed with the word
   visible, so this variant is easier than the official one, and the run's summary says which
   one it used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ccr_demo.model.modeling import CCRModel
from ccr_demo.model.text_cache import TextStateCache
from ccr_demo.training.config import ExperimentConfig
from ccr_demo.training.losses import gather_with_grad, itm_loss, mlm_loss, sample_matching
from ccr_demo.training.masking import MaskedText, mask_tokens, special_token_ids

MLM_AT_INPUT = "input"
MLM_AT_FUSION_INPUT = "fusion_input"


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_padded_with_grad(states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token states [b, L, H] of every process, padded to the longest L, with gradients."""
    _, world = _world()
    if world == 1:
        return states, mask
    length = torch.tensor([states.shape[1]], device=states.device)
    dist.all_reduce(length, op=dist.ReduceOp.MAX)
    pad = int(length.item()) - states.shape[1]
    states = F.pad(states, (0, 0, 0, pad))
    mask = F.pad(mask, (0, pad))
    return gather_with_grad(states), gather_with_grad(mask)


def corpus_vocabulary(model: CCRModel, texts, chunk: int = 4096) -> torch.Tensor:
    """Sorted token ids the captions use, plus the special tokens (train.mlm_vocabulary corpus)."""
    ids = set(special_token_ids(model.tokenizer))
    unique = sorted(set(texts))
    for i in range(0, len(unique), chunk):
        enc = model.tokenize(unique[i:i + chunk])
        ids.update(enc["input_ids"][enc["attention_mask"].bool()].unique().tolist())
    return torch.tensor(sorted(ids), dtype=torch.long)


def match_logits_by_length(raw: CCRModel, memory: torch.Tensor, states: torch.Tensor, mask: torch.Tensor,
                           chunk: int = 64) -> torch.Tensor:
    """ITM logits [P, 2] of aligned pairs, computed in chunks of similar text length, each cut to
    its longest text: the fusion encoder's cost is its padded length, and a batch mixes short
    typed-query captions with long full ones. Same values as one padded pass (padding is masked)."""
    lengths = mask.sum(1)
    order = torch.argsort(lengths, stable=True)
    parts = []
    for s in range(0, len(order), chunk):
        idx = order[s:s + chunk]
        width = int(lengths[idx].max())
        parts.append(raw.match_logits(memory[idx], states[idx, :width], mask[idx, :width]))
    return torch.cat(parts)[torch.argsort(order)]


def with_twin_negatives(draw, twin_of: torch.Tensor, exclude: torch.Tensor | None):
    """``draw`` with each image's negative image replaced by its twin where it has one in the
    batch (``twin_of`` [B], -1 for none) and its positive caption is not also true of the
    twin (``exclude`` [B images, B caption items], True where item c's caption is true of b)."""
    negative_image = draw.negative_image.clone()
    for i, t in enumerate(twin_of.tolist()):
        if t >= 0 and t != i and (exclude is None or not bool(exclude[t, i])):
            negative_image[i] = t
    return type(draw)(draw.positive, draw.negative_text, negative_image)


@dataclass
class FusionObjectives:
    """Computes {"itm": loss, "mlm": loss} for one step (only the objectives with weight > 0)."""

    cfg: ExperimentConfig
    K: int
    states_cache: TextStateCache | None = None
    vocab_ids: torch.Tensor | None = None

    @property
    def mlm_masking(self) -> str:
        return MLM_AT_FUSION_INPUT if self.states_cache is not None else MLM_AT_INPUT

    def _text_states(self, texts: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
        states, mask = self.states_cache.lookup(texts)
        return states.to(device), mask.to(device)

    def __call__(self, raw: CCRModel, image_emb: torch.Tensor, text_emb: torch.Tensor, temperature,
                 memory: torch.Tensor, local_states: torch.Tensor | None, local_mask: torch.Tensor | None,
                 local_texts: list[str], global_texts: list[str], step: int,
                 exclude: torch.Tensor | None = None, twin_of: torch.Tensor | None = None,
                 caption_negatives: list[str] | None = None,
                 caption_negative_exists: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """image_emb [Bg, D] and text_emb [Bg*K, D] are the gathered global batch; memory
        [b, 1+N, W] this process's images; local_states/mask [b*K, L, H] its captions' token
        states when the text tower ran (None with the cache). ``twin_of`` [Bg]: each image's
        twin in the global batch, -1 for none; ``caption_negatives``: this process's images'
        caption hard negatives, item-major [b, P, K] flattened, and ``caption_negative_exists``
        [b, P] which of them are real (the rest is padding)."""
        tc = self.cfg.train
        device = memory.device
        rank, _ = _world()
        b, K = memory.shape[0], self.K
        offset = rank * b
        out: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            sim = image_emb.detach().float() @ text_emb.detach().float().t() / float(temperature)
        g = torch.Generator().manual_seed(tc.seed * 1_000_003 + step * 7 + 1)
        draw = sample_matching(sim, K, tc.itm_positive, generator=g, exclude=exclude,
                               hard_fraction=tc.itm_hard_fraction)
        if tc.itm_twin_negatives and twin_of is not None:
            draw = with_twin_negatives(draw, twin_of.cpu(), None if exclude is None else torch.as_tensor(exclude).cpu())
        rows = torch.arange(offset, offset + b)
        positive = draw.positive[rows]  # global text indices, all on this process
        positive_texts = [global_texts[i] for i in positive.tolist()]

        if local_states is None:  # cached token states of a locked tower
            pos_states, pos_mask = self._text_states(positive_texts, device)
        else:
            local_pos = positive - offset * K
            pos_states, pos_mask = local_states[local_pos.to(device)], local_mask[local_pos.to(device)]

        if tc.weight("itm") > 0:
            memory_all = gather_with_grad(memory)
            neg_images = memory_all[draw.negative_image[rows].to(device)]
            neg_text_idx = draw.negative_text[rows]
            if local_states is None:
                neg_states, neg_mask = self._text_states([global_texts[i] for i in neg_text_idx.tolist()],
                                                         device)
            else:
                all_states, all_mask = gather_padded_with_grad(local_states, local_mask)
                neg_states, neg_mask = all_states[neg_text_idx.to(device)], all_mask[neg_text_idx.to(device)]
            # One fusion pass over the 3b pairs: (image, positive), (negative image, positive),
            # (image, negative text); texts padded to a common length.
            length = max(pos_states.shape[1], neg_states.shape[1])
            pad = lambda x, m: (F.pad(x, (0, 0, 0, length - x.shape[1])), F.pad(m, (0, length - m.shape[1])))  # noqa: E731
            ps, pm = pad(pos_states, pos_mask)
            ns, nm = pad(neg_states, neg_mask)
            memories, states, masks = [memory, neg_images, memory], [ps, ps, ns], [pm, pm, nm]
            if tc.itm_caption_negatives and caption_negatives is not None:
                # (image, a caption of its own scene with one bound property changed), in the
                # language of its positive: the pairs only a model that binds can call false.
                P = caption_negative_exists.shape[1]
                lang = ((positive - offset * K) % K).tolist()
                pairs = [(r, caption_negatives[(r * P + m) * K + lang[r]])
                         for r in range(b) for m in range(P) if bool(caption_negative_exists[r, m])]
                if pairs:
                    cs, cm = self._text_states([t for _, t in pairs], device)
                    length = max(length, cs.shape[1])
                    memories.append(memory[torch.tensor([r for r, _ in pairs], device=device)])
                    states.append(cs)
                    masks.append(cm)
            widen = lambda x, m: (F.pad(x, (0, 0, 0, length - x.shape[1])), F.pad(m, (0, length - m.shape[1])))  # noqa: E731
            states, masks = zip(*(widen(x, m) for x, m in zip(states, masks)))
            logits = match_logits_by_length(raw, torch.cat(memories), torch.cat(states), torch.cat(masks))
            out["itm"] = itm_loss(logits[:b], logits[b:])

        if tc.weight("mlm") > 0:
            all_positive_texts = [global_texts[i] for i in draw.positive.tolist()]
            out["mlm"] = self._mlm(raw, memory, all_positive_texts, rows, pos_states, step)
        return out

    def _mlm(self, raw: CCRModel, memory, all_texts: list[str], rows: torch.Tensor, pos_states, step: int
             ) -> torch.Tensor:
        """MLM on every process's positive captions: masks are drawn for the GLOBAL batch (so N
        processes mask as one does) and the loss is scaled so that DDP's gradient average gives
        the mean over all the global batch's masked tokens."""
        tc = self.cfg.train
        device = memory.device
        enc = raw.tokenize(all_texts)
        g = torch.Generator().manual_seed(tc.seed * 1_000_003 + step * 7 + 2)
        vocab = raw.text_tower.input_embeddings().num_embeddings
        masked_all = mask_tokens(enc["input_ids"], enc["attention_mask"], mask_token_id=raw.tokenizer.mask_token_id,
                                 special_ids=special_token_ids(raw.tokenizer), vocab_size=vocab,
                                 probability=tc.mlm_probability, max_masks=tc.mlm_max_masks, generator=g)
        n_masked_global = int(masked_all.masked.sum())
        length = int(enc["attention_mask"][rows].sum(1).max())  # this process's longest caption
        mask = enc["attention_mask"][rows, :length].to(device)
        local_masked = masked_all.masked[rows, :length]
        masked = MaskedText(masked_all.input_ids[rows, :length], local_masked,
                            enc["input_ids"][rows, :length][local_masked])
        if self.states_cache is not None:
            if pos_states.shape[1] != masked.masked.shape[1]:
                raise RuntimeError(f"cached token states have {pos_states.shape[1]} positions, the tokenizer "
                                   f"gives {masked.masked.shape[1]}: the cache belongs to another tokenizer setting")
            states = raw.fusion.mask_states(pos_states, masked.masked.to(device))
        else:
            states = raw.text_states(masked.input_ids.to(device), mask)
        fused = raw.fuse(states, mask, memory)
        at_masks = fused[masked.masked.to(device)]
        labels = masked.labels.to(device)
        vocab_ids = None
        if self.vocab_ids is not None:
            vocab_ids = self.vocab_ids.to(device)
            labels = torch.searchsorted(vocab_ids, labels)
        logits = raw.fusion.mlm_logits(at_masks, raw.text_tower.input_embeddings().weight, vocab_ids)
        _, world = _world()
        return mlm_loss(logits, labels) * (len(labels) * world / n_masked_global)

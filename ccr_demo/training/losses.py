"""Contrastive losses: the paper's 1-to-K loss and the two baselines it is compared with.

All take L2-normalised embeddings and a temperature tau (scores are dot products / tau).
In multi-process training, gather features WITH gradients first (``gather_with_grad``) so
that N processes with batch b train exactly like one process with batch N*b.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

LOSS_MODES = ("official", "balanced")


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every process along dim 0, keeping gradients to every slice.

    Identity when torch.distributed is not initialised or has one process. The backward of
    ``torch.distributed.nn.functional.all_gather`` sums the gradients every process computed
    for this process's slice, which (after DDP's gradient averaging) gives the gradient of
    the global-batch loss.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    import warnings

    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():  # deprecated for a private replacement; still the public autograd path
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(x.contiguous()), dim=0)


def _check_embeddings(name: str, x: torch.Tensor, ndim: int, check_finite: bool) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        shape = "[B, D]" if ndim == 2 else "[B, K, D]"
        raise ValueError(f"{name} must be {shape}, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (B=0)")
    if ndim == 3 and x.shape[1] == 0:
        raise ValueError(f"{name} has K=0 captions per image")
    if check_finite and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def _check_pair(image_emb, text_emb, text_ndim: int, check_finite: bool) -> None:
    _check_embeddings("image_emb", image_emb, 2, check_finite)
    _check_embeddings("text_emb", text_emb, text_ndim, check_finite)
    if image_emb.shape[0] != text_emb.shape[0]:
        raise ValueError(f"batch sizes differ: image_emb has B={image_emb.shape[0]}, "
                         f"text_emb has B={text_emb.shape[0]}")
    if image_emb.shape[-1] != text_emb.shape[-1]:
        raise ValueError(f"embedding sizes differ: image_emb D={image_emb.shape[-1]}, text_emb D={text_emb.shape[-1]}")


def _check_temperature(temperature) -> torch.Tensor | float:
    t = temperature.detach() if isinstance(temperature, torch.Tensor) else torch.tensor(float(temperature))
    if t.numel() != 1 or not torch.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be one positive finite number, got {temperature!r}")
    return temperature


def _check_exclude(exclude: torch.Tensor | None, B: int, device) -> torch.Tensor | None:
    """``exclude[b, c]``: item c's caption is also true of image b (a known false negative).

    Such pairs leave both softmaxes, so a partial caption ("a red star") is not pushed away
    from the other images in the batch that also show a red star. None: the paper's loss.
    """
    if exclude is None:
        return None
    exclude = torch.as_tensor(exclude, device=device)
    if exclude.dtype != torch.bool or exclude.shape != (B, B):
        raise ValueError(f"exclude must be a bool [B, B] = [{B}, {B}] mask, got {exclude.dtype} {tuple(exclude.shape)}")
    if exclude.diagonal().any():
        raise ValueError("exclude must not mask an item's own (positive) pair: its diagonal must be False")
    return exclude


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE between row-aligned a[B,D] and b[B,D] (pair i is the positive);
    ``exclude`` [B, B] drops known false-negative pairs (a_i, b_j) from both directions."""
    logits = a @ b.t() / temperature
    exclude = _check_exclude(exclude, a.shape[0], a.device)
    if exclude is not None:
        logits = logits.masked_fill(exclude, float("-inf"))
    labels = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def _negative_scores(image_emb: torch.Tensor, negatives: torch.Tensor, mask: torch.Tensor | None,
                     temperature) -> torch.Tensor:
    """[B, M] scores of the images against hard-negative texts, -inf where ``mask`` is False."""
    if negatives.ndim != 2 or negatives.shape[1] != image_emb.shape[1]:
        raise ValueError(f"negatives must be [M, {image_emb.shape[1]}], got {tuple(negatives.shape)}")
    if mask is None or mask.dtype != torch.bool or mask.shape != (image_emb.shape[0], negatives.shape[0]):
        raise ValueError(f"negatives_mask must be a bool [B, M] = [{image_emb.shape[0]}, {negatives.shape[0]}] mask")
    return (image_emb @ negatives.t() / temperature).masked_fill(~mask.to(image_emb.device), float("-inf"))


def one_to_k_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, temperature, mode: str = "official",
                  check_finite: bool = True, exclude: torch.Tensor | None = None,
                  negatives: torch.Tensor | None = None, negatives_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The 1-to-K contrastive loss (PAPER.md), each image against its K captions at once.

    image_emb [B, D], text_emb [B, K, D] (caption k of image b in language k).

    ``official`` is the CCRK code exactly: image->text is ONE softmax over all B*K texts
    with the image's K captions all as unnormalised positives; text->image a softmax over
    the B images; loss = (L_i2t + L_t2i) / 2 / K, which weighs text->image 1/K as much.
    ``balanced`` averages both directions over the K languages with equal weight:
    loss = (mean_k i2t_k + mean_k t2i_k) / 2. For K=1 both equal symmetric InfoNCE.
    Both are invariant to the order of the K languages.

    ``exclude`` [B, B] (optional, not in the paper): exclude[b, c] removes image b / the K
    captions of image c from each other's softmax, for captions known to be true of several
    images in the batch (partial captions).

    ``negatives`` [M, D] with ``negatives_mask`` bool [B, M] (optional, not in the paper; NegCLIP's
    caption hard negatives): extra texts in the image->text softmax only, text m against image b
    where the mask is True (a negative that is true of an image is left out of its row). They
    have no image, so text->image is unchanged. None gives the paper's loss exactly.
    """
    if mode not in LOSS_MODES:
        raise ValueError(f"mode must be one of {LOSS_MODES}, got {mode!r}")
    _check_pair(image_emb, text_emb, 3, check_finite)
    _check_temperature(temperature)
    B, K, D = text_emb.shape
    texts = text_emb.reshape(B * K, D)
    sim_i2t = image_emb @ texts.t() / temperature  # [B, B*K]; text index c*K + k
    exclude = _check_exclude(exclude, B, image_emb.device)
    if exclude is not None:
        sim_i2t = sim_i2t.masked_fill(exclude.repeat_interleave(K, dim=1), float("-inf"))
    if negatives is not None:
        sim_i2t_all = torch.cat([sim_i2t, _negative_scores(image_emb, negatives, negatives_mask, temperature)], 1)
        log_p_i2t = F.log_softmax(sim_i2t_all, dim=1)[:, :B * K].reshape(B, B, K)
    else:
        log_p_i2t = F.log_softmax(sim_i2t, dim=1).view(B, B, K)
    idx = torch.arange(B, device=image_emb.device)
    # positives: row b, texts of image b -> [B, K]
    i2t_pos = log_p_i2t[idx, idx]  # [B, K]
    log_p_t2i = F.log_softmax(sim_i2t.t(), dim=1).view(B, K, B)  # text (b,k) over images
    t2i_pos = log_p_t2i[idx, :, idx]  # [B, K]
    loss_i2t = -i2t_pos.sum(1).mean()  # (1/B) sum_b sum_k
    loss_t2i = -t2i_pos.mean()  # (1/BK) sum_b sum_k
    if mode == "official":
        return (loss_i2t + loss_t2i) / 2 / K
    return (loss_i2t / K + loss_t2i) / 2


def one_to_one_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, temperature,
                    check_finite: bool = True, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-modal-style baseline (CCLM): each image with ONE caption, symmetric InfoNCE.

    The trainer draws the caption's language uniformly at random per image per step.
    ``exclude`` as in :func:`one_to_k_loss`.
    """
    _check_pair(image_emb, text_emb, 2, check_finite)
    _check_temperature(temperature)
    return info_nce(image_emb, text_emb, temperature, exclude)


def pivot_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, temperature, pivot_index: int = 0,
               other_index: torch.Tensor | None = None, check_finite: bool = True,
               exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-lingual-style baseline: ITC(image, pivot) + text-text contrast (pivot, other).

    text_emb [B, K, D]; ``pivot_index`` is the pivot language's position (English).
    ``other_index`` [B] picks each image's non-pivot caption (the trainer draws it at
    random); with None every non-pivot language is used and their terms are averaged.
    ``exclude`` (as in :func:`one_to_k_loss`) applies to the image-pivot term.
    """
    _check_pair(image_emb, text_emb, 3, check_finite)
    _check_temperature(temperature)
    B, K, _ = text_emb.shape
    if not 0 <= pivot_index < K:
        raise ValueError(f"pivot_index {pivot_index} is out of range for K={K}")
    if K < 2:
        raise ValueError("pivot_loss needs K >= 2 (the pivot and at least one other language)")
    pivot = text_emb[:, pivot_index]
    itc = info_nce(image_emb, pivot, temperature, exclude)
    if other_index is None:
        others = [k for k in range(K) if k != pivot_index]
        ttc = torch.stack([info_nce(pivot, text_emb[:, k], temperature) for k in others]).mean()
    else:
        other_index = torch.as_tensor(other_index, device=text_emb.device)
        if other_index.shape != (B,):
            raise ValueError(f"other_index must have shape [{B}], got {tuple(other_index.shape)}")
        if ((other_index < 0) | (other_index >= K) | (other_index == pivot_index)).any():
            raise ValueError("other_index must pick non-pivot languages in [0, K)")
        other = text_emb[torch.arange(B, device=text_emb.device), other_index]
        ttc = info_nce(pivot, other, temperature)
    return itc + ttc


# ------------------------------------------------------------------ matching (ITM)
ITM_POSITIVES = ("hard", "uniform", "similarity")


def positive_language_weights(sim_i2t: torch.Tensor, K: int, rule: str = "hard") -> torch.Tensor:
    """P(caption k of image b is b's ITM positive) [B, K], from the scores sim_i2t [B, B*K]
    (dot products / temperature; text c*K + k is caption k of image c).

    ``hard`` (official xvlm.py, neg_sample_type 1, the default): w = softmax(sim, dim=1) + 1e-5;
    u[b, k] = max(w) + 1e-5 - w[b, b*K + k] with max over the WHOLE matrix w; p = u / sum_k u.
    The caption the model matches worst is the most likely positive.
    ``uniform`` (type 0): 1/K each. ``similarity`` (type 2): as hard with sim in place of w.
    """
    if rule not in ITM_POSITIVES:
        raise ValueError(f"rule must be one of {ITM_POSITIVES}, got {rule!r}")
    B = sim_i2t.shape[0]
    if sim_i2t.ndim != 2 or sim_i2t.shape[1] != B * K:
        raise ValueError(f"sim_i2t must be [B, B*K] = [{B}, {B * K}], got {tuple(sim_i2t.shape)}")
    sim_i2t = sim_i2t.detach().float()
    if rule == "uniform":
        return torch.full((B, K), 1.0 / K, device=sim_i2t.device)
    w = F.softmax(sim_i2t, dim=1) + 1e-5 if rule == "hard" else sim_i2t
    own = w.view(B, B, K)[torch.arange(B), torch.arange(B)]  # [B, K]: w[b, b*K:(b+1)*K]
    u = w.max() + 1e-5 - own
    return u / u.sum(1, keepdim=True)


def hard_positive_weights(sim_i2t: torch.Tensor, K: int) -> torch.Tensor:
    """The official 1-to-K hard-positive rule (see :func:`positive_language_weights`)."""
    return positive_language_weights(sim_i2t, K, "hard")


@dataclass
class MatchingDraw:
    """One step's ITM pairs, as indices into the (global) batch.

    positive[b]: b's positive text (index into the B*K texts); negative_text[b]: a hard
    negative text for image b; negative_image[b]: a hard negative image for b's positive text.
    """

    positive: torch.Tensor
    negative_text: torch.Tensor
    negative_image: torch.Tensor


def negative_weights(sim_i2t: torch.Tensor, K: int, exclude: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard-negative sampling weights (w_i2t [B, B*K], w_t2i [B*K, B]) as the official code:
    softmax + 1e-5 with every positive pair zeroed (an image's K captions; and ``exclude``'s
    known false negatives). A row left all zero (every other item excluded) falls back to
    uniform over the non-positive items, so a positive is never drawn as a negative."""
    B = sim_i2t.shape[0]
    sim = sim_i2t.detach().float()
    w_i2t = F.softmax(sim, dim=1) + 1e-5
    w_t2i = F.softmax(sim.t(), dim=1) + 1e-5
    owner = torch.arange(B * K, device=sim.device) // K  # image of text t
    positive = owner.unsqueeze(0) == torch.arange(B, device=sim.device).unsqueeze(1)  # [B, B*K]
    blocked = positive.clone()
    if exclude is not None:
        exclude = _check_exclude(exclude, B, sim.device)
        blocked |= exclude.repeat_interleave(K, dim=1)
    w_i2t = w_i2t.masked_fill(blocked, 0.0)
    w_t2i = w_t2i.masked_fill(blocked.t(), 0.0)
    w_i2t = torch.where(w_i2t.sum(1, keepdim=True) > 0, w_i2t, (~positive).float())
    w_t2i = torch.where(w_t2i.sum(1, keepdim=True) > 0, w_t2i, (~positive.t()).float())
    return w_i2t, w_t2i


def sample_matching(sim_i2t: torch.Tensor, K: int, rule: str = "hard", generator: torch.Generator | None = None,
                    exclude: torch.Tensor | None = None, hard_fraction: float = 1.0) -> MatchingDraw:
    """Draw the 1-to-K ITM pairs for a batch (official ``get_unialign_matching_loss``): per image
    a positive language (:func:`positive_language_weights`), a hard negative text from its row
    and a hard negative image from its positive text's column (:func:`negative_weights`).
    Sampling runs on the CPU with ``generator``, so every process of a run draws alike.

    ``hard_fraction`` < 1 (not in the paper; 1 = the official rule) draws each negative from
    the hard weights with that probability, else uniformly among the allowed items: a fusion
    encoder trained from scratch learns coarse matching from easy negatives before hard ones
    teach it the fine differences (docs/analysis/default_ccrk.md)."""
    B = sim_i2t.shape[0]
    if B < 2:
        raise ValueError("ITM needs at least 2 images in the batch (negatives come from the batch)")
    sim = sim_i2t.detach().float().cpu()
    p = positive_language_weights(sim, K, rule)
    k = torch.multinomial(p, 1, generator=generator).squeeze(1)
    positive = torch.arange(B) * K + k
    if not 0.0 <= hard_fraction <= 1.0:
        raise ValueError(f"hard_fraction must be in [0, 1], got {hard_fraction}")
    w_i2t, w_t2i = negative_weights(sim, K, None if exclude is None else torch.as_tensor(exclude).cpu())
    w_img = w_t2i[positive]
    if hard_fraction < 1.0:  # per negative: the hard weights, or uniform over what they allow
        easy = torch.rand(2, B, 1, generator=generator) >= hard_fraction
        w_i2t = torch.where(easy[0], (w_i2t > 0).float(), w_i2t)
        w_img = torch.where(easy[1], (w_img > 0).float(), w_img)
    negative_text = torch.multinomial(w_i2t, 1, generator=generator).squeeze(1)
    negative_image = torch.multinomial(w_img, 1, generator=generator).squeeze(1)
    return MatchingDraw(positive, negative_text, negative_image)


def itm_loss(positive_logits: torch.Tensor, negative_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over B positive pairs (label 1) and 2B negative pairs (label 0), [*, 2] logits."""
    logits = torch.cat([positive_logits, negative_logits])
    labels = torch.cat([torch.ones(len(positive_logits), dtype=torch.long),
                        torch.zeros(len(negative_logits), dtype=torch.long)]).to(logits.device)
    return F.cross_entropy(logits.float(), labels)


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the masked tokens: logits [M, V] at the M masked positions, labels [M]."""
    if logits.shape[0] == 0:
        raise ValueError("mlm_loss got no masked token")
    return F.cross_entropy(logits.float(), labels)

"""The cross-modal fusion encoder of CCRK / X-VLM, with its ITM and MLM heads.

Text token states (the text tower's last hidden states) attend to image tokens (the image
tower's last feature map, plus its pooled vector as a leading "CLS" token) through layers
of torch's ``nn.TransformerDecoderLayer``: bidirectional self-attention over the text (no
target mask is ever passed), cross-attention to the image, feed-forward; post-norm as in
BERT. Not transformers' BertLayer: in transformers 5 it only cross-attends as a decoder,
which makes its self-attention causal.

- ITM head: an MLP on the first text position's fused state -> 2 logits (no match, match),
  the official ``build_mlp`` shape (Linear, LayerNorm, GELU, Linear).
- MLM head: BERT's transform (Linear, GELU, LayerNorm) then logits against the text tower's
  own token-embedding matrix (weights tied, as BERT / XLM-R do) plus a bias per token.
  ``vocab_ids`` restricts the softmax to a subset of the vocabulary (a training-time saving
  for a corpus that uses a few thousand of XLM-R's 250k tokens; the full vocabulary is the
  official setting).
- ``mask_state``: the learned vector a masked position gets when MLM masks cached token
  states at the fusion input (a locked, cached text tower cannot see the masked ids).

``model.fusion.inputs: projected`` (see ModelConfig) makes CCRModel hand it tokens through the
projection heads instead of the towers' raw outputs; this module is the same either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ccr_demo.model.configuration import FusionConfig


class FusionEncoder(nn.Module):
    def __init__(self, cfg: FusionConfig, text_width: int, image_width: int, num_image_tokens: int,
                 vocab_size: int, token_width: int | None = None):
        """``text_width`` / ``image_width``: sizes of the text states and image tokens it reads;
        ``token_width``: the text tower's hidden size (the MLM head's output space and the mask
        vector's size; equal to ``text_width`` unless the inputs are projected)."""
        super().__init__()
        width = cfg.width or text_width
        if width % cfg.heads:
            raise ValueError(f"fusion width {width} is not divisible by {cfg.heads} heads")
        token_width = token_width or text_width
        self.width, self.text_width, self.token_width = width, text_width, token_width
        self.num_image_tokens = num_image_tokens
        self.text_in = nn.Identity() if width == text_width else nn.Linear(text_width, width)
        self.image_in = nn.Linear(image_width, width)
        # Positions of the image tokens (token 0 is the pooled vector): a CNN feature map's
        # tokens carry no position of their own, and "on the left" needs one.
        self.image_position = nn.Parameter(torch.zeros(1, num_image_tokens + 1, width))
        nn.init.trunc_normal_(self.image_position, std=0.02)
        self.mask_state = nn.Parameter(torch.zeros(token_width))
        nn.init.trunc_normal_(self.mask_state, std=0.02)
        layer = nn.TransformerDecoderLayer(width, cfg.heads, dim_feedforward=cfg.ffn_ratio * width,
                                           dropout=cfg.dropout, activation="gelu", batch_first=True)
        self.layers = nn.TransformerDecoder(layer, num_layers=cfg.layers)
        self.itm_head = nn.Sequential(nn.Linear(width, 2 * width), nn.LayerNorm(2 * width), nn.GELU(),
                                      nn.Linear(2 * width, 2))
        self.mlm_transform = nn.Sequential(nn.Linear(width, token_width), nn.GELU(), nn.LayerNorm(token_width))
        self.mlm_bias = nn.Parameter(torch.zeros(vocab_size))

    def image_memory(self, pooled: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Image tower outputs -> the sequence the text cross-attends to [B, 1+N, W]."""
        if tokens.shape[1] != self.num_image_tokens:
            raise ValueError(f"the image tower gave {tokens.shape[1]} tokens, the fusion encoder was built "
                             f"for {self.num_image_tokens}: images must be preprocessed at the model's image_size")
        x = torch.cat([pooled.unsqueeze(1), tokens], dim=1)
        return self.image_in(x) + self.image_position

    def forward(self, text_states: torch.Tensor, text_mask: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """text_states [B, L, H], text_mask [B, L] (1 = token), memory [B, 1+N, W] -> fused [B, L, W]."""
        if text_states.shape[0] != memory.shape[0]:
            raise ValueError(f"{text_states.shape[0]} texts for {memory.shape[0]} images: pairs must align")
        padding = ~text_mask.bool()
        return self.layers(self.text_in(text_states), memory, tgt_key_padding_mask=padding,
                           tgt_is_causal=False)

    def mask_states(self, text_states: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Replace the states at ``masked`` [B, L] (bool) with the learned mask vector."""
        return torch.where(masked.unsqueeze(-1), self.mask_state.to(text_states.dtype), text_states)

    def itm_logits(self, fused: torch.Tensor) -> torch.Tensor:
        """[B, L, W] -> [B, 2]: logit 1 is "this text describes this image"."""
        return self.itm_head(fused[:, 0])

    def mlm_logits(self, fused_at_masks: torch.Tensor, token_embeddings: torch.Tensor,
                   vocab_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Fused states at masked positions [M, W] -> logits [M, V] (or [M, len(vocab_ids)])."""
        h = self.mlm_transform(fused_at_masks)
        weight, bias = token_embeddings, self.mlm_bias
        if vocab_ids is not None:
            weight, bias = weight[vocab_ids], bias[vocab_ids]
        return F.linear(h, weight.to(h.dtype), bias.to(h.dtype))

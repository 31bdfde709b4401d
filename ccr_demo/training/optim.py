"""The optimiser side of a run: which parameters train (`freeze_unused_heads`), AdamW with its
parameter groups (pretrained towers at ``train.lr``, new parts at ``train.new_lr``, no decay on
1-d parameters), the warmup-then-linear-decay schedule and the temperature clamp."""

from __future__ import annotations

import torch

from ccr_demo.model.modeling import CCRModel
from ccr_demo.training.config import ExperimentConfig, needs_token_states


def freeze_unused_heads(model: CCRModel, cfg: ExperimentConfig) -> None:
    """Fusion parts no objective of the run trains get no gradient (DDP requires every trained
    parameter to receive one each step)."""
    fusion, tc = model.fusion, cfg.train
    if fusion is None:
        return
    unused = []
    if tc.weight("itm") == 0:
        unused.append(fusion.itm_head)
    if tc.weight("mlm") == 0:
        unused += [fusion.mlm_transform, fusion.mlm_bias]
    if tc.weight("mlm") == 0 or not needs_token_states(cfg):  # the mask vector serves cached states only
        unused.append(fusion.mask_state)
    if tc.weight("itm") == 0 and tc.weight("mlm") == 0:
        unused = [fusion]
    for part in unused:
        for p in ([part] if isinstance(part, torch.nn.Parameter) else part.parameters()):
            p.requires_grad_(False)


def param_groups(model: CCRModel, cfg: ExperimentConfig) -> list[dict]:
    """AdamW groups: pretrained towers at ``lr``, new parts at ``train.new_lr``; no decay on 1-d params."""
    from ccr_demo.model.wheels import is_wheel_tower

    def pretrained(part: str) -> bool:
        if part == "image_tower":
            return cfg.model.image_pretrained or is_wheel_tower(cfg.model.image_tower)
        return cfg.model.text_tower != "random:bert" and not cfg.model.text_tower.startswith("config:")

    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = name.split(".", 1)[0]
        lr = cfg.train.lr if part in ("image_tower", "text_tower") and pretrained(part) else cfg.train.new_lr
        wd = 0.0 if p.ndim <= 1 else cfg.train.weight_decay
        groups.setdefault((lr, wd), []).append(p)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


def build_optimizer(model: CCRModel, cfg: ExperimentConfig) -> torch.optim.AdamW:
    """AdamW over ``param_groups`` with the run's betas (official: 0.9, 0.98)."""
    return torch.optim.AdamW(param_groups(model, cfg), betas=tuple(float(b) for b in cfg.train.adam_betas))


def clamp_temperature(model: CCRModel) -> None:
    """Clamp the learnable temperature into [min, max] in place (official, after every step):
    a parameter kept inside its range keeps a gradient, one left outside the read clamp has none."""
    with torch.no_grad():
        model.temperature.clamp_(model.config.min_temperature, model.config.max_temperature)


def linear_warmup_decay(optimizer, total_steps: int, warmup_steps: int):
    """Linear warmup to each group's lr, then linear decay to 0 (the paper's schedule)."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

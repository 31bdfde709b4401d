"""The training loop behind ``accelerate launch train/pretrain.py`` (the script only parses arguments).

Design points (see README "Training"):
- Every process draws its slice of one seeded global batch, and features are gathered WITH
  gradients before the loss, so N processes with batch b train like 1 process with N*b.
- Gradient accumulation sums gradients of micro-batches; each micro-batch is its own
  contrastive batch (negatives come from the micro-batch only, as in open_clip without
  its feature cache), so accumulation grows the optimiser batch, not the contrastive one.
- Checkpoints (model, optimizer, scheduler, every process's RNG states, counters, history,
  timing; safetensors and JSON only, nothing is unpickled on resume) are written to a
  temporary folder and renamed, and a ``latest.json`` pointer is replaced atomically: a killed
  run never leaves a corrupt "latest". The data order is a pure function of (seed, epoch) and
  the DataLoader draws its worker seed from its own generator, not the global one, so
  ``--resume`` replays exactly the batches and dropout masks an uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker
from accelerate.utils import gather_object, set_seed
from safetensors.torch import load_model, save_file, save_model
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from ccr_demo.data.formats import ParallelTestSet
from ccr_demo.data.queries import QuerySet
from ccr_demo.eval.evaluate import evaluate
from ccr_demo.eval.tables import eval_results, report_table
from ccr_demo.model.modeling import CCRModel
from ccr_demo.model.text_cache import TextFeatureCache, TextStateCache
from ccr_demo.training.config import ExperimentConfig
from ccr_demo.training.datasets import (
    MultilingualPretrainDataset,
    build_train_dataset,
    check_data_config,
    collate_pretrain,
    load_eval_queries,
    load_eval_set,
)
from ccr_demo.training.losses import gather_with_grad, one_to_k_loss, one_to_one_loss, pivot_loss
from ccr_demo.training.objectives import FusionObjectives, corpus_vocabulary
from ccr_demo.utils.config import save_json, to_dict
from ccr_demo.utils.fileio import atomic_write_json

logger = logging.getLogger("ccr_demo.training.loop")

LATEST = "latest.json"


class JSONLinesTracker(GeneralTracker):
    """An accelerate tracker writing one JSON object per log call: readable with no extra package."""

    name = "jsonl"
    requires_logging_directory = True
    main_process_only = True

    def __init__(self, run_name: str, logging_dir: str | Path):
        super().__init__()
        self.path = Path(logging_dir) / f"{run_name}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def tracker(self):
        return self.path

    def store_init_configuration(self, values: dict):
        self.log({"config": values})

    def log(self, values: dict, step: int | None = None, **kwargs):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "time": time.time(), **values}, default=str) + "\n")


def _trackers(tc, out: Path):
    """train.log_with -> accelerate's log_with: "jsonl" (built in here), any accelerate tracker, or none."""
    if tc.log_with in ("", "none"):
        return None
    if tc.log_with == "jsonl":
        return [JSONLinesTracker("train_log", out / "logs")]
    return tc.log_with


class GlobalBatchSampler(Sampler):
    """This process's slice of seeded global batches: epoch e's order is permutation(seed, e).

    Global batch j holds items perm[j*G:(j+1)*G] with G = batch_size * world_size; process r
    takes its r-th contiguous slice of b items, so gathering slices in rank order rebuilds
    exactly the batch a single process with batch G would see. The last partial global
    batch is dropped (a contrastive batch needs the same size on every process).
    """

    def __init__(self, n: int, batch_size: int, world_size: int, rank: int, seed: int):
        self.n, self.b, self.world, self.rank, self.seed = n, batch_size, world_size, rank, seed
        self.epoch, self.start = 0, 0
        if self.batches_per_epoch == 0:
            raise ValueError(f"{n} training items are fewer than one global batch of {batch_size} x {world_size} "
                             "processes: lower train.batch_size or add data")

    @property
    def batches_per_epoch(self) -> int:
        return self.n // (self.b * self.world)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start = epoch, start_batch

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start

    def __iter__(self) -> Iterator[list[int]]:
        perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        G = self.b * self.world
        for j in range(self.start, self.batches_per_epoch):
            chunk = perm[j * G + self.rank * self.b: j * G + (self.rank + 1) * self.b]
            yield chunk.tolist()


@dataclass
class TrainState:
    """Counters saved next to accelerate's state so a resumed run continues the same schedule."""

    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of `epoch` already consumed
    step: int = 0  # optimiser steps done
    micro_step: int = 0
    last_loss: float | None = None  # loss of the last micro-batch trained
    train_seconds: float = 0.0  # training time of all sessions up to this checkpoint
    history: list = field(default_factory=list)  # the logged rows of all sessions


def build_model(cfg: ExperimentConfig) -> CCRModel:
    model = CCRModel(cfg.model)
    if cfg.train.init_from:
        init_from_pretrained(model, cfg.train.init_from)
    if cfg.train.lock_image:
        model.lock_image_tower()
    if cfg.train.lock_text:
        model.lock_text_tower()
    freeze_unused_heads(model, cfg)
    return model


def init_from_pretrained(model: CCRModel, folder: str) -> list[str]:
    """Copy a saved model's weights into ``model`` (train.init_from): the towers, projections
    and temperature of e.g. a trained dual encoder, under a new fusion encoder. Returns the
    top-level parts that keep their fresh initialisation. Towers and sizes must match."""
    source = CCRModel.from_pretrained(folder)
    a, b = source.config, model.config
    differ = [k for k in ("image_tower", "text_tower", "text_pooling", "text_prefix", "embed_dim",
                          "projection") if getattr(a, k) != getattr(b, k)]
    if differ:
        raise ValueError(f"train.init_from {folder}: its model differs in {differ} "
                         f"({[getattr(a, k) for k in differ]} vs {[getattr(b, k) for k in differ]})")
    own = model.state_dict()
    state = {k: v for k, v in source.state_dict().items() if k in own}
    key = "fusion.image_position"  # another image size (fine-tuning at 384 px after 224): resize the grid
    if key in state and state[key].shape != own[key].shape:
        state[key] = resize_image_positions(state[key], own[key].shape[1] - 1)
    wrong = [k for k, v in state.items() if v.shape != own[k].shape]
    if wrong:
        raise ValueError(f"train.init_from {folder}: tensors of other shapes, e.g. {wrong[0]}")
    missing, _ = model.load_state_dict(state, strict=False)
    return sorted({k.split(".", 1)[0] for k in missing})


def resize_image_positions(table: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """[1, 1+N, W] learned image-token positions (token 0: the pooled vector) -> [1, 1+n_tokens, W],
    the square grid resized bicubically, as ViT position embeddings are for a new resolution."""
    old, new = table.shape[1] - 1, n_tokens
    side_old, side_new = math.isqrt(old), math.isqrt(new)
    if side_old ** 2 != old or side_new ** 2 != new:
        raise ValueError(f"image-token positions: cannot resize a {old}-token grid to {new} tokens (not square)")
    grid = table[:, 1:].reshape(1, side_old, side_old, -1).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, size=(side_new, side_new), mode="bicubic", align_corners=False)
    return torch.cat([table[:, :1], grid.permute(0, 2, 3, 1).reshape(1, new, -1)], dim=1)


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
    from ccr_demo.model.wheels import is_offline_tower

    def pretrained(part: str) -> bool:
        if part == "image_tower":
            return cfg.model.image_pretrained or is_offline_tower(cfg.model.image_tower)
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


def compute_loss(cfg: ExperimentConfig, image_emb: torch.Tensor, text_emb: torch.Tensor, temperature,
                 K: int, step: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Dispatch on train.loss; text_emb is [B*K, D] (one_to_k, pivot) or [B, D] (one_to_one).
    ``exclude``: the global batch's known false negatives (train.exclude_false_negatives)."""
    B = image_emb.shape[0]
    if cfg.train.loss == "one_to_one":
        return one_to_one_loss(image_emb, text_emb, temperature, exclude=exclude)
    text_emb = text_emb.view(B, K, -1)
    if cfg.train.loss == "one_to_k":
        return one_to_k_loss(image_emb, text_emb, temperature, mode=cfg.train.loss_mode, exclude=exclude)
    pivot = cfg.languages.index(cfg.train.pivot_language)
    # Same draw on every process (seeded by step): the gathered batch sees one choice.
    g = torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + step)
    other = torch.randint(0, K - 1, (B,), generator=g)
    other = other + (other >= pivot).long()
    return pivot_loss(image_emb, text_emb, temperature, pivot, other_index=other.to(text_emb.device),
                      exclude=exclude)


# --------------------------------------------------------------------- checkpoints
# A checkpoint folder holds only safetensors and JSON: resuming never unpickles anything (a
# planted pickle would run code). accelerate's save_state/load_state is not used because it
# writes the optimizer, scheduler and RNG states as pickles (and ignores a corrupt RNG file).
CKPT_FORMAT = 2
CKPT_MODEL = "model.safetensors"
CKPT_OPTIMIZER = "optimizer.safetensors"
CKPT_RNG = "rng_state_{rank}.safetensors"
CKPT_STATE = "train_state.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from exactly: the message names the file and the problem."""


def _checkpoint_root(cfg: ExperimentConfig) -> Path:
    return Path(cfg.train.output_dir) / "checkpoints"


def latest_checkpoint(cfg: ExperimentConfig) -> Path | None:
    """The newest complete checkpoint. A folder is renamed into place only once fully
    written, so ``step_*`` folders are always complete; ``.tmp_*`` ones (a run killed
    mid-save) are ignored. latest.json is a human-readable pointer to the same folder."""
    done = [p for p in _checkpoint_root(cfg).glob("step_*") if (p / CKPT_STATE).is_file()]
    return max(done, key=lambda p: p.name) if done else None


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Delete the torn leftovers of a killed run in ``out``: only what this trainer names as
    temporary (a checkpoint or model folder that was never renamed into place, half-written
    JSON files); complete checkpoints, the model and anything else are left alone."""
    patterns = [("checkpoints", ".tmp_step_*"), ("checkpoints", f".{LATEST}.*.tmp"), (".", ".model.*.tmp"),
                (".", ".summary.json.*.tmp"), (".", ".eval_report.json.*.tmp")]
    removed = []
    for sub, pattern in patterns:
        for p in sorted((out / sub).glob(pattern)):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


def _fsync_tree(folder: Path) -> None:
    for p in folder.iterdir():
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """This process's RNG states: torch's as tensors, Python's and numpy's as JSON."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    meta = {"python": json.dumps([version, list(internal), gauss]),
            "numpy": json.dumps([name, keys.tolist(), int(pos), int(has_gauss), float(cached)])}
    return tensors, meta


def _set_rng_state(path: Path) -> None:
    """Restore what ``_rng_state`` saved; any damage is a CheckpointError naming the file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        version, internal, gauss = json.loads(meta["python"])
        name, keys, pos, has_gauss, cached = json.loads(meta["numpy"])
        python_state = (version, tuple(internal), gauss)
        numpy_state = (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
        torch_state = tensors["torch"]
        cuda = [tensors[f"cuda.{i}"] for i in range(sum(k.startswith("cuda.") for k in tensors))]
        # Set each on a scratch generator first, so a bad state fails before anything changed.
        random.Random().setstate(python_state)
        np.random.RandomState().set_state(numpy_state)
        torch.Generator().set_state(torch_state)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: this checkpoint cannot be resumed exactly") from None
    except Exception as e:  # noqa: BLE001 - safetensors, JSON, key and shape errors all mean "corrupt"
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is not a valid RNG state ({type(e).__name__}: {msg}): "
                              "this checkpoint cannot be resumed exactly") from None
    random.setstate(python_state)
    np.random.set_state(numpy_state)
    torch.set_rng_state(torch_state)
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def _save_optimizer(optimizer, path: Path) -> None:
    """Optimizer state as safetensors: tensors by "param/name", everything else as JSON metadata."""
    sd = optimizer.state_dict()
    tensors, other = {}, {}
    for pid, st in sd["state"].items():
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}/{name}"] = v.detach().cpu().contiguous()
            else:
                other[f"{pid}/{name}"] = v
    save_file(tensors, str(path), metadata={"param_groups": json.dumps(sd["param_groups"]),
                                            "other": json.dumps(other)})


def _load_optimizer(optimizer, path: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        groups, other = json.loads(meta["param_groups"]), json.loads(meta["other"])
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path} is not a valid optimizer state ({type(e).__name__}: {e})") from None
    current = optimizer.state_dict()["param_groups"]
    if len(groups) != len(current) or any(len(g["params"]) != len(c["params"]) for g, c in zip(groups, current)):
        raise CheckpointError(f"{path}: its parameter groups do not match this model and config")
    for g, c in zip(groups, current):  # JSON turned tuples (betas) into lists
        for k, v in g.items():
            if isinstance(c.get(k), tuple):
                g[k] = tuple(v)
    state: dict[int, dict] = {}
    for key, v in list(tensors.items()) + list(other.items()):
        pid, name = key.split("/", 1)
        state.setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(accelerator: Accelerator, cfg: ExperimentConfig, state: TrainState, model, optimizer,
                    scheduler) -> Path | None:
    """The run's state as a resumable checkpoint folder; None (nothing written) with
    ``train.keep_checkpoints=0``."""
    if not cfg.train.keep_checkpoints:
        return None
    root = _checkpoint_root(cfg)
    name = f"step_{state.step:08d}_micro_{state.micro_step:08d}"
    final, tmp = root / name, root / f".tmp_{name}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    tensors, meta = _rng_state()  # every process its own (dropout draws differ per process)
    save_file(tensors, str(tmp / CKPT_RNG.format(rank=accelerator.process_index)), metadata=meta)
    if accelerator.is_main_process:
        save_model(accelerator.unwrap_model(model), str(tmp / CKPT_MODEL))
        _save_optimizer(optimizer, tmp / CKPT_OPTIMIZER)
        scaler = getattr(accelerator, "scaler", None)
        extra = {"format": CKPT_FORMAT, "processes": accelerator.num_processes,
                 "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None}
        (tmp / CKPT_STATE).write_text(json.dumps(_json_safe({**vars(state), **extra})))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _fsync_tree(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        atomic_write_json(root / LATEST, _json_safe({"dir": name, **{k: v for k, v in vars(state).items()
                                                                   if k != "history"}}))
        kept = sorted((p for p in root.glob("step_*") if p.is_dir()), key=lambda p: p.name)
        for old in kept[:-cfg.train.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(ckpt: Path, accelerator: Accelerator, model, optimizer, scheduler) -> TrainState:
    """Resume from a folder written by ``save_checkpoint``: safetensors and JSON only."""
    state_path = ckpt / CKPT_STATE
    try:
        saved = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{state_path} is not readable JSON ({e})") from None
    if not isinstance(saved, dict) or saved.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{state_path}: not a checkpoint this ccr_demo writes (format "
                              f"{saved.get('format') if isinstance(saved, dict) else None!r}, expected {CKPT_FORMAT}); "
                              "checkpoints of older versions held pickles and are not loaded: train again "
                              "without --resume")
    if saved.get("processes") != accelerator.num_processes:
        raise CheckpointError(f"{state_path}: written by {saved.get('processes')} processes, resumed with "
                              f"{accelerator.num_processes}: the data order and RNG streams would differ")
    fields = {f.name for f in dataclasses.fields(TrainState)}
    try:
        state = TrainState(**{k: v for k, v in saved.items() if k in fields})
        scheduler.load_state_dict(saved["scheduler"])
    except (TypeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{state_path}: bad training state ({type(e).__name__}: {e})") from None
    try:
        # read on the CPU; load_state_dict copies into the parameters wherever they live
        missing, unexpected = load_model(accelerator.unwrap_model(model), str(ckpt / CKPT_MODEL), strict=False)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{ckpt / CKPT_MODEL} is not a valid model state ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if missing or unexpected:
        raise CheckpointError(f"{ckpt / CKPT_MODEL} does not match this model: missing {list(missing)[:5]}, "
                              f"unexpected {list(unexpected)[:5]}")
    _load_optimizer(optimizer, ckpt / CKPT_OPTIMIZER)
    scaler = getattr(accelerator, "scaler", None)
    if scaler is not None and saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    _set_rng_state(ckpt / CKPT_RNG.format(rank=accelerator.process_index))
    return state


def _json_safe(obj):
    """NaN / inf become null: JSON has no such numbers and strict readers reject them."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- data
def prepare_data(cfg: ExperimentConfig, accelerator: Accelerator) -> None:
    """Generate the shapes world first when the config asks for it and it is not there yet."""
    gen = dict(cfg.data.generate)
    if not gen:
        return
    out = Path(gen.pop("out", Path(cfg.data.train).parent))
    with accelerator.main_process_first():
        if accelerator.is_main_process and not (out / "dataset_info.json").is_file():
            from ccr_demo.data.shapes import generate_dataset

            generate_dataset(out, **gen)


def load_eval_sets(cfg: ExperimentConfig) -> list[ParallelTestSet]:
    """The test sets in the run's evaluation languages (data.eval_languages, else its own)."""
    return [load_eval_set(cfg, path) for path in cfg.data.eval]


def texts_to_cache(dataset: MultilingualPretrainDataset, eval_sets, query_sets) -> list[str]:
    """Every caption a run encodes (repeats kept, for the hit rate): all training caption
    variants in every language, the test sets' captions and the typed queries."""
    texts = dataset.all_texts()
    texts += [t for ts in eval_sets for lang in ts.languages for t in ts.captions[lang]]
    texts += [t for qs in query_sets if qs is not None for lang in qs.languages for t in qs.texts[lang]]
    return texts


def fill_text_cache(cfg: ExperimentConfig, progress: bool = True) -> dict:
    """Generate the data if asked and encode every caption of the run into the per-string
    store, without training: the slow part of a locked-text-tower run, done ahead (or on
    another machine sharing the cache folder). Returns the timings and cache statistics."""
    cfg.validate()
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    start = time.perf_counter()
    prepare_data(cfg, accelerator)
    data_seconds = time.perf_counter() - start
    set_seed(cfg.train.seed)  # as train() does: a randomly initialised tower gets the same weights
    model = build_model(cfg)
    dataset = build_train_dataset(cfg, model.image_processor)
    eval_sets = load_eval_sets(cfg)
    texts = texts_to_cache(dataset, eval_sets, load_query_sets(cfg, eval_sets))
    start = time.perf_counter()
    cache = TextFeatureCache.build(model.to(accelerator.device), texts, device=accelerator.device, progress=progress)
    out = {"data_seconds": round(data_seconds, 1), "text_cache_seconds": round(time.perf_counter() - start, 1),
           "text_cache": cache.stats.as_dict()}
    if needs_token_states(cfg):
        start = time.perf_counter()
        states = TextStateCache.build(model, texts, device=accelerator.device, progress=progress)
        out.update(text_state_cache_seconds=round(time.perf_counter() - start, 1),
                   text_state_cache=states.stats.as_dict())
    return out


def needs_token_states(cfg: ExperimentConfig) -> bool:
    """A cached locked text tower feeding ITM / MLM: its token states are cached as well."""
    return (cfg.train.lock_text and cfg.train.cache_text_features
            and (cfg.train.weight("itm") > 0 or cfg.train.weight("mlm") > 0))


def load_query_sets(cfg: ExperimentConfig, eval_sets: Sequence[ParallelTestSet]) -> list[QuerySet | None]:
    """The typed-query split paired with each eval set (None where there is none)."""
    paths = list(cfg.data.eval_queries)
    if len(paths) > len(cfg.data.eval):
        raise ValueError(f"data.eval_queries has {len(paths)} entries for {len(cfg.data.eval)} eval sets")
    paths += [""] * (len(cfg.data.eval) - len(paths))
    return [load_eval_queries(cfg, p, ts) if p else None for p, ts in zip(paths, eval_sets)]


# ------------------------------------------------------------------------- train
def train(cfg: ExperimentConfig, resume: bool = False, accelerator: Accelerator | None = None,
          stop_after_steps: int = 0) -> dict:
    """Train, evaluate each epoch, save the final model in Hugging Face form; return a summary.

    ``stop_after_steps`` ends the run early without saving a final model (used to simulate
    an interrupted run in tests).
    """
    cfg.validate()
    check_data_config(cfg)
    tc = cfg.train
    if resume and not tc.keep_checkpoints:
        raise ValueError("--resume with train.keep_checkpoints=0: that setting writes no checkpoints to resume from")
    out = Path(tc.output_dir)
    log_with = _trackers(tc, out)
    # Several processes without CUDA (torchrun on CPU): accelerate needs cpu=True to use gloo.
    multi_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    accelerator = accelerator or Accelerator(mixed_precision=tc.mixed_precision, log_with=log_with,
                                             project_dir=str(out), cpu=multi_cpu)
    set_seed(tc.seed)
    torn = []
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        torn = remove_stale_temporaries(out)
        for p in torn:
            accelerator.print(f"removed {p}, left over by a run killed while writing it")
        save_json(cfg, out / "config.yaml.json")
    accelerator.wait_for_everyone()
    phase_seconds, phase_start = {}, time.perf_counter()  # data (+ generation) and caption caching
    prepare_data(cfg, accelerator)

    languages = cfg.languages
    K = len(languages)
    model = build_model(cfg)
    mode = "one_to_one" if tc.loss == "one_to_one" else "one_to_k"
    dataset = build_train_dataset(cfg, model.image_processor, mode=mode)
    captions_per_image = dataset.captions_per_item  # K, or train.caption_num of them
    use_cache = tc.lock_text and tc.cache_text_features
    eval_sets = load_eval_sets(cfg)
    query_sets = load_query_sets(cfg, eval_sets)
    text_cache = None
    phase_seconds["data"] = round(time.perf_counter() - phase_start, 1)
    if use_cache:  # training captions and the test sets' captions, each distinct string encoded once
        phase_start = time.perf_counter()
        text_cache = TextFeatureCache.build(model.to(accelerator.device), texts_to_cache(dataset, eval_sets, query_sets),
                                            is_main_process=accelerator.is_main_process,
                                            wait=accelerator.wait_for_everyone, device=accelerator.device,
                                            progress=accelerator.is_main_process)
        phase_seconds["text_cache"] = round(time.perf_counter() - phase_start, 1)
    fusion_objectives, states_cache = None, None
    if tc.weight("itm") > 0 or tc.weight("mlm") > 0:
        if needs_token_states(cfg):
            phase_start = time.perf_counter()
            states_cache = TextStateCache.build(model, texts_to_cache(dataset, eval_sets, query_sets),
                                                is_main_process=accelerator.is_main_process,
                                                wait=accelerator.wait_for_everyone, device=accelerator.device,
                                                progress=accelerator.is_main_process)
            phase_seconds["text_state_cache"] = round(time.perf_counter() - phase_start, 1)
        vocab_ids = corpus_vocabulary(model, dataset.all_texts()) if tc.mlm_vocabulary == "corpus" else None
        fusion_objectives = FusionObjectives(cfg, K, states_cache, vocab_ids)

    sampler = GlobalBatchSampler(len(dataset), tc.batch_size, accelerator.num_processes,
                                 accelerator.process_index, tc.seed)
    # Its own generator: creating an iterator draws the workers' base seed from it, which
    # would otherwise advance the global RNG (and shift dropout) once more on every resume.
    loader_rng = torch.Generator()
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_pretrain,
                        num_workers=cfg.data.num_workers, persistent_workers=False, generator=loader_rng)
    steps_per_epoch = sampler.batches_per_epoch // tc.grad_accum_steps
    if steps_per_epoch == 0:
        raise ValueError(f"one epoch has {sampler.batches_per_epoch} micro-batches, fewer than "
                         f"grad_accum_steps={tc.grad_accum_steps}")
    total_steps = tc.max_steps or tc.epochs * steps_per_epoch
    epochs = math.ceil(total_steps / steps_per_epoch)
    optimizer = build_optimizer(model, cfg)
    scheduler = linear_warmup_decay(optimizer, total_steps, int(tc.warmup_ratio * total_steps))
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)
    raw.temperature_read_clamp = tc.temperature_clamp == "read"

    state = TrainState()
    if resume:
        ckpt = latest_checkpoint(cfg)
        if ckpt is None and not torn:
            raise FileNotFoundError(f"--resume: no checkpoint under {_checkpoint_root(cfg)}")
        if ckpt is None:  # killed while writing its first checkpoint: nothing to lose by starting over
            accelerator.print(f"--resume: no complete checkpoint under {_checkpoint_root(cfg)} (the run was "
                              "killed before its first one was written): starting from step 0")
        else:
            state = load_checkpoint(ckpt, accelerator, model, optimizer, scheduler)
            accelerator.print(f"resumed from {ckpt} at step {state.step}")

    if log_with:
        accelerator.init_trackers("ccr_demo", config={k: v for k, v in _flat(to_dict(cfg)).items()
                                                     if isinstance(v, (int, float, str, bool))})
    history, reports = state.history, []
    progress = tqdm(total=total_steps, initial=state.step, desc="train", disable=not accelerator.is_main_process)
    start_time, seconds_before = time.perf_counter(), state.train_seconds
    accum, last_loss, evaluated_at = 0, state.last_loss, -1
    while state.step < total_steps and state.epoch < epochs:
        dataset.set_epoch(state.epoch)
        sampler.set_epoch(state.epoch, state.batch_in_epoch)
        loader_rng.manual_seed(tc.seed * 1_000_003 + state.epoch)
        model.train()
        for images, texts, indices in loader:
            pixels = images.to(accelerator.device)
            if tc.loss == "one_to_one":
                flat = [row[0] for row in texts]
            else:
                flat = [t for row in texts for t in row]
            with_fusion = fusion_objectives is not None
            with accelerator.autocast():
                if text_cache is not None:
                    enc = None
                    outputs = model(pixels, text_features=text_cache.lookup(flat).to(accelerator.device),
                                    with_fusion_inputs=with_fusion)
                else:
                    enc = raw.tokenize(flat)
                    outputs = model(pixels, enc["input_ids"].to(accelerator.device),
                                    enc["attention_mask"].to(accelerator.device), with_fusion_inputs=with_fusion)
            img, txt, tau = outputs[:3]
            img, txt = gather_with_grad(img.float()), gather_with_grad(txt.float())
            exclude = None
            if tc.exclude_false_negatives:  # every process builds the same global mask
                global_indices = accelerator.gather(indices.to(accelerator.device)).cpu()
                exclude = torch.from_numpy(dataset.false_negatives(global_indices.tolist())).to(img.device)
            parts = {}
            if tc.weight("itc") > 0:
                parts["itc"] = compute_loss(cfg, img, txt, tau.float(), captions_per_image, state.step, exclude)
            if with_fusion:
                global_texts = flat if accelerator.num_processes == 1 else \
                    [t for chunk in gather_object([flat]) for t in chunk]
                with accelerator.autocast():
                    parts.update(fusion_objectives(
                        raw, img, txt, tau.detach().float(), outputs[3], outputs[4],
                        None if enc is None else enc["attention_mask"].to(accelerator.device),
                        flat, global_texts, state.step, exclude))
            loss = sum(tc.weight(name) * value for name, value in parts.items()) / tc.grad_accum_steps
            accum += 1
            sync = accum == tc.grad_accum_steps
            if sync:
                accelerator.backward(loss)
            else:
                with accelerator.no_sync(model):
                    accelerator.backward(loss)
            last_loss = state.last_loss = loss.item() * tc.grad_accum_steps
            last_parts = {name: value.item() for name, value in parts.items()}
            if len(parts) > 1 and accelerator.num_processes > 1:  # ITM / MLM are per process: log their mean
                last_parts = {k: float(v) for k, v in zip(last_parts, accelerator.reduce(
                    torch.tensor(list(last_parts.values()), device=accelerator.device), "mean").tolist())}
                last_loss = state.last_loss = sum(tc.weight(k) * v for k, v in last_parts.items())
            state.batch_in_epoch += 1
            state.micro_step += 1
            if not sync:
                continue
            accum = 0
            if tc.grad_clip > 0:
                accelerator.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            if tc.temperature_clamp == "step":
                clamp_temperature(raw)
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            progress.update(1)
            progress.set_postfix(loss=f"{last_loss:.4f}", tau=f"{raw.logit_temperature.item():.4f}")
            if state.step % max(1, tc.log_every_steps) == 0 or state.step == total_steps:
                row = {"step": state.step, "epoch": state.epoch, "loss": last_loss,
                       "temperature": raw.logit_temperature.item(), "lr": scheduler.get_last_lr()[0]}
                if len(last_parts) > 1 or "itc" not in last_parts:
                    row["losses"] = last_parts
                history.append(row)
                if log_with:
                    accelerator.log({"train/loss": last_loss, "train/temperature": row["temperature"],
                                     "train/lr": row["lr"], **{f"train/{k}": v for k, v in last_parts.items()}},
                                    step=state.step)
            if tc.save_every_steps and state.step % tc.save_every_steps == 0:
                state.train_seconds = seconds_before + time.perf_counter() - start_time
                save_checkpoint(accelerator, cfg, state, model, optimizer, scheduler)
            if stop_after_steps and state.step >= stop_after_steps:
                progress.close()
                accelerator.end_training()
                return {"stopped_at_step": state.step, "loss": last_loss}
            if state.step >= total_steps:
                break
        epoch_done = state.batch_in_epoch >= sampler.batches_per_epoch or state.step >= total_steps
        if epoch_done:
            finished_epoch = state.epoch
            state.epoch += 1
            state.batch_in_epoch = 0
            if eval_sets and (state.epoch % max(1, tc.eval_every_epochs) == 0 or state.step >= total_steps):
                final = state.step >= total_steps
                reports = _evaluate_all(raw, eval_sets, accelerator, state.step, log_with, text_cache, query_sets,
                                        rerank_k=tc.eval_rerank_k if final else 0, states_cache=states_cache,
                                        keep_ranks=final and tc.eval_keep_ranks)
                evaluated_at = state.step
            state.train_seconds = seconds_before + time.perf_counter() - start_time
            save_checkpoint(accelerator, cfg, state, model, optimizer, scheduler)
            accelerator.print(f"epoch {finished_epoch} done at step {state.step}, loss {_fmt_loss(last_loss)}")
    progress.close()
    train_seconds = seconds_before + time.perf_counter() - start_time
    if eval_sets and evaluated_at != state.step:  # every process decides alike (barriers inside)
        reports = _evaluate_all(raw, eval_sets, accelerator, state.step, log_with, text_cache, query_sets,
                                rerank_k=tc.eval_rerank_k, states_cache=states_cache, keep_ranks=tc.eval_keep_ranks)
    summary = {"steps": state.step, "epochs": state.epoch,
               "final_loss": last_loss if last_loss is not None and math.isfinite(last_loss) else None,
               "train_seconds": round(train_seconds, 1), "setup_seconds": phase_seconds,
               "processes": accelerator.num_processes,
               "global_batch": tc.batch_size * accelerator.num_processes, "history": history, "eval": reports,
               "n_train": len(dataset), "is_main_process": accelerator.is_main_process,
               "text_cache": text_cache.stats.as_dict() if text_cache is not None and text_cache.stats else None,
               "objectives": {k: float(v) for k, v in tc.losses.items() if v},
               "fusion": fusion_summary(cfg, fusion_objectives, states_cache)}
    if accelerator.is_main_process:
        _write_outputs(raw, cfg, summary)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def release_processes() -> None:
    """Tear the process group down on every process before exiting; a process that just
    exits while a peer is still finishing the last barrier makes gloo report a reset."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _evaluate_all(model: CCRModel, eval_sets, accelerator: Accelerator, step: int, log_with,
                  text_cache: TextFeatureCache | None = None, query_sets=None, rerank_k: int = 0,
                  states_cache: TextStateCache | None = None, keep_ranks: bool = False) -> list[dict]:
    """Evaluate on the main process (test sets are small next to training); others wait."""
    reports = []
    if accelerator.is_main_process:
        encode = (lambda texts: text_cache.encode(model, texts)) if text_cache is not None else None
        for ts, qs in zip(eval_sets, query_sets or [None] * len(eval_sets)):
            report = evaluate(model, ts, progress=False, encode_texts=encode, queries=qs, rerank_k=rerank_k,
                              keep_ranks=keep_ranks,
                              encode_text_states=states_cache.lookup if states_cache is not None else None)
            reports.append(report)
            accelerator.print(f"\n[{ts.name}] step {step}\n" + report_table(report))
            if log_with:
                scalars = {f"eval/{ts.name}/mrv_t2i": report["mrv"]["t2i"],
                           f"eval/{ts.name}/mrv_i2t": report["mrv"]["i2t"],
                           f"eval/{ts.name}/mean_recall": report["mean_recall"]["all"]}
                scalars.update({f"eval/{ts.name}/t2i_r1/{lang}": report["t2i"][lang]["1"]
                                for lang in report["languages"]})
                if report.get("queries"):
                    q = report["queries"]
                    scalars.update({f"eval/{ts.name}/queries/p5_mean": q["mean"]["p@5"],
                                    f"eval/{ts.name}/queries/overlap5": q["consistency"]["top5_overlap"],
                                    f"eval/{ts.name}/queries/first_rank_std": q["consistency"]["first_rank_std"]})
                if report.get("rerank"):
                    for name in ("rerank", "official"):
                        scalars.update({f"eval/{ts.name}/{name}/mrv_t2i": report[name]["mrv"]["t2i"],
                                        f"eval/{ts.name}/{name}/mrv_i2t": report[name]["mrv"]["i2t"]})
                        scalars.update({f"eval/{ts.name}/{name}/t2i_r1/{lang}": report[name]["t2i"][lang]["1"]
                                        for lang in report["languages"]})
                accelerator.log(scalars, step=step)
    accelerator.wait_for_everyone()
    return reports


def fusion_summary(cfg: ExperimentConfig, objectives: FusionObjectives | None,
                   states_cache: TextStateCache | None) -> dict | None:
    """How the fusion encoder was trained: what a reader of the summary / card needs to know."""
    if objectives is None:
        return None
    tc = cfg.train
    out = {"layers": cfg.model.fusion.layers, "inputs": cfg.model.fusion.inputs, "itm_positive": tc.itm_positive,
           "itm_hard_fraction": tc.itm_hard_fraction}
    if tc.weight("mlm") > 0:
        out.update(mlm_masking=objectives.mlm_masking, mlm_probability=tc.mlm_probability,
                   mlm_max_masks=tc.mlm_max_masks, mlm_vocabulary=tc.mlm_vocabulary)
        if objectives.vocab_ids is not None:
            out["mlm_vocabulary_size"] = len(objectives.vocab_ids)
    if states_cache is not None and states_cache.stats is not None:
        out["token_state_cache"] = states_cache.stats.as_dict()
    return out


def card_kwargs(cfg: ExperimentConfig, summary: dict, repo_or_path: str) -> dict:
    """What the model card says about a run: its settings and the measured report."""
    report = summary["eval"][0] if summary["eval"] else None
    training = {
        "loss": f"{cfg.train.loss}" + (f" ({cfg.train.loss_mode})" if cfg.train.loss == "one_to_k" else ""),
        "training data": f"`{cfg.data.train}` ({summary['n_train']} images x {len(cfg.languages)} languages)",
        "steps": summary["steps"],
        "global batch (images)": summary["global_batch"],
        "processes": summary["processes"],
        "optimiser": f"AdamW lr {cfg.train.lr} (new parts {cfg.train.new_lr}), betas {tuple(cfg.train.adam_betas)}, "
                     f"wd {cfg.train.weight_decay}, "
                     f"warmup {cfg.train.warmup_ratio:.0%} then linear decay, clip {cfg.train.grad_clip}",
        "mixed precision": cfg.train.mixed_precision,
        "towers locked": ", ".join(n for n, f in (("image", cfg.train.lock_image), ("text", cfg.train.lock_text)) if f)
                         or "none",
        "training time": f"{summary['train_seconds']} s",
        "final loss": _fmt_loss(summary["final_loss"]),
    }
    if summary.get("objectives"):
        training["objectives"] = ", ".join(f"{k} x{v:g}" for k, v in summary["objectives"].items())
    fusion = summary.get("fusion")
    if fusion:
        training["fusion encoder"] = (f"{fusion['layers']} layers; ITM positive language: {fusion['itm_positive']}"
                                      + (f"; MLM masked at the {fusion['mlm_masking'].replace('_', ' ')}"
                                         f" ({fusion['mlm_vocabulary']} vocabulary)" if "mlm_masking" in fusion else ""))
    if cfg.train.init_from:
        training["initialised from"] = f"`{cfg.train.init_from}`"
    dataset_name = cfg.data.eval[0] if report else ""
    return dict(model_name=cfg.train.model_name or f"ccr_demo {cfg.train.loss} model",
                results=report_table(report) if report else None,
                eval_results=eval_results(report, dataset_name) if report else None,
                n_instances=report.get("n_instances") if report else None,
                dataset_name=dataset_name, training=training, repo_or_path=repo_or_path)


def _write_outputs(model: CCRModel, cfg: ExperimentConfig, summary: dict) -> None:
    out = Path(cfg.train.output_dir)
    model_dir = out / "model"
    model.save_pretrained(model_dir, model_card_kwargs=card_kwargs(cfg, summary, str(model_dir)))
    atomic_write_json(out / "summary.json", _json_safe(summary))
    if summary["eval"]:
        atomic_write_json(out / "eval_report.json", _json_safe({"reports": summary["eval"]}))


def _fmt_loss(loss) -> str:
    return f"{loss:.4f}" if isinstance(loss, (int, float)) and math.isfinite(loss) else "n/a"


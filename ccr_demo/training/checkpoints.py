"""Resumable training checkpoints: the model, optimizer, scheduler, every process's RNG states and
the loop's counters (`TrainState`), written by `save_checkpoint` and read by `load_checkpoint`.

A checkpoint folder (``OUTPUT/checkpoints/step_<step>_micro_<micro>``) holds only safetensors and
JSON, so resuming unpickles nothing. It is written under a temporary name and renamed into place,
and ``latest.json`` is replaced atomically: a run killed mid-save leaves a ``.tmp_*`` folder that
`remove_stale_temporaries` deletes, never a torn "latest". `CheckpointError` names the file and
the problem when a checkpoint cannot be resumed from exactly.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from safetensors.torch import load_model, save_file, save_model

from ccr_demo.training.config import ExperimentConfig
from ccr_demo.utils.fileio import atomic_write_json

LATEST = "latest.json"


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


def checkpoint_root(cfg: ExperimentConfig) -> Path:
    """The folder of a run's checkpoints: ``OUTPUT/checkpoints``."""
    return Path(cfg.train.output_dir) / "checkpoints"


def latest_checkpoint(cfg: ExperimentConfig) -> Path | None:
    """The newest complete checkpoint. A folder is renamed into place only once fully
    written, so ``step_*`` folders are always complete; ``.tmp_*`` ones (a run killed
    mid-save) are ignored. latest.json is a human-readable pointer to the same folder."""
    done = [p for p in checkpoint_root(cfg).glob("step_*") if (p / CKPT_STATE).is_file()]
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
    root = checkpoint_root(cfg)
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
        (tmp / CKPT_STATE).write_text(json.dumps(json_safe({**vars(state), **extra})))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _fsync_tree(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        atomic_write_json(root / LATEST, json_safe({"dir": name, **{k: v for k, v in vars(state).items()
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


def json_safe(obj):
    """``obj`` with every NaN / inf float as None (null): JSON has no such numbers and strict readers
    reject them. Used for the checkpoint state and the run's summary and evaluation report."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj

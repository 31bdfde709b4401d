"""The training loop behind ``accelerate launch train/pretrain.py`` (the script only parses arguments).

Design points (see README "Training"):
- Every process draws its slice of one seeded global batch, and features are gathered WITH
  gradients before the loss, so N processes with batch b train like 1 process with N*b.
- Gradient accumulation sums gradients of micro-batches; each micro-batch is its own
  contrastive batch (negatives come from the micro-batch only, as in open_clip without
  its feature cache), so accumulation grows the optimiser batch, not the contrastive one.
- Checkpoints are ``accelerate`` states written to a temporary folder and renamed, and a
  ``latest.json`` pointer is replaced atomically: a killed run never leaves a corrupt
  "latest". The data order is a pure function of (seed, epoch), so ``--resume`` replays
  exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from .config import ExperimentConfig, save_json, to_dict
from .data.datasets import MultilingualPretrainDataset, collate_pretrain
from .data.formats import ParallelTestSet
from .data.queries import QuerySet
from .evaluate import evaluate, queries_table
from .fileio import atomic_write_json
from .hub import report_table
from .losses import gather_with_grad, one_to_k_loss, one_to_one_loss, pivot_loss
from .model import CCRModel
from .text_cache import TextFeatureCache

logger = logging.getLogger("ccr_demo.training")

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


def build_model(cfg: ExperimentConfig) -> CCRModel:
    model = CCRModel(cfg.model)
    if cfg.train.lock_image:
        model.lock_image_tower()
    if cfg.train.lock_text:
        model.lock_text_tower()
    return model


def param_groups(model: CCRModel, cfg: ExperimentConfig) -> list[dict]:
    """AdamW groups: pretrained towers at ``lr``, new parts at ``lr_new``; no decay on 1-d params."""
    from .offline import is_offline_tower

    def pretrained(part: str) -> bool:
        if part == "image_tower":
            return cfg.model.image_pretrained or is_offline_tower(cfg.model.image_tower)
        return cfg.model.text_tower != "random:bert"

    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = name.split(".", 1)[0]
        lr = cfg.train.lr if part in ("image_tower", "text_tower") and pretrained(part) else cfg.train.lr_new
        wd = 0.0 if p.ndim <= 1 else cfg.train.weight_decay
        groups.setdefault((lr, wd), []).append(p)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


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
def _checkpoint_root(cfg: ExperimentConfig) -> Path:
    return Path(cfg.train.output_dir) / "checkpoints"


def latest_checkpoint(cfg: ExperimentConfig) -> Path | None:
    """The newest complete checkpoint. A folder is renamed into place only once fully
    written, so ``step_*`` folders are always complete; ``.tmp_*`` ones (a run killed
    mid-save) are ignored. latest.json is a human-readable pointer to the same folder."""
    done = [p for p in _checkpoint_root(cfg).glob("step_*") if (p / "train_state.json").is_file()]
    return max(done, key=lambda p: p.name) if done else None


def save_checkpoint(accelerator: Accelerator, cfg: ExperimentConfig, state: TrainState) -> Path:
    root = _checkpoint_root(cfg)
    name = f"step_{state.step:08d}_micro_{state.micro_step:08d}"
    final, tmp = root / name, root / f".tmp_{name}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "train_state.json").write_text(json.dumps(vars(state)))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        atomic_write_json(root / LATEST, {"dir": name, **vars(state)})
        kept = sorted((p for p in root.glob("step_*") if p.is_dir()), key=lambda p: p.name)
        for old in kept[:-max(1, cfg.train.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


# --------------------------------------------------------------------------- data
def prepare_data(cfg: ExperimentConfig, accelerator: Accelerator) -> None:
    """Generate the shapes world first when the config asks for it and it is not there yet."""
    gen = dict(cfg.data.generate)
    if not gen:
        return
    out = Path(gen.pop("out", Path(cfg.data.train).parent))
    with accelerator.main_process_first():
        if accelerator.is_main_process and not (out / "dataset_info.json").is_file():
            from .data.shapes import generate_dataset

            generate_dataset(out, **gen)


def load_eval_sets(cfg: ExperimentConfig) -> list[ParallelTestSet]:
    sets = []
    for path in cfg.data.eval:
        ts = ParallelTestSet.from_iglue(path, languages=cfg.languages, image_root=None)
        if cfg.data.eval_max_instances:
            ts = ts.subset(cfg.data.eval_max_instances)
        sets.append(ts)
    return sets


def load_query_sets(cfg: ExperimentConfig) -> list[QuerySet | None]:
    """The typed-query split paired with each eval set (None where there is none)."""
    paths = list(cfg.data.eval_queries)
    if len(paths) > len(cfg.data.eval):
        raise ValueError(f"data.eval_queries has {len(paths)} entries for {len(cfg.data.eval)} eval sets")
    return [QuerySet.load(p, languages=cfg.languages) if p else None for p in paths] + \
        [None] * (len(cfg.data.eval) - len(paths))


# ------------------------------------------------------------------------- train
def train(cfg: ExperimentConfig, resume: bool = False, accelerator: Accelerator | None = None,
          stop_after_steps: int = 0) -> dict:
    """Train, evaluate each epoch, save the final model in Hugging Face form; return a summary.

    ``stop_after_steps`` ends the run early without saving a final model (used to simulate
    an interrupted run in tests).
    """
    cfg.validate()
    tc = cfg.train
    out = Path(tc.output_dir)
    log_with = _trackers(tc, out)
    # Several processes without CUDA (torchrun on CPU): accelerate needs cpu=True to use gloo.
    multi_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    accelerator = accelerator or Accelerator(mixed_precision=tc.mixed_precision, log_with=log_with,
                                             project_dir=str(out), cpu=multi_cpu)
    set_seed(tc.seed)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_json(cfg, out / "config.yaml.json")
    prepare_data(cfg, accelerator)

    languages = cfg.languages
    K = len(languages)
    model = build_model(cfg)
    mode = "one_to_one" if tc.loss == "one_to_one" else "one_to_k"
    dataset = MultilingualPretrainDataset(cfg.data.train, languages, mode=mode, transform=model.image_processor,
                                          seed=tc.seed, image_root=cfg.data.image_root or None,
                                          skip_bad=cfg.data.skip_bad, full_caption_prob=cfg.data.full_caption_prob)
    use_cache = tc.lock_text and tc.cache_text_features
    eval_sets = load_eval_sets(cfg)
    query_sets = load_query_sets(cfg)
    text_cache = None
    if use_cache:  # training captions and the test sets' captions, each distinct string encoded once
        texts = dataset.all_texts()
        texts += [t for ts in eval_sets for lang in ts.languages for t in ts.captions[lang]]
        texts += [t for qs in query_sets if qs is not None for lang in qs.languages for t in qs.texts[lang]]
        text_cache = TextFeatureCache.build(model.to(accelerator.device), texts,
                                            is_main_process=accelerator.is_main_process,
                                            wait=accelerator.wait_for_everyone, device=accelerator.device,
                                            progress=accelerator.is_main_process)

    sampler = GlobalBatchSampler(len(dataset), tc.batch_size, accelerator.num_processes,
                                 accelerator.process_index, tc.seed)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_pretrain,
                        num_workers=cfg.data.num_workers, persistent_workers=False)
    steps_per_epoch = sampler.batches_per_epoch // tc.grad_accum_steps
    if steps_per_epoch == 0:
        raise ValueError(f"one epoch has {sampler.batches_per_epoch} micro-batches, fewer than "
                         f"grad_accum_steps={tc.grad_accum_steps}")
    total_steps = tc.max_steps or tc.epochs * steps_per_epoch
    epochs = math.ceil(total_steps / steps_per_epoch)
    optimizer = torch.optim.AdamW(param_groups(model, cfg))
    scheduler = linear_warmup_decay(optimizer, total_steps, int(tc.warmup_ratio * total_steps))
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    raw = accelerator.unwrap_model(model)

    state = TrainState()
    if resume:
        ckpt = latest_checkpoint(cfg)
        if ckpt is None:
            raise FileNotFoundError(f"--resume: no checkpoint under {_checkpoint_root(cfg)}")
        accelerator.load_state(str(ckpt))
        state = TrainState(**json.loads((ckpt / "train_state.json").read_text()))
        accelerator.print(f"resumed from {ckpt} at step {state.step}")

    if log_with:
        accelerator.init_trackers("ccr_demo", config={k: v for k, v in _flat(to_dict(cfg)).items()
                                                     if isinstance(v, (int, float, str, bool))})
    history, reports = [], []
    progress = tqdm(total=total_steps, initial=state.step, desc="train", disable=not accelerator.is_main_process)
    start_time = time.perf_counter()
    accum, last_loss, evaluated_at = 0, float("nan"), -1
    while state.step < total_steps and state.epoch < epochs:
        dataset.set_epoch(state.epoch)
        sampler.set_epoch(state.epoch, state.batch_in_epoch)
        model.train()
        for images, texts, indices in loader:
            pixels = images.to(accelerator.device)
            if tc.loss == "one_to_one":
                flat = [row[0] for row in texts]
            else:
                flat = [t for row in texts for t in row]
            with accelerator.autocast():
                if text_cache is not None:
                    img, txt, tau = model(pixels, text_features=text_cache.lookup(flat).to(accelerator.device))
                else:
                    enc = raw.tokenize(flat)
                    img, txt, tau = model(pixels, enc["input_ids"].to(accelerator.device),
                                          enc["attention_mask"].to(accelerator.device))
            img, txt = gather_with_grad(img.float()), gather_with_grad(txt.float())
            exclude = None
            if tc.exclude_false_negatives:  # every process builds the same global mask
                global_indices = accelerator.gather(indices.to(accelerator.device)).cpu()
                exclude = torch.from_numpy(dataset.false_negatives(global_indices.tolist())).to(img.device)
            loss = compute_loss(cfg, img, txt, tau.float(), K, state.step, exclude) / tc.grad_accum_steps
            accum += 1
            sync = accum == tc.grad_accum_steps
            if sync:
                accelerator.backward(loss)
            else:
                with accelerator.no_sync(model):
                    accelerator.backward(loss)
            last_loss = loss.item() * tc.grad_accum_steps
            state.batch_in_epoch += 1
            state.micro_step += 1
            if not sync:
                continue
            accum = 0
            if tc.grad_clip > 0:
                accelerator.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            progress.update(1)
            progress.set_postfix(loss=f"{last_loss:.4f}", tau=f"{raw.logit_temperature.item():.4f}")
            if state.step % max(1, tc.log_every_steps) == 0 or state.step == total_steps:
                row = {"step": state.step, "epoch": state.epoch, "loss": last_loss,
                       "temperature": raw.logit_temperature.item(), "lr": scheduler.get_last_lr()[0]}
                history.append(row)
                if log_with:
                    accelerator.log({"train/loss": last_loss, "train/temperature": row["temperature"],
                                     "train/lr": row["lr"]}, step=state.step)
            if tc.save_every_steps and state.step % tc.save_every_steps == 0:
                save_checkpoint(accelerator, cfg, state)
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
                reports = _evaluate_all(raw, eval_sets, accelerator, state.step, log_with, text_cache, query_sets)
                evaluated_at = state.step
            save_checkpoint(accelerator, cfg, state)
            accelerator.print(f"epoch {finished_epoch} done at step {state.step}, loss {last_loss:.4f}")
    progress.close()
    train_seconds = time.perf_counter() - start_time
    if eval_sets and evaluated_at != state.step:  # every process decides alike (barriers inside)
        reports = _evaluate_all(raw, eval_sets, accelerator, state.step, log_with, text_cache, query_sets)
    summary = {"steps": state.step, "epochs": state.epoch, "final_loss": last_loss,
               "train_seconds": round(train_seconds, 1), "processes": accelerator.num_processes,
               "global_batch": tc.batch_size * accelerator.num_processes, "history": history, "eval": reports,
               "n_train": len(dataset), "is_main_process": accelerator.is_main_process,
               "text_cache": text_cache.stats.as_dict() if text_cache is not None and text_cache.stats else None}
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
                  text_cache: TextFeatureCache | None = None, query_sets=None) -> list[dict]:
    """Evaluate on the main process (test sets are small next to training); others wait."""
    reports = []
    if accelerator.is_main_process:
        encode = (lambda texts: text_cache.encode(model, texts)) if text_cache is not None else None
        for ts, qs in zip(eval_sets, query_sets or [None] * len(eval_sets)):
            report = evaluate(model, ts, progress=False, encode_texts=encode, queries=qs)
            reports.append(report)
            accelerator.print(f"\n[{ts.name}] step {step}\n" + report_table(report)
                              + ("\n\n" + queries_table(report) if report.get("queries") else ""))
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
                accelerator.log(scalars, step=step)
    accelerator.wait_for_everyone()
    return reports


def card_kwargs(cfg: ExperimentConfig, summary: dict, repo_or_path: str) -> dict:
    """What the model card says about a run: its settings and the measured report."""
    report = summary["eval"][0] if summary["eval"] else None
    training = {
        "loss": f"{cfg.train.loss}" + (f" ({cfg.train.loss_mode})" if cfg.train.loss == "one_to_k" else ""),
        "training data": f"`{cfg.data.train}` ({summary['n_train']} images x {len(cfg.languages)} languages)",
        "steps": summary["steps"],
        "global batch (images)": summary["global_batch"],
        "processes": summary["processes"],
        "optimiser": f"AdamW lr {cfg.train.lr} (new parts {cfg.train.lr_new}), wd {cfg.train.weight_decay}, "
                     f"warmup {cfg.train.warmup_ratio:.0%} then linear decay, clip {cfg.train.grad_clip}",
        "mixed precision": cfg.train.mixed_precision,
        "towers locked": ", ".join(n for n, f in (("image", cfg.train.lock_image), ("text", cfg.train.lock_text)) if f)
                         or "none",
        "training time": f"{summary['train_seconds']} s",
        "final loss": f"{summary['final_loss']:.4f}",
    }
    return dict(model_name=cfg.train.model_name or f"ccr_demo {cfg.train.loss} model", report=report,
                dataset_name=cfg.data.eval[0] if report else "", training=training, repo_or_path=repo_or_path)


def _write_outputs(model: CCRModel, cfg: ExperimentConfig, summary: dict) -> None:
    out = Path(cfg.train.output_dir)
    model_dir = out / "model"
    model.save_pretrained(model_dir, model_card_kwargs=card_kwargs(cfg, summary, str(model_dir)))
    atomic_write_json(out / "summary.json", summary)
    if summary["eval"]:
        atomic_write_json(out / "eval_report.json", {"reports": summary["eval"]})

"""The training loop behind ``ccr-pretrain`` / ``accelerate launch train/pretrain.py`` (`ccr_demo.training.cli`
parses the arguments).

Design points (see README "Training"):
- Every process draws its slice of one seeded global batch, and features are gathered WITH
  gradients before the loss, so N processes with batch b train like 1 process with N*b.
- Gradient accumulation (accelerate's: a ``GradientAccumulationPlugin`` and
  ``accelerator.accumulate``) sums gradients of micro-batches; each micro-batch is its own
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

import logging
import math
import os
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import GradientAccumulationPlugin, gather_object, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ccr_demo.eval.evaluate import evaluate
from ccr_demo.eval.tables import eval_results, report_table
from ccr_demo.model.modeling import CCRModel
from ccr_demo.model.text_cache import TextFeatureCache, TextStateCache
from ccr_demo.training.checkpoints import (
    TrainState,
    checkpoint_root,
    json_safe,
    latest_checkpoint,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from ccr_demo.training.config import ExperimentConfig, needs_token_states
from ccr_demo.training.datasets import build_train_dataset, check_data_config, collate_pretrain
from ccr_demo.training.init import build_model
from ccr_demo.training.losses import gather_with_grad, one_to_k_loss, one_to_one_loss, pivot_loss
from ccr_demo.training.objectives import FusionObjectives, corpus_vocabulary
from ccr_demo.training.optim import build_optimizer, clamp_temperature, linear_warmup_decay
from ccr_demo.training.run_data import load_eval_sets, load_query_sets, prepare_data, texts_to_cache
from ccr_demo.training.sampler import GlobalBatchSampler
from ccr_demo.training.trackers import build_trackers
from ccr_demo.utils.config import save_json, to_dict
from ccr_demo.utils.fileio import atomic_write_json

logger = logging.getLogger("ccr_demo.training.loop")


def twin_positions(global_indices: list[int], partner: dict[int, int]) -> torch.Tensor:
    """long [B]: where each row's twin sits in the global batch, -1 when it is not there."""
    where = {row: pos for pos, row in enumerate(global_indices)}
    return torch.tensor([where.get(partner.get(row, -1), -1) for row in global_indices], dtype=torch.long)


def compute_loss(cfg: ExperimentConfig, image_emb: torch.Tensor, text_emb: torch.Tensor, temperature,
                 K: int, step: int, exclude: torch.Tensor | None = None, negatives: torch.Tensor | None = None,
                 negatives_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Dispatch on train.loss; text_emb is [B*K, D] (one_to_k, pivot) or [B, D] (one_to_one).
    ``exclude``: the global batch's known false negatives (train.exclude_false_negatives);
    ``negatives`` [M, D] and ``negatives_mask`` [B, M]: caption hard negatives (one_to_k only)."""
    B = image_emb.shape[0]
    if cfg.train.loss == "one_to_one":
        return one_to_one_loss(image_emb, text_emb, temperature, exclude=exclude)
    text_emb = text_emb.view(B, K, -1)
    if cfg.train.loss == "one_to_k":
        return one_to_k_loss(image_emb, text_emb, temperature, mode=cfg.train.loss_mode, exclude=exclude,
                             negatives=negatives, negatives_mask=negatives_mask)
    pivot = cfg.languages.index(cfg.train.pivot_language)
    # Same draw on every process (seeded by step): the gathered batch sees one choice.
    g = torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + step)
    other = torch.randint(0, K - 1, (B,), generator=g)
    other = other + (other >= pivot).long()
    return pivot_loss(image_emb, text_emb, temperature, pivot, other_index=other.to(text_emb.device),
                      exclude=exclude)


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
    log_with = build_trackers(tc, out)
    # Several processes without CUDA (torchrun on CPU): accelerate needs cpu=True to use gloo.
    multi_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    # sync_each_batch: every micro-batch's gradients are reduced across processes, as this loop
    # always did (skipping the reduction on all but the last micro-batch changes multi-process
    # runs in the last float bits, the sums being taken in another order)
    accumulation = GradientAccumulationPlugin(num_steps=tc.grad_accum_steps, sync_each_batch=True)
    if accelerator is None:
        accelerator = Accelerator(mixed_precision=tc.mixed_precision, log_with=log_with, project_dir=str(out),
                                  cpu=multi_cpu, gradient_accumulation_plugin=accumulation)
    else:  # one passed in accumulates as the config says
        accelerator.gradient_state.plugin_kwargs.update(accumulation.to_kwargs())
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
    twin_partner = {i: j for group in dataset.twin_groups() for i in group for j in group if j != i}

    sampler = GlobalBatchSampler(len(dataset), tc.batch_size, accelerator.num_processes,
                                 accelerator.process_index, tc.seed,
                                 groups=dataset.twin_groups() if tc.twin_batches else ())
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
            raise FileNotFoundError(f"--resume: no checkpoint under {checkpoint_root(cfg)}")
        if ckpt is None:  # killed while writing its first checkpoint: nothing to lose by starting over
            accelerator.print(f"--resume: no complete checkpoint under {checkpoint_root(cfg)} (the run was "
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
    last_loss, evaluated_at = state.last_loss, -1
    accelerator.step = 0  # micro-batches into the current accumulation: a resumed run starts a new one
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
            # caption hard negatives ride in the same text pass (so DDP sees one forward), then split off
            negative_texts = dataset.negative_texts(indices.tolist(), tc.hard_negatives) if tc.hard_negatives else []
            with_fusion = fusion_objectives is not None
            # counts the micro-batch (sync_gradients: the last of train.grad_accum_steps, when the
            # optimiser steps); backward divides the loss by grad_accum_steps
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    if text_cache is not None:
                        enc = None
                        outputs = model(pixels, text_features=text_cache.lookup(flat + negative_texts).to(
                            accelerator.device), with_fusion_inputs=with_fusion)
                    else:
                        enc = raw.tokenize(flat + negative_texts)
                        outputs = model(pixels, enc["input_ids"].to(accelerator.device),
                                        enc["attention_mask"].to(accelerator.device), with_fusion_inputs=with_fusion)
                img, txt, tau = outputs[:3]
                txt, negatives = txt[:len(flat)], txt[len(flat):]
                img, txt = gather_with_grad(img.float()), gather_with_grad(txt.float())
                exclude = negatives_mask = None
                # every process builds the same global masks
                if tc.exclude_false_negatives or tc.hard_negatives or tc.itm_twin_negatives:
                    global_indices = accelerator.gather(indices.to(accelerator.device)).cpu().tolist()
                if tc.exclude_false_negatives:
                    exclude = torch.from_numpy(dataset.false_negatives(global_indices)).to(img.device)
                if tc.hard_negatives:
                    negatives = gather_with_grad(negatives.float())
                    negatives_mask = torch.from_numpy(dataset.negative_mask(global_indices, tc.hard_negatives))
                else:
                    negatives = None
                parts = {}
                if tc.weight("itc") > 0:
                    parts["itc"] = compute_loss(cfg, img, txt, tau.float(), captions_per_image, state.step, exclude,
                                                negatives, negatives_mask)
                if with_fusion:
                    global_texts = flat if accelerator.num_processes == 1 else \
                        [t for chunk in gather_object([flat]) for t in chunk]
                    with accelerator.autocast():
                        parts.update(fusion_objectives(
                            raw, img, txt, tau.detach().float(), outputs[3], outputs[4],
                            None if enc is None else enc["attention_mask"].to(accelerator.device),
                            flat, global_texts, state.step, exclude,
                            twin_of=twin_positions(global_indices, twin_partner) if tc.itm_twin_negatives else None,
                            caption_negatives=negative_texts or None,
                            caption_negative_exists=torch.tensor(
                                [[m < len(dataset.hard_negatives(int(i))) for m in range(tc.hard_negatives)]
                                 for i in indices.tolist()]) if tc.itm_caption_negatives else None))
                loss = sum(tc.weight(name) * value for name, value in parts.items())
                accelerator.backward(loss)
            sync = accelerator.sync_gradients
            last_loss = state.last_loss = loss.item()
            last_parts = {name: value.item() for name, value in parts.items()}
            if len(parts) > 1 and accelerator.num_processes > 1:  # ITM / MLM are per process: log their mean
                last_parts = {k: float(v) for k, v in zip(last_parts, accelerator.reduce(
                    torch.tensor(list(last_parts.values()), device=accelerator.device), "mean").tolist())}
                last_loss = state.last_loss = sum(tc.weight(k) * v for k, v in last_parts.items())
            state.batch_in_epoch += 1
            state.micro_step += 1
            if not sync:
                continue
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
    atomic_write_json(out / "summary.json", json_safe(summary))
    if summary["eval"]:
        atomic_write_json(out / "eval_report.json", json_safe({"reports": summary["eval"]}))


def _fmt_loss(loss) -> str:
    return f"{loss:.4f}" if isinstance(loss, (int, float)) and math.isfinite(loss) else "n/a"

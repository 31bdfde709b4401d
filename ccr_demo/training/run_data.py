"""A run's data around the training set: generating the shapes world when the config asks for it
(`prepare_data`), the test sets and typed-query splits evaluated during training, and the
captions to encode into the text-feature cache, also ahead of training (`fill_text_cache`, the
logic of ``train/cache_text_features.py``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from ccr_demo.data.queries import QuerySet
from ccr_demo.data.testset import ParallelTestSet
from ccr_demo.model.text_cache import TextFeatureCache, TextStateCache
from ccr_demo.training.config import ExperimentConfig, needs_token_states
from ccr_demo.training.datasets import (
    MultilingualPretrainDataset,
    build_train_dataset,
    load_eval_queries,
    load_eval_set,
)
from ccr_demo.training.init import build_model


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


def load_query_sets(cfg: ExperimentConfig, eval_sets: Sequence[ParallelTestSet]) -> list[QuerySet | None]:
    """The typed-query split paired with each eval set (None where there is none)."""
    paths = list(cfg.data.eval_queries)
    if len(paths) > len(cfg.data.eval):
        raise ValueError(f"data.eval_queries has {len(paths)} entries for {len(cfg.data.eval)} eval sets")
    paths += [""] * (len(cfg.data.eval) - len(paths))
    return [load_eval_queries(cfg, p, ts) if p else None for p, ts in zip(paths, eval_sets)]

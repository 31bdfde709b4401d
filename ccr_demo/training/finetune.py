"""Retrieval fine-tuning under the paper's zero-shot protocol (PAPER.md Table 1).

Fine-tune a pretrained model on ONE language's training split (English: Flickr30K
``train_ann.jsonl``, a CCRK retrieval JSON, or the shapes world's training split with
``data.languages: [en]``), then evaluate on EVERY language of the test sets
(``data.eval_languages``): the other languages are zero-shot, and MRV over them measures how
consistently the model answers. ``ccr-finetune`` (`ccr_demo.training.cli.finetune`, also
``train/finetune.py``) is the command line.

The training itself is ``ccr_demo.training.loop.train``; this module adds the checks, and a final
evaluation in all ``eval_languages`` written to ``OUTPUT/zero_shot.json``.
"""

from __future__ import annotations

from pathlib import Path

from ccr_demo.training.config import ExperimentConfig
from ccr_demo.training.datasets import check_data_config, eval_languages, load_eval_queries, load_eval_set
from ccr_demo.training.init import check_init_from
from ccr_demo.utils.config import ConfigError
from ccr_demo.utils.fileio import atomic_write_json

ZERO_SHOT_REPORT = "zero_shot.json"


def check_finetune_config(cfg: ExperimentConfig) -> None:
    """ConfigError unless the config describes a zero-shot fine-tuning run this code can do."""
    cfg.validate()
    check_data_config(cfg)
    if len(cfg.languages) != 1:
        raise ConfigError(f"fine-tuning under the zero-shot protocol trains on one language: set data.languages "
                          f"to it (e.g. [en]), got {cfg.languages}")
    if not cfg.train.init_from:  # without it the run would fine-tune random towers (after caching every caption)
        raise ConfigError("train.init_from is empty: fine-tuning starts from a saved model folder, "
                          "e.g. train.init_from=assets/model")
    check_init_from(cfg.train.init_from, cfg.model)
    for path in cfg.data.eval:  # a test set already there is read now (its annotations: cheap), so a language
        if Path(path).exists():  # it lacks is refused before data generation and caption caching, not after
            load_eval_set(cfg, path)


def zero_shot_reports(model, cfg: ExperimentConfig, progress: bool = False) -> list[dict]:
    """Evaluate ``model`` on every ``data.eval`` set in all ``eval_languages`` (with the typed
    queries of ``data.eval_queries`` where given); one report per test set."""
    from ccr_demo.eval.evaluate import evaluate

    langs = eval_languages(cfg)
    queries = list(cfg.data.eval_queries) + [""] * (len(cfg.data.eval) - len(cfg.data.eval_queries))
    reports = []
    for path, qpath in zip(cfg.data.eval, queries):
        ts = load_eval_set(cfg, path)
        qs = load_eval_queries(cfg, qpath, ts) if qpath else None
        report = evaluate(model, ts, langs, progress=progress, queries=qs)
        report["test_set"] = str(path)
        report["trained_on"] = list(cfg.languages)
        report["zero_shot_languages"] = [lang for lang in langs if lang not in cfg.languages]
        reports.append(report)
    return reports


def finetune(cfg: ExperimentConfig, resume: bool = False, progress: bool = True) -> dict:
    """Check, train (ccr_demo.training.loop.train), then evaluate the saved model in every
    eval language; returns the training summary with ``zero_shot`` reports added."""
    from ccr_demo.model.modeling import CCRModel
    from ccr_demo.training.loop import train

    check_finetune_config(cfg)
    summary = train(cfg, resume=resume)
    if summary.get("is_main_process", True) and cfg.data.eval:
        out = Path(cfg.train.output_dir)
        langs = eval_languages(cfg)
        done = summary.get("eval") or []
        if len(done) == len(cfg.data.eval) and all(r.get("languages") == langs for r in done):
            # the trainer's final evaluation already covers every language (its text cache made it cheap)
            reports = [dict(r, test_set=str(p), trained_on=list(cfg.languages),
                            zero_shot_languages=[x for x in langs if x not in cfg.languages])
                       for r, p in zip(done, cfg.data.eval)]
        else:
            reports = zero_shot_reports(CCRModel.from_pretrained(str(out / "model")), cfg, progress=progress)
        summary["zero_shot"] = reports
        atomic_write_json(out / ZERO_SHOT_REPORT, reports)
    return summary

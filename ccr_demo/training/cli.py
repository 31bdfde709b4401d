"""The training command lines: ``ccr-pretrain`` and ``ccr-finetune`` (also ``train/pretrain.py``,
``train/finetune.py`` in a checkout).

    ccr-pretrain [--config CONFIG] [key=value ...] [--resume] [--push-to-hub REPO_ID]
    ccr-finetune --config CONFIG [key=value ...] [--resume]
    accelerate launch train/pretrain.py ...  (several processes / GPUs: the same arguments)

CONFIG is a shipped config name (``default``, ``tiny``, ``paper``, ``finetune_shapes`` ...; see
`ccr_demo.training.configs`) or a YAML file. Overrides use the config's sections, e.g.
``train.lr=3e-4 data.languages=en,de``. The logic lives in `ccr_demo.training.loop` and
`ccr_demo.training.finetune`; these functions parse arguments and turn errors into one line
and an exit status (2: config, data or resume error, 3: the push to the Hub failed).
"""

from __future__ import annotations

import argparse
import sys

from ccr_demo.data.errors import DataFormatError
from ccr_demo.eval.tables import report_table
from ccr_demo.model.hub import HubPushError, push_model_folder
from ccr_demo.training.checkpoints import CheckpointError
from ccr_demo.training.configs import first_sentence, load_config, shipped_configs, shipped_path
from ccr_demo.training.finetune import ZERO_SHOT_REPORT
from ccr_demo.training.finetune import finetune as run_finetune
from ccr_demo.training.loop import release_processes, train
from ccr_demo.utils.config import ConfigError

DEFAULT_CONFIG = "default"
# What a run refuses with one line and exit status 2: each message names the key or the file to fix.
REFUSALS = (ConfigError, DataFormatError, CheckpointError)


def refusal_line(e: BaseException) -> str:
    """The one line a refused run prints: what kind of thing to fix, then the message."""
    kind = "resume" if isinstance(e, CheckpointError) else "data" if isinstance(e, DataFormatError) else "config"
    return f"{kind} error: {e}"


def shipped_configs_help() -> str:
    """The shipped training configs, one a line with the first sentence of its header."""
    lines = []
    for name in shipped_configs():
        about = first_sentence(shipped_path(name))
        lines.append(f"  {name}" + (f"  {about}" if about else ""))
    return "shipped configs (--config NAME):\n" + "\n".join(lines)


def pretrain(argv: list[str] | None = None) -> int:
    """``ccr-pretrain``: train a 1-to-K cross-lingual cross-modal retrieval model.

    Without --config it trains the default recipe, the shipped config ``default`` (the embedded
    default model)."""
    parser = argparse.ArgumentParser(description="Train a 1-to-K cross-lingual cross-modal retrieval model.",
                                     epilog=shipped_configs_help(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None,
                        help=f"a shipped config name or a YAML file with model / data / train sections "
                             f"(default: {DEFAULT_CONFIG}, the embedded default model's recipe)")
    parser.add_argument("--resume", action="store_true", help="continue from the last good checkpoint")
    parser.add_argument("--push-to-hub", default="", metavar="REPO_ID", help="upload the final model to this Hub repo")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    args = parser.parse_args(argv)
    config = args.config
    if config is None:
        config = DEFAULT_CONFIG
        print(f"no --config given: training the default recipe, the shipped config {config!r} "
              "(see --help for the other shipped configs)", file=sys.stderr)
    try:
        cfg = load_config(config, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    try:
        summary = train(cfg, resume=args.resume)
    except REFUSALS as e:
        print(refusal_line(e), file=sys.stderr)
        return 2
    finally:
        release_processes()
    repo = args.push_to_hub or cfg.train.push_to_hub
    if repo and summary.get("is_main_process", True):
        try:
            url = push_model_folder(f"{cfg.train.output_dir}/model", repo)
        except HubPushError as e:
            print(f"push to hub failed: {e}\nthe trained model is intact in {cfg.train.output_dir}/model",
                  file=sys.stderr)
            return 3
        print(f"pushed to {url}")
    return 0


def finetune(argv: list[str] | None = None) -> int:
    """``ccr-finetune``: fine-tune a pretrained model for retrieval on one language, evaluate on all
    (the zero-shot protocol, `ccr_demo.training.finetune`).

    The config names the pretrained model (train.init_from), the one training language
    (data.languages: [en]) and its training file (data.train, data.train_format: ccrk_pretrain |
    iglue | ccrk_json), and the test sets with every language to evaluate (data.eval,
    data.eval_languages). Writes OUTPUT/model and OUTPUT/zero_shot.json (per-language recall, MRV)."""
    parser = argparse.ArgumentParser(
        description="Fine-tune a pretrained model for retrieval on one language, evaluate on all "
                    "(zero-shot protocol).")
    parser.add_argument("--config", required=True,
                        help="a shipped config name or a YAML file, e.g. finetune_shapes")
    parser.add_argument("--resume", action="store_true", help="continue from the last good checkpoint")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        summary = run_finetune(cfg, resume=args.resume)
    except REFUSALS as e:
        print(refusal_line(e), file=sys.stderr)
        return 2
    finally:
        release_processes()
    for report in summary.get("zero_shot", []):
        print(f"{report['test_set']} (trained on {report['trained_on']}, zero-shot: {report['zero_shot_languages']})")
        print(report_table(report))
    if summary.get("zero_shot"):
        print(f"written to {cfg.train.output_dir}/{ZERO_SHOT_REPORT}")
    return 0

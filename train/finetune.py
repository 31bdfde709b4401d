"""Fine-tune a pretrained model for retrieval on one language, evaluate on all (zero-shot protocol).

    accelerate launch train/finetune.py --config train/configs/finetune_shapes.yaml [key=value ...] [--resume]

The config names the pretrained model (train.init_from), the one training language
(data.languages: [en]) and its training file (data.train, data.train_format: ccrk_pretrain |
iglue | ccrk_json), and the test sets with every language to evaluate (data.eval,
data.eval_languages). Writes OUTPUT/model and OUTPUT/zero_shot.json (per-language recall, MRV).
All logic lives in ccr_demo.training.finetune and ccr_demo.training.loop.
"""

import argparse
import sys

from ccr_demo.eval.tables import report_table
from ccr_demo.training.checkpoints import CheckpointError
from ccr_demo.training.config import ExperimentConfig
from ccr_demo.training.finetune import ZERO_SHOT_REPORT, finetune
from ccr_demo.training.loop import release_processes
from ccr_demo.utils.config import ConfigError, load_yaml


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML file, e.g. train/configs/finetune_shapes.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from the last good checkpoint")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    args = parser.parse_args(argv)
    try:
        cfg = load_yaml(ExperimentConfig, args.config, args.overrides)
        summary = finetune(cfg, resume=args.resume)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except CheckpointError as e:
        print(f"resume error: {e}", file=sys.stderr)
        return 2
    finally:
        release_processes()
    for report in summary.get("zero_shot", []):
        print(f"{report['test_set']} (trained on {report['trained_on']}, zero-shot: {report['zero_shot_languages']})")
        print(report_table(report))
    if summary.get("zero_shot"):
        print(f"written to {cfg.train.output_dir}/{ZERO_SHOT_REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

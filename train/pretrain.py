"""Train a 1-to-K cross-lingual cross-modal retrieval model.

    accelerate launch train/pretrain.py [--config CONFIG] [key=value ...] [--resume]

Without --config it trains the default recipe, train/configs/default.yaml (the embedded
default model). Overrides use the config's sections, e.g. ``train.lr=3e-4
data.languages=en,de``. All logic lives in ccr_demo.training.loop; this script only parses
arguments and reports errors.
"""

import argparse
import sys
from pathlib import Path

from ccr_demo.model.hub import HubPushError, push_model_folder
from ccr_demo.training.checkpoints import CheckpointError
from ccr_demo.training.config import ExperimentConfig
from ccr_demo.training.loop import release_processes, train
from ccr_demo.utils.config import ConfigError, load_yaml

CONFIGS = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = CONFIGS / "default.yaml"


def _shipped_configs() -> str:
    lines = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        comment = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            comment.append(line.lstrip("# ").strip())
        about = " ".join(comment).split(". ")[0].rstrip(".")  # the first sentence of its header
        lines.append(f"  {path.relative_to(CONFIGS.parent.parent)}" + (f"  {about}" if about else ""))
    return "shipped configs (train/configs/):\n" + "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=_shipped_configs(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None,
                        help=f"YAML file with model / data / train sections (default: {DEFAULT_CONFIG.parent.parent.name}/"
                             f"configs/{DEFAULT_CONFIG.name}, the embedded default model's recipe)")
    parser.add_argument("--resume", action="store_true", help="continue from the last good checkpoint")
    parser.add_argument("--push-to-hub", default="", metavar="REPO_ID", help="upload the final model to this Hub repo")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    args = parser.parse_args(argv)
    config = args.config
    if config is None:
        config = str(DEFAULT_CONFIG)
        print(f"no --config given: training the default recipe {config} "
              "(see --help for the other shipped configs)", file=sys.stderr)
    try:
        cfg = load_yaml(ExperimentConfig, config, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    try:
        summary = train(cfg, resume=args.resume)
    except CheckpointError as e:
        print(f"resume error: {e}", file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())

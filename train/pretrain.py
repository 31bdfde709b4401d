"""Train a 1-to-K cross-lingual cross-modal retrieval model.

    accelerate launch train/pretrain.py --config train/configs/tiny.yaml [key=value ...] [--resume]

Overrides use the config's sections, e.g. ``train.lr=3e-4 data.languages=en,de``. All logic
lives in ccr_demo.training; this script only parses arguments and reports errors.
"""

import argparse
import sys

from ccr_demo.config import ConfigError, ExperimentConfig, load_yaml
from ccr_demo.hub import HubPushError, push_model_folder
from ccr_demo.training import release_processes, train


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML file with model / data / train sections")
    parser.add_argument("--resume", action="store_true", help="continue from the last good checkpoint")
    parser.add_argument("--push-to-hub", default="", metavar="REPO_ID", help="upload the final model to this Hub repo")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    args = parser.parse_args(argv)
    try:
        cfg = load_yaml(ExperimentConfig, args.config, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    try:
        summary = train(cfg, resume=args.resume)
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

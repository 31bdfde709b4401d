"""Fill the text-feature cache of a run before training it (locked text tower only).

    python train/cache_text_features.py --config train/configs/default.yaml [key=value ...]

Generates the shapes world if the config asks for it, then encodes every distinct caption of
the run (training variants, test captions, typed queries) into the per-string store that
`train/pretrain.py` reads (ccr_demo.model.text_cache). Killed, it resumes where it stopped. Prints
the timings and the cache statistics as JSON. All logic lives in ccr_demo.training.loop.
"""

import argparse
import json
import sys

from ccr_demo.training.config import ExperimentConfig
from ccr_demo.training.run_data import fill_text_cache
from ccr_demo.utils.config import ConfigError, load_yaml


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="train/configs/default.yaml")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    args = parser.parse_args(argv)
    try:
        cfg = load_yaml(ExperimentConfig, args.config, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    if not (cfg.train.lock_text and cfg.train.cache_text_features):
        print("config error: caching needs train.lock_text and train.cache_text_features", file=sys.stderr)
        return 2
    print(json.dumps(fill_text_cache(cfg), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

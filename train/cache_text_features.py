"""Fill the text-feature cache of a run before training it (locked text tower only).

    python train/cache_text_features.py --config default [key=value ...]

Generates the shapes world if the config asks for it, then encodes every distinct caption of
the run (training variants, test captions, typed queries) into the per-string store that
`train/pretrain.py` reads (ccr_demo.model.text_cache). Killed, it resumes where it stopped. Prints
the timings and the cache statistics as JSON. CONFIG is a shipped config name (``default``,
``default-ccrk`` ...) or a YAML file. All logic lives in ccr_demo.training.run_data.
"""

import argparse
import json
import sys

from ccr_demo.training.configs import load_config
from ccr_demo.training.run_data import fill_text_cache
from ccr_demo.utils.config import ConfigError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default", help="a shipped config name or a YAML file (default: default)")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
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

"""Train a 1-to-K cross-lingual cross-modal retrieval model (the ``ccr-pretrain`` command).

    accelerate launch train/pretrain.py [--config CONFIG] [key=value ...] [--resume]

CONFIG is a shipped config name (``default``, ``tiny``, ``paper`` ...) or a YAML file; without
--config it trains the default recipe, the shipped config ``default`` (the embedded default
model). All logic lives in ccr_demo.training.cli.pretrain and ccr_demo.training.loop.
"""

import sys

from ccr_demo.training.cli import pretrain as main

if __name__ == "__main__":
    sys.exit(main())

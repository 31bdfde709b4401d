"""Fine-tune a pretrained model for retrieval on one language, evaluate on all (the ``ccr-finetune`` command).

    accelerate launch train/finetune.py --config finetune_shapes [key=value ...] [--resume]

CONFIG is a shipped config name (``finetune_shapes``, ``finetune_384``) or a YAML file. All
logic lives in ccr_demo.training.cli.finetune, ccr_demo.training.finetune and
ccr_demo.training.loop.
"""

import sys

from ccr_demo.training.cli import finetune as main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m ccr_demo.training.ablation`: the command line of `ccr_demo.training.ablation.run`."""

import sys

from ccr_demo.training.ablation.run import main

sys.exit(main())

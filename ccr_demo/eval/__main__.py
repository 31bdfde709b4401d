"""`python -m ccr_demo.eval`: the command line of `ccr_demo.eval.evaluate`."""

import sys

from ccr_demo.eval.evaluate import main

sys.exit(main())

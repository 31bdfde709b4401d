"""`python -m ccr_demo.gallery`: the command line of `ccr_demo.gallery.cli`."""

import sys

from ccr_demo.gallery.cli import main

sys.exit(main())

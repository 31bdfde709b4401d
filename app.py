"""Gradio demo entry point (the Hugging Face Space's app_file); all logic lives in ccr_demo.ui."""

import os
from pathlib import Path

# torch and faiss each keep an OpenMP pool; spinning idle threads make one wait for the other
# on small machines (measured 5-20x slower searches on 2 cores, docs/bench/bench_index.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ccr_demo.ui.memory import limit_malloc_arenas

limit_malloc_arenas()  # before any request thread exists: RSS stays flat under load (docs/bench/bench_load.md)

from ccr_demo.ui import build_demo, launch_options, queue_options

# The embedded default (model, gallery, test set, models.json) when no CCR_* variable names one.
ASSETS = Path(__file__).resolve().parent / "assets"

if __name__ == "__main__":
    # background: the page is served first (about 5 s), the models load behind it; the page says
    # so, and runs its first example once they are there (docs/bench/bench_startup.md)
    build_demo(assets_dir=ASSETS, background=True).queue(**queue_options()).launch(**launch_options())

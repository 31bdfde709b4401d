"""What a benchmark report says about the machine it ran on (shared by the bench scripts, which
run as ``python bench/NAME.py``, so this folder is on their import path)."""

from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return "unknown CPU"


def machine() -> str:
    """Cores, CPU, Python, torch and faiss with their thread counts, numpy, OMP_WAIT_POLICY."""
    import faiss
    import numpy as np
    import torch

    return (f"{os.cpu_count()} CPU cores ({cpu_name()}), Python {platform.python_version()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), faiss {faiss.__version__} ({faiss.omp_get_max_threads()} threads), "
            f"numpy {np.__version__}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")

"""Issue 11 item 16: the app's resident memory (1.76 GB at rest, growing with upload waves).

The figures come from bench/bench_load.py (docs/bench/bench_load.md); these tests check the mechanisms:
clean memory-mapped weight pages are released with their contents unchanged, written ones are
left alone, and freed heap goes back to the OS.
"""

import sys

import numpy as np
import pytest

from ccr_demo.ui import memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="smaps/madvise: Linux only")


def _mapped_rss(path) -> int:
    """Resident bytes of this process's mappings of ``path`` (its own part of the RSS: the
    process's total also moves with whatever other threads allocate meanwhile)."""
    text = open("/proc/self/smaps", encoding="utf-8", errors="replace").read()
    return sum(fields.get("Rss", 0) * 1024 for header, fields in memory._smaps_blocks(text)
               if header.split()[-1] == str(path))


def test_clean_mapped_weights_are_released_and_read_back_unchanged(tmp_path):
    data = np.random.default_rng(0).standard_normal(16 << 20).astype(np.float32)  # 64 MB
    path = tmp_path / "w.safetensors"
    data.tofile(path)
    clean = np.memmap(path, dtype=np.float32, mode="c")  # private copy-on-write, as transformers maps it
    total = float(clean.sum())  # every page resident, as the start-up weights hash leaves them
    assert _mapped_rss(path) >= 60 << 20
    released = memory.drop_clean_weight_pages()
    assert released >= 60 << 20 and _mapped_rss(path) < 1 << 20
    assert float(clean.sum()) == total  # read back from the file: the same numbers


def test_a_written_mapping_is_left_alone(tmp_path):
    path = tmp_path / "w.safetensors"
    np.zeros(4 << 20, np.float32).tofile(path)
    written = np.memmap(path, dtype=np.float32, mode="c")
    written[:] = 1.0  # private pages now differ from the file
    memory.drop_clean_weight_pages()
    assert float(written.sum()) == 4 << 20  # not reverted to the file's zeros


def test_release_memory_and_arena_limit_do_not_fail():
    assert isinstance(memory.release_memory(), bool)
    assert isinstance(memory.limit_malloc_arenas(2), bool)

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


def test_launch_bounds_the_sessions_gradio_keeps():
    """Issue 23 item 13: Gradio keeps every session (a copy of the app's config and its last
    outputs, ~1.1 MB for this app) until 10,000 sessions by default: memory grew per visitor."""
    from ccr_demo.ui import Limits, launch_options

    assert launch_options()["state_session_capacity"] == Limits().max_sessions <= 1000
    assert launch_options(Limits(max_sessions=7))["state_session_capacity"] == 7


@pytest.mark.slow
def test_memory_stops_growing_with_new_sessions_at_the_cap(tmp_path_factory):
    """20 new sessions, each one search, against a demo capped at 4 sessions: Gradio holds 4, and
    the Python memory traced after the 20th is what it was after the 4th (today's main: every
    session kept, ~0.5 MB of Python objects each)."""
    import gc
    import tracemalloc

    from gradio_client import Client
    from test_ui_callbacks import build_tiny_assets, load_state

    from ccr_demo.ui import Limits, build_demo, launch_options, queue_options

    state = load_state(build_tiny_assets(tmp_path_factory.mktemp("sessions"), n_test=8))
    demo = build_demo(state=state)
    demo.queue(**queue_options())
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True,
                            **launch_options(Limits(max_sessions=4)))
    try:
        client = Client(url, verbose=False, download_files=False)

        def new_sessions(n):
            for _ in range(n):
                client.reset_session()
                client.predict(languages=["en", "de"], k=3, gallery="default gallery", en="a red circle",
                               de="ein roter Kreis", api_name="/search")
            gc.collect()
            return tracemalloc.get_traced_memory()[0]

        tracemalloc.start(1)
        try:
            before = new_sessions(1)
            at_cap = new_sessions(4)
            after = new_sessions(16)
        finally:
            tracemalloc.stop()
        held = len(demo.state_holder.session_data)
    finally:
        demo.close()
    per_session = (at_cap - before) / 4
    assert held <= 4 and per_session > 50_000  # the cap is reached, and each session does cost memory
    assert after - at_cap < 4 * per_session, (before, at_cap, after)  # 16 more sessions, not 16x more memory

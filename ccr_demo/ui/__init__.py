"""Gradio demo: text-to-image search in many languages side by side, rank consistency (MRV),
gold mode, image-to-text, a session gallery and evaluation.

``build_demo(assets_dir=...)`` loads everything (see ``state`` and ``loading``) and returns the
Blocks; with ``background=True`` (``app.py``) it returns them at once, built from what needs no
torch, and loads the models behind the served page. ``app.py`` names its ``assets/`` folder as
the embedded default and queues and launches the demo with ``queue_options()`` / ``launch_options()``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ccr_demo.ui.loading import finish_loading, load_app_state, plan_app_state
from ccr_demo.ui.state import AppState, Limits

__all__ = ["build_demo", "queue_options", "launch_options", "AppState", "Limits", "load_app_state"]


def build_demo(model_dir: str | Path | None = None, gallery_dir: str | Path | None = None,
               testset_dir: str | Path | None = None, captions_dir: str | Path | None = None, *,
               assets_dir: str | Path | None = None, state: AppState | None = None, background: bool = False,
               **load_kwargs):
    """The demo's gr.Blocks. Paths given here win over CCR_MODEL / CCR_GALLERY / CCR_TESTSET /
    CCR_CAPTIONS / CCR_MODELS, which win over the embedded default in ``assets_dir`` (``app.py``
    passes its ``assets/``; None: no default); missing pieces are shown in the app, never raised.
    ``state``: an already loaded AppState (tests, benchmarks). ``background``: build and return
    the Blocks before the models are loaded (``loading.plan_app_state``) and load them in a
    thread (``loading.finish_loading``); requests wait for them (``AppState.wait_loaded``), and
    the page says it is loading. The state is kept as ``demo.ccr_state``."""
    from ccr_demo.ui.layout import build_layout  # gradio (~2 s): only when a demo is built

    if state is not None:
        app = state
    elif background:
        app = plan_app_state(model_dir, gallery_dir, testset_dir, captions_dir, assets=assets_dir, **load_kwargs)
    else:
        app = load_app_state(model_dir, gallery_dir, testset_dir, captions_dir, assets=assets_dir, **load_kwargs)
    # No folder is registered with gr.set_static_paths: each result image is copied into Gradio's
    # cache when it is shown (serving.py), so only the gallery's images are ever served.
    demo = build_layout(app)
    demo.ccr_state = app
    if app.loaded.is_set():
        app.start_background_work()
    else:
        def load() -> None:
            finish_loading(app)
            app.start_background_work()

        threading.Thread(target=load, name="ccr-load", daemon=True).start()
    return demo


def queue_options() -> dict:
    """Bounded work: at most 2 requests run at once (2 CPU cores), 32 wait; more are refused."""
    return {"default_concurrency_limit": 2, "max_size": 32}


def launch_options(limits: Limits | None = None) -> dict:
    """Launch arguments (Gradio 6 takes theme/css here, not in Blocks). ``state_session_capacity``:
    Gradio keeps every session's copy of the app's config and its last outputs (~1.1 MB for this
    app) until 10,000 sessions by default, so memory grew by that much per visitor; the oldest
    idle sessions beyond ``Limits.max_sessions`` are dropped instead."""
    limits = limits or Limits()
    return {"max_file_size": "25mb", "show_error": False, "css": CSS, "state_session_capacity": limits.max_sessions}


# Result panes: each caption (id, position and score, rank in every language) sits under its
# image, whole, instead of one truncated line over it, so an image is recognisable across panes.
CSS = """
.ccr-pane .grid-wrap { padding-top: 2.2em; }
.ccr-pane .grid-container { grid-auto-rows: auto; grid-template-rows: none; }
.ccr-pane .thumbnail-item { aspect-ratio: auto; height: auto; overflow: visible; }
.ccr-pane .thumbnail-item img { aspect-ratio: 1 / 1; height: auto; }
.ccr-pane .caption-label { position: static; white-space: pre-line; max-width: 100%; opacity: 1;
  font-size: 11px; line-height: 1.3; border: none; border-radius: 0; }
#mrv h3 { font-size: 1.6em; }
.ccr-whole .grid-wrap.fixed-height { max-height: none; min-height: 0; overflow-y: visible; }
.ccr-row .thumbnail-item img { max-height: 150px; object-fit: contain; }
.ccr-row .grid-container { grid-template-columns: repeat(auto-fill, minmax(120px, 170px)) !important; }
.ccr-grid { display: grid; gap: 6px 14px; align-items: start; }
.ccr-grid .lang { font-weight: 600; padding-top: 4px; overflow-wrap: anywhere; }
.ccr-grid .lang small { display: block; font-weight: 400; opacity: 0.7; }
.ccr-grid .cell { display: grid; gap: 4px; }
.ccr-grid .cell.poor { outline: 2px dashed #d55e00; outline-offset: 2px; }
.ccr-grid figure { margin: 0; min-width: 0; }
.ccr-grid img { width: 100%; max-width: 140px; aspect-ratio: 1 / 1; object-fit: contain; display: block; }
.ccr-grid figcaption { font-size: 11px; line-height: 1.25; overflow-wrap: anywhere; }
.ccr-grid .head { font-size: 1.05em; line-height: 1.4; }
.ccr-grid .head b.mrv { font-size: 1.8em; }
.ccr-grid .note { font-size: 11px; opacity: 0.8; }
#examples .gallery-item { padding: 4px 10px; }
"""
# .ccr-whole: a pane is as tall as its rows: not capped at Gradio's height="auto" 55% of the
# window (which hid the last ones behind a scrollbar), nor padded to its 450 px minimum. .ccr-row: a language's results on one row of
# thumbnails of a readable size. .ccr-grid: the side-by-side view (compare_view.grid_html).

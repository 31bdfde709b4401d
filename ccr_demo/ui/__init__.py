"""Gradio demo: text-to-image search in many languages side by side, rank consistency (MRV),
gold mode, image-to-text, a session gallery and evaluation.

``build_demo(assets_dir=...)`` loads everything once (see ``state`` and ``loading``) and
returns the Blocks; ``app.py`` names its ``assets/`` folder as the embedded default and queues
and launches the demo with ``queue_options()`` / ``launch_options()``.
"""

from __future__ import annotations

from pathlib import Path

from ccr_demo.ui.loading import load_app_state
from ccr_demo.ui.state import AppState, Limits

__all__ = ["build_demo", "queue_options", "launch_options", "AppState", "Limits", "load_app_state"]


def build_demo(model_dir: str | Path | None = None, gallery_dir: str | Path | None = None,
               testset_dir: str | Path | None = None, captions_dir: str | Path | None = None, *,
               assets_dir: str | Path | None = None, state: AppState | None = None, **load_kwargs):
    """The demo's gr.Blocks. Paths given here win over CCR_MODEL / CCR_GALLERY / CCR_TESTSET /
    CCR_CAPTIONS / CCR_MODELS, which win over the embedded default in ``assets_dir`` (``app.py``
    passes its ``assets/``; None: no default); missing pieces are shown in the app, never raised.
    ``state``: an already loaded AppState (tests, benchmarks). The loaded state is kept as
    ``demo.ccr_state``."""
    from ccr_demo.ui.layout import build_layout  # gradio (~2 s): only when a demo is built

    app = state if state is not None else load_app_state(model_dir, gallery_dir, testset_dir, captions_dir,
                                                         assets=assets_dir, **load_kwargs)
    app.start_background_work()
    # No folder is registered with gr.set_static_paths: each result image is copied into Gradio's
    # cache when it is shown (serving.py), so only the gallery's images are ever served.
    demo = build_layout(app)
    demo.ccr_state = app
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
.ccr-whole .grid-wrap.fixed-height { max-height: none; overflow-y: visible; }
"""
# .ccr-whole: a comparison pane shows every row (a row per language) instead of Gradio's
# height="auto" cap of 55% of the window, which hid the last languages behind a scrollbar.

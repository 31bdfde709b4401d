"""The Gradio Blocks: components, and thin event handlers that map callbacks' results onto them.

Gradio needs a fixed set of components, so all ten languages get a textbox and a result pane
up front; choosing languages shows or hides them. Handlers here only translate (component
values in, ``callbacks`` results out); the work and every number live in ``callbacks``.

Named API endpoints (gradio_client): ``search``, ``gold``, ``image_to_text``, ``evaluate``,
``build_gallery``. Other events are private. ``search`` and ``gold`` take ``rerank`` (default
false) and ``rerank_k`` (default 16) last: clients that do not name them are unaffected.
With two or more models (``AppState.comparing``) the search tab also shows them side by side
and three more endpoints exist: ``compare``, ``compare_gold`` and ``evaluate_compare``
(``compare_view``); with one model nothing of it is built.

Each tab is a module of ``tabs`` (``search``, ``image_to_text``, ``gallery``, ``evaluate``,
``about``, and ``compare`` for the side-by-side sections) that builds its components and wires
its events; ``build_layout`` composes them and hands each the components of the others it
needs (a click in a search pane fills the image-to-text tab; a built gallery switches the
search tab's gallery choice).
"""

from __future__ import annotations

import gradio as gr

from ccr_demo.ui.state import AppState
from ccr_demo.ui.tabs import about, compare, evaluate, gallery, image_to_text, search
from ccr_demo.ui.tabs.common import Session

INTRO = """# One query, many languages: cross-lingual cross-modal retrieval
A model trained with **1-to-K contrastive learning** (Nie et al., KDD 2024) should rank the same image the
same way whatever the language of the query; **MRV** is the spread (std) of that image's rank across
languages, 0 = perfectly consistent. Click an example below, or type a query in several languages and press Search.
"""


def build_layout(app: AppState) -> gr.Blocks:
    """All tabs and events. ``app`` is shared and read-only; per-session data lives in gr.State.
    Built from what ``loading.plan_app_state`` knows: the models may still be loading (the page
    load event waits for them, ``tabs.search``)."""
    ttl = app.limits.session_ttl_s
    # delete_cache: Gradio's own sweep of this app's uploads and served copies older than the TTL
    with gr.Blocks(title="CCR demo: one query, many languages", delete_cache=(max(60, min(600, ttl)), ttl)) as demo:
        gr.Markdown(INTRO)
        load_line = gr.Markdown(app.status_markdown(), elem_id="load-status")
        with gr.Accordion("Where the models and data come from", open=False, elem_id="load-sources"):
            sources = gr.Markdown(app.sources_markdown())
        session = Session(gallery=gr.State(None, time_to_live=ttl),  # dropped after the TTL, like its files
                          gold=gr.State(None), rows=gr.State({}))

        with gr.Tabs() as tabs:
            search_tab = search.build(app, session)
            i2t_tab = image_to_text.build(app)
            gallery_tab = gallery.build(app)
            eval_tab = evaluate.build(app)
            about_status = about.build(app)

        # events, in the order they always had (Gradio numbers them)
        search.wire(app, demo, search_tab, session, [load_line, sources], about_status)
        image_to_text.wire(app, demo, i2t_tab, search_tab.languages, search_tab.panes, session, tabs)
        gallery.wire(app, demo, gallery_tab, session, search_tab.which)
        evaluate.wire(app, eval_tab)
        if app.comparing:
            compare.wire(app, eval_tab.compare, eval_tab.max_instances, eval_tab.languages)
    return demo

"""The "Text → image" tab: one query per chosen language, a result row per language, the rank
heat-table and overlap; gold mode; fusion re-ranking; with two or more models the side-by-side
section (``tabs.compare``) above the detail view. Endpoints ``search`` and ``gold`` (both take
``rerank`` and ``rerank_k``, defaults false and 16, then ``models``, the models to compare).

One handler fills both views (``search_all``), from one set of inputs, so the side-by-side view
and the detail view always show the same query. Examples fill the boxes in the browser, at once
(no round trip), then search: a Search pressed meanwhile reads the example's text, never empty
boxes. The page is served before the models are loaded; its load event waits for them, then
enables the controls and runs the first example, so the first screen shows a result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import gradio as gr

from ccr_demo import LANGUAGES
from ccr_demo.ui import callbacks as cb
from ccr_demo.ui import compare_view, inputs
from ccr_demo.ui.examples import example_rows
from ccr_demo.ui.model_info import rerank_effect
from ccr_demo.ui.rerank_view import DEFAULT_RERANK_K
from ccr_demo.ui.state import AppState
from ccr_demo.ui.tabs import compare
from ccr_demo.ui.tabs.common import (
    DEFAULT_GALLERY,
    EXAMPLES,
    LANGUAGE_NAMES,
    MY_GALLERY,
    Session,
    pane_label,
    search_outputs,
    warn,
)

TAB_ID = "search"


@dataclass
class SearchTab:
    """The tab's components that events (its own and other tabs') read or fill."""

    languages: gr.CheckboxGroup
    k: gr.Slider
    which: gr.Radio  # default gallery or this session's own
    rerank_row: gr.Row  # shown only for a model with a fusion encoder
    rerank: gr.Checkbox
    rerank_k: gr.Slider
    boxes: list  # a query Textbox per language (LANGUAGES order)
    search_btn: gr.Button
    gold_btn: gr.Button
    instance_no: gr.Number
    examples: gr.Dataset
    outputs: list  # what search_outputs() fills: status, MRV, table, overlap, JSON, rows state, panes
    panes: list  # a result Gallery per language (LANGUAGES order)
    compare: dict | None  # the side-by-side section's components (two or more models), else None
    results: gr.Column  # both views, shown once the first example has run


def rerank_info(app: AppState) -> str:
    """The re-rank switch's help: what re-ranking does, and what it measurably does for this model."""
    info = app.info()
    effect = rerank_effect(info) if info is not None else "its effect was not measured"
    return ("each language's contrastive top k re-ordered by the image-text matching head; ranks and MRV "
            f"shown without → with. For this model, {effect}.")


def build(app: AppState, session: Session) -> SearchTab:
    """The tab and its components (call inside ``gr.Tabs``). Search, gold mode and the boxes start
    disabled: the page load event enables them once the models are loaded (``wire``)."""
    n_test = len(app.test_set) if app.test_set is not None else 0
    with gr.Tab("Text → image", id=TAB_ID):
        with gr.Row():
            languages = inputs.CheckboxGroup(list(LANGUAGES), value=app.default_languages, label="Languages",
                                             scale=4, elem_id="languages")
            k = inputs.Slider(1, app.limits.max_k, value=5, step=1, label="Top k", scale=1)
            which = inputs.Radio([DEFAULT_GALLERY, MY_GALLERY], value=DEFAULT_GALLERY, label="Search in", scale=1)
        # A dual encoder has nothing to re-rank with: the row is hidden (the API answers rerank=true
        # with the reason). While the models load it is hidden too; the load event shows it.
        with gr.Row(equal_height=True, visible=app.can_rerank, elem_id="rerank-row") as rerank_row:
            rerank = inputs.Checkbox(False, label="Re-rank top-k with the fusion encoder (ITM)", elem_id="rerank",
                                     scale=2, info=rerank_info(app) if app.can_rerank else "")
            rerank_k = inputs.Slider(1, app.limits.max_rerank_k, value=DEFAULT_RERANK_K, step=1,
                                     label="Re-rank k", elem_id="rerank-k", scale=1)
        with gr.Row(equal_height=True):
            boxes = [gr.Textbox("", label=f"{lang} · {LANGUAGE_NAMES[lang]}", placeholder=EXAMPLES[lang],
                                visible=lang in app.default_languages, min_width=150, interactive=False,
                                elem_id=f"query-{lang}") for lang in LANGUAGES]
        with gr.Row():
            search_btn = gr.Button("Search", variant="primary", elem_id="search-button", interactive=False)
            gold_btn = gr.Button("Random test instance (gold mode)", elem_id="gold-button", interactive=False)
            instance_no = inputs.Number(-1, precision=0, label="Instance # (-1 = random)", minimum=-1,
                                        maximum=max(n_test - 1, 0), min_width=120)
        # One line of chips, not a 7 x 10 table: Search stays on the first screen. A click fills
        # every language's box with the same query, then searches it.
        rows = example_rows()
        examples = gr.Dataset(components=["textbox"], samples=[[row[0]] for row in rows], type="index",
                              label="Examples: click one to search it in every language", layout="gallery",
                              samples_per_page=len(rows), elem_id="examples")
        status = gr.Markdown(elem_id="search-status")
        # hidden until the page load event has run the first example: no empty frames and tables
        with gr.Column(visible=False, elem_id="results") as results:
            compare_ui = compare.build_section(app) if app.comparing else None
            if app.comparing:
                gr.Markdown(f"#### {app.model_names[0]} in detail: every result, every rank, overlap",
                            elem_id="main-model-head")
            mrv_md = gr.Markdown(elem_id="mrv")
            with gr.Column():  # a row per language, the page's width: labels whole, no pane scrolling on its own
                panes = [gr.Gallery(label=pane_label(lang), visible=lang in app.default_languages,
                                    columns=5, height="auto", object_fit="contain", allow_preview=False,
                                    elem_id=f"pane-{lang}", elem_classes=["ccr-pane", "ccr-whole", "ccr-row"])
                         for lang in LANGUAGES]
            gr.Markdown("#### Rank of each returned image in every language (1 = top, over the whole gallery; "
                        "green: in that language's top k, darker = higher; orange: within 10 k; red: further)")
            # every row at once (the page scrolls, not the table): the table is read beside the rows above
            table = gr.Dataframe(elem_id="rank-table", max_height=2000, wrap=True, interactive=False)
            overlap = gr.Dataframe(label="Pairwise top-k overlap", elem_id="overlap", interactive=False)
            with gr.Accordion("Raw numbers (JSON)", open=False):
                summary = gr.JSON()
    return SearchTab(languages, k, which, rerank_row, rerank, rerank_k, boxes, search_btn, gold_btn, instance_no,
                     examples, [status, mrv_md, table, overlap, summary, session.rows, *panes], panes, compare_ui,
                     results)


def fill_js(rows: list[list[str]]) -> str:
    """The browser side of an example click: the clicked example's text in every box, at once."""
    return ("(clicked) => { const rows = " + json.dumps(rows, ensure_ascii=False)
            + "; const i = Array.isArray(clicked) ? clicked[0] : clicked; return rows[i]; }")


def wire(app: AppState, demo: gr.Blocks, tab: SearchTab, session: Session, load_status: list,
         about_status: gr.Markdown) -> None:
    """Language choice, search (button, Enter in a box, an example), gold mode, and the page load
    (which waits for the models, then enables the controls and runs the first example).
    ``load_status``: the load line and the folded "where from" Markdown; ``about_status``: the
    About tab's copy of the load line."""
    languages, boxes, panes = tab.languages, tab.boxes, tab.panes
    comparing = tab.compare is not None
    models_input = [tab.compare["models"]] if comparing else []
    compare_outputs = compare.compare_components(tab.compare) if comparing else []

    def on_languages(selected):
        selected = selected or []
        return [gr.update(visible=lang in selected) for lang in LANGUAGES] * 2

    languages.change(on_languages, languages, [*boxes, *panes], api_visibility="private", queue=False)

    def pick_gallery(choice, session):
        if choice == MY_GALLERY:
            if session is None:
                return None, "You have not built a gallery yet (tab *Your own gallery*): searched the default one."
            return session, None
        return None, None

    def search_all(selected, texts, k, gallery_choice=DEFAULT_GALLERY, session_gallery=None, gold=None,
                   rerank=False, rerank_k=DEFAULT_RERANK_K, models=None) -> list:
        """Both views of one query: the detail view's outputs, then the side-by-side view's."""
        if not selected:
            res = cb.SearchResult(False, "Choose at least one language (`languages` is empty).")
            warn([res.message])
            return [*search_outputs(res, selected), *([res.message, "", {}] if comparing else [])]
        chosen, note = pick_gallery(gallery_choice, session_gallery)
        queries = {lang: texts.get(lang) for lang in LANGUAGES if lang in selected}
        res = cb.search(app, queries, k, gallery=chosen, gold=gold if chosen is None else None, rerank=rerank,
                        rerank_k=rerank_k)
        if note:
            res.message = f"- {note}\n" + res.message
        warn(([note] if note else []) + res.warnings)
        out = search_outputs(res, selected, mine=chosen is not None, comparing=comparing)
        if comparing:
            c = compare_view.compare(app, queries, k, models, gold=gold) if res.ok else \
                compare_view.Comparison(False, res.message)
            out += compare.compare_outputs(app, c, quiet=True)
        return out

    def on_search(languages, k, gallery, session, gold, en, de, fr, cs, zh, ja, id, es, ru, tr,  # noqa: A002
                  rerank=False, rerank_k=DEFAULT_RERANK_K, models=None):
        """Named parameters: they are the API's parameter names (gradio_client)."""
        texts = dict(zip(LANGUAGES, (en, de, fr, cs, zh, ja, id, es, ru, tr)))
        return search_all(list(languages or []), texts, k, gallery, session, gold, rerank, rerank_k, models)

    # One Gradio group for every event that may re-rank, with more workers than cores: a request
    # waiting for the re-ranking lane holds a worker, never a core or the search lane (lanes.py),
    # so ordinary searches keep theirs (issue 23 item 4).
    lane = {"concurrency_id": "search", "concurrency_limit": app.limits.search_concurrency}
    search_inputs = [languages, tab.k, tab.which, session.gallery, session.gold, *boxes, tab.rerank, tab.rerank_k,
                     *models_input]
    outputs = [*tab.outputs, *compare_outputs]
    tab.search_btn.click(on_search, search_inputs, outputs, api_name="search", **lane,
                         api_description="Search the gallery with one query per chosen language (with two or more "
                                         "models, every chosen model side by side too).")
    for box in boxes:
        box.submit(on_search, search_inputs, outputs, api_visibility="private", **lane)

    # An example: its text in every box in the browser at once, then the search, gold mode off.
    rows = example_rows()

    def on_example(*values):
        return [None, *on_search(*values[:4], None, *values[4:])]

    example_inputs = [languages, tab.k, tab.which, session.gallery, *boxes, tab.rerank, tab.rerank_k, *models_input]
    tab.examples.click(None, [tab.examples], boxes, js=fill_js(rows), queue=False).then(
        on_example, example_inputs, [session.gold, *outputs], api_visibility="private", **lane)

    def on_gold(languages, k, instance, rerank=False, rerank_k=DEFAULT_RERANK_K, models=None):
        selected = list(languages or [])
        inst = cb.random_instance(app, selected, instance)
        if inst.gold is None:
            gr.Warning(inst.message.split(". ")[0])
            res = cb.SearchResult(False, inst.message)
            return [*[gr.update() for _ in LANGUAGES], None, *search_outputs(res, selected),
                    *([inst.message, "", {}] if comparing else [])]
        out = search_all(selected, inst.texts, k, gold=inst.gold, rerank=rerank, rerank_k=rerank_k, models=models)
        out[0] = inst.message + ("\n\n" + out[0] if out[0] else "")
        fills = [inst.texts[lang] if lang in inst.texts else gr.update() for lang in LANGUAGES]
        return [*fills, inst.gold, *out]

    tab.gold_btn.click(on_gold, [languages, tab.k, tab.instance_no, tab.rerank, tab.rerank_k, *models_input],
                       [*boxes, session.gold, *outputs], api_name="gold", **lane,
                       api_description="Fill the chosen languages with one test instance's captions and search; "
                                       "the panel shows the gold image's rank per language and its MRV.")

    def on_load(languages, k):
        """Wait for the models, then: the load line, the controls enabled, the first example run."""
        app.wait_loaded()
        first = dict(zip(LANGUAGES, rows[0]))
        results = search_all(list(languages or []), first, k)  # says what is missing when nothing loaded
        return [app.status_markdown(), app.sources_markdown(), app.status_markdown(),
                gr.update(visible=app.can_rerank), gr.update(info=rerank_info(app) if app.can_rerank else ""),
                *[gr.update(value=first[lang], interactive=True) for lang in LANGUAGES],
                gr.update(interactive=True), gr.update(interactive=app.instances is not None), None,
                gr.update(visible=True), *results]

    load_outputs = [load_status[0], load_status[1], about_status, tab.rerank_row, tab.rerank, *boxes,
                    tab.search_btn, tab.gold_btn, session.gold, tab.results, *outputs]
    # the spinner on the search status only: the rest of the page stays readable while it waits
    demo.load(on_load, [languages, tab.k], load_outputs, api_visibility="private", show_progress="full",
              show_progress_on=tab.outputs[0])

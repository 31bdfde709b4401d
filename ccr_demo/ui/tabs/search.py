"""The "Text → image" tab: one query per chosen language, a result pane per language, the rank
table, overlap and plot; gold mode; fusion re-ranking. Endpoints ``search`` and ``gold`` (both
take ``rerank`` and ``rerank_k`` last, defaults false and 16). With two or more models the tab
also holds the side-by-side section (``tabs.compare``)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ccr_demo import LANGUAGES
from ccr_demo.ui import callbacks as cb
from ccr_demo.ui import inputs
from ccr_demo.ui.examples import example_rows
from ccr_demo.ui.rerank_view import DEFAULT_RERANK_K, NO_FUSION
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
    rerank: gr.Checkbox
    rerank_k: gr.Slider
    boxes: list  # a query Textbox per language (LANGUAGES order)
    search_btn: gr.Button
    gold_btn: gr.Button
    instance_no: gr.Number
    outputs: list  # what search_outputs() fills: status, MRV, table, overlap, plot, JSON, rows state, panes
    panes: list  # a result Gallery per language (LANGUAGES order)
    compare: dict | None  # the side-by-side section's components (two or more models), else None
    gold_event: object = None  # the gold button's event (the comparison chains on it), set by wire()


def build(app: AppState, session: Session) -> SearchTab:
    """The tab and its components (call inside ``gr.Tabs``)."""
    n_test = len(app.test_set) if app.test_set is not None else 0
    with gr.Tab("Text → image", id=TAB_ID):
        with gr.Row():
            languages = inputs.CheckboxGroup(list(LANGUAGES), value=app.default_languages, label="Languages",
                                             scale=4, elem_id="languages")
            k = inputs.Slider(1, app.limits.max_k, value=5, step=1, label="Top k", scale=1)
            which = inputs.Radio([DEFAULT_GALLERY, MY_GALLERY], value=DEFAULT_GALLERY, label="Search in", scale=1)
        with gr.Row(equal_height=True):
            # Shown for every model; a dual encoder gets it disabled, saying why (the API
            # answers rerank=true with the same reason).
            rerank = inputs.Checkbox(False, label="Re-rank top-k with the fusion encoder (ITM)",
                                     interactive=app.can_rerank, elem_id="rerank", scale=2,
                                     info="each language's contrastive top k re-ordered by the image-text "
                                          "matching head; ranks and MRV shown without → with"
                                     if app.can_rerank else f"Unavailable: {NO_FUSION}.")
            rerank_k = inputs.Slider(1, app.limits.max_rerank_k, value=DEFAULT_RERANK_K, step=1,
                                     label="Re-rank k", interactive=app.can_rerank, elem_id="rerank-k", scale=1)
        with gr.Row(equal_height=True):
            boxes = [gr.Textbox("", label=f"{lang} · {LANGUAGE_NAMES[lang]}", placeholder=EXAMPLES[lang],
                                visible=lang in app.default_languages, min_width=150,
                                elem_id=f"query-{lang}") for lang in LANGUAGES]
        # One click fills every language's box with the same typed-style query.
        examples = example_rows()
        gr.Examples(examples, inputs=boxes, label="Example queries (click one, then Search)",
                    examples_per_page=len(examples), elem_id="examples")
        with gr.Row():
            search_btn = gr.Button("Search", variant="primary", elem_id="search-button")
            gold_btn = gr.Button("Random test instance (gold mode)", elem_id="gold-button",
                                 interactive=app.instances is not None)
            instance_no = inputs.Number(-1, precision=0, label="Instance # (-1 = random)", minimum=-1,
                                        maximum=max(n_test - 1, 0), min_width=120)
        status = gr.Markdown(elem_id="search-status")
        compare_ui = compare.build_section(app) if app.comparing else None
        if app.comparing:
            gr.Markdown(f"#### {app.model_names[0]} in detail: results per language, every rank, overlap",
                        elem_id="main-model-head")
        mrv_md = gr.Markdown(elem_id="mrv")
        with gr.Row(equal_height=False):
            panes = [gr.Gallery(label=pane_label(lang), visible=lang in app.default_languages,
                                columns=2, height="auto", object_fit="contain", min_width=150,
                                allow_preview=False, elem_id=f"pane-{lang}", elem_classes=["ccr-pane"])
                     for lang in LANGUAGES]
        gr.Markdown("#### Rank of each returned image in every language (1 = top, over the whole gallery)")
        table = gr.Dataframe(elem_id="rank-table", max_height=420, wrap=True)
        with gr.Row():
            overlap = gr.Dataframe(label="Pairwise top-k overlap", elem_id="overlap", scale=1)
            # no label: Gradio 6 draws it above the chart without shrinking the chart, which
            # pushes the legend out of the box; the title goes inside the chart instead
            plot = gr.LinePlot(x="language", y="rank", color="image", title="Rank per language (1 = top)",
                               show_label=False, elem_id="rank-plot", scale=2, height=340)
        with gr.Accordion("Raw numbers (JSON)", open=False):
            summary = gr.JSON()
    return SearchTab(languages, k, which, rerank, rerank_k, boxes, search_btn, gold_btn, instance_no,
                     [status, mrv_md, table, overlap, plot, summary, session.rows, *panes], panes, compare_ui)


def wire(app: AppState, tab: SearchTab, session: Session) -> None:
    """Language choice, search (button and Enter in a box) and gold mode; sets ``tab.gold_event``."""
    languages, boxes, panes = tab.languages, tab.boxes, tab.panes

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

    def on_search(languages, k, gallery, session, gold, en, de, fr, cs, zh, ja, id, es, ru, tr,  # noqa: A002
                  rerank=False, rerank_k=DEFAULT_RERANK_K):
        """Named parameters: they are the API's parameter names (gradio_client)."""
        selected = list(languages or [])
        if not selected:
            res = cb.SearchResult(False, "Choose at least one language (`languages` is empty).")
            warn([res.message])
            return search_outputs(res, selected)
        texts = dict(zip(LANGUAGES, (en, de, fr, cs, zh, ja, id, es, ru, tr)))
        chosen, note = pick_gallery(gallery, session)
        res = cb.search(app, {lang: texts[lang] for lang in LANGUAGES if lang in selected}, k,
                        gallery=chosen, gold=gold if chosen is None else None, rerank=rerank, rerank_k=rerank_k)
        if note:
            res.message = f"- {note}\n" + res.message
        warn(([note] if note else []) + res.warnings)
        return search_outputs(res, selected, mine=chosen is not None)

    # One Gradio group for every event that may re-rank, with more workers than cores: a request
    # waiting for the re-ranking lane holds a worker, never a core or the search lane (lanes.py),
    # so ordinary searches keep theirs (issue 23 item 4).
    lane = {"concurrency_id": "search", "concurrency_limit": app.limits.search_concurrency}
    search_inputs = [languages, tab.k, tab.which, session.gallery, session.gold, *boxes, tab.rerank, tab.rerank_k]
    tab.search_btn.click(on_search, search_inputs, tab.outputs, api_name="search", **lane,
                         api_description="Search the gallery with one query per chosen language.")
    for box in boxes:
        box.submit(on_search, search_inputs, tab.outputs, api_visibility="private", **lane)

    def on_gold(languages, k, instance, rerank=False, rerank_k=DEFAULT_RERANK_K):
        selected = list(languages or [])
        inst = cb.random_instance(app, selected, instance)
        if inst.gold is None:
            gr.Warning(inst.message.split(". ")[0])
            res = cb.SearchResult(False, inst.message)
            return [*[gr.update() for _ in LANGUAGES], None, *search_outputs(res, selected)]
        res = cb.search(app, inst.texts, k, gold=inst.gold, rerank=rerank, rerank_k=rerank_k)
        res.message = inst.message + ("\n\n" + res.message if res.message else "")
        fills = [inst.texts[lang] if lang in inst.texts else gr.update() for lang in LANGUAGES]
        return [*fills, inst.gold, *search_outputs(res, selected)]

    tab.gold_event = tab.gold_btn.click(on_gold, [languages, tab.k, tab.instance_no, tab.rerank, tab.rerank_k],
                                        [*boxes, session.gold, *tab.outputs], api_name="gold", **lane,
                                        api_description="Fill the chosen languages with one test instance's "
                                                        "captions and search; the panel shows the gold image's "
                                                        "rank per language and its MRV.")

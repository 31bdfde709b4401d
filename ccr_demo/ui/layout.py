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
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ccr_demo import LANGUAGES
from ccr_demo.ui import callbacks as cb
from ccr_demo.ui import compare_view, inputs, serving
from ccr_demo.ui.examples import example_rows
from ccr_demo.ui.memory import release_memory
from ccr_demo.ui.rerank_view import DEFAULT_RERANK_K, NO_FUSION
from ccr_demo.ui.state import AppState

LANGUAGE_NAMES = {"en": "English", "de": "Deutsch", "fr": "Français", "cs": "Čeština", "zh": "中文", "ja": "日本語",
                  "id": "Bahasa Indonesia", "es": "Español", "ru": "Русский", "tr": "Türkçe"}
EXAMPLES = {"en": "a red circle", "de": "ein roter Kreis", "fr": "un cercle rouge", "cs": "červený kruh",
            "zh": "红色的圆", "ja": "赤い丸", "id": "lingkaran merah", "es": "un círculo rojo",
            "ru": "красный круг", "tr": "kırmızı bir daire"}
DEFAULT_GALLERY, MY_GALLERY = "default gallery", "my gallery"

INTRO = """# One query, many languages: cross-lingual cross-modal retrieval
Type the same query in several languages and compare what each language retrieves. A model
trained with **1-to-K contrastive learning** (Nie et al., KDD 2024) should rank the same
image the same way whatever the language; **MRV** (mean rank variance) measures how far it
is from that: the spread (std) of an image's rank across languages, 0 = perfectly consistent.
"""

ABOUT = """## How the numbers are made
- **Rank**: how many gallery images score strictly higher than this one, plus 1 (1 = top),
  computed exactly over the whole gallery from its stored vectors.
- **Query MRV**: the std across languages of the ranks of the *consensus* image (the image
  with the lowest mean rank over the chosen languages); the variance is shown beside it.
- **Gold MRV** (gold mode): the same spread for the test instance's own image: the
  per-instance quantity whose mean over a test set is the paper's MRV.
- **Overlap**: |top-k(a) ∩ top-k(b)| / k for each pair of languages.
- **Re-rank** (models with the fusion encoder): each language's contrastive top k re-ordered
  by the image-text matching (ITM) score; the rest keep their contrastive order and rank. Every
  figure then reads "contrastive → re-ranked".
- **Models side by side** (two or more models): each model's MRV for the same query, from its
  own consensus image (or, in gold mode, the gold image), its mean rank there, and a verdict
  naming the lower MRV (and, in gold mode, the model that ranks the gold image higher if that
  is the other one: MRV measures agreement, not accuracy).
- **Evaluate**: Recall@1/5/10 for text-to-image (IR) and image-to-text (TR) per language,
  mean recall, and MRV in both directions over a parallel test set (`ccr_demo.eval.evaluate`).

## Configuration
Environment variables (else the embedded default in `assets/`, offline):
`CCR_MODEL` (model folder or Hub id), `CCR_GALLERY` (gallery folder or Hub id),
`CCR_TESTSET` (parallel test set, IGLUE layout), `CCR_CAPTIONS` (caption gallery for
image-to-text; default `<gallery>-captions`), `CCR_IMAGE_ROOT` (folders where a gallery's
images may lie besides its own and the test set's), `CCR_ALLOW_SERVER_FOLDERS=1` (a server
folder as your own gallery: local single-user runs only).
Several models side by side: `CCR_MODELS` (a manifest like `assets/models.json`, or
`name=MODEL@GALLERY;name=MODEL@GALLERY`); their galleries must index the same images in the
same order. Without it (and without `CCR_MODEL`), `assets/models.json` is read.
"""


def _pane_label(lang: str, query: str | None = None, reranked: int | None = None) -> str:
    base = f"{lang} · {LANGUAGE_NAMES[lang]}"
    if query is None:
        return base + " — no query"
    return (f"{base} — “{query if len(query) <= 40 else query[:39] + '…'}”"
            + (f" · re-ranked top {reranked}" if reranked else ""))


def _warn(notes) -> None:
    """Pop-up for problems with the input (the status Markdown keeps the full text)."""
    for note in notes[:3]:
        gr.Warning(note.replace("**", ""))


def _search_outputs(res: cb.SearchResult, selected: list[str], mine: bool = False) -> list:
    """SearchResult -> values for the search outputs (status, MRV, table, overlap, plot, JSON, the
    rows behind the panes and which gallery they index, 10 panes)."""
    # gr.update dicts, not component instances: building 11 components costs ~60 ms per request
    reranked = res.rerank["k"] if res.rerank else None
    panes = [gr.update(value=serving.serve_pairs(res.panes.get(lang, [])), visible=lang in selected,
                       label=_pane_label(lang, res.queries.get(lang), reranked)) for lang in LANGUAGES]
    plot = gr.update(value=res.plot, sort=res.languages or None)
    return [res.message, res.mrv_markdown, res.table, res.overlap, plot, res.summary(),
            {"rows": res.pane_rows, "mine": mine}, *panes]


def build_layout(app: AppState) -> gr.Blocks:
    """All tabs and events. ``app`` is shared and read-only; per-session data lives in gr.State."""
    max_k = app.limits.max_k
    test_langs = app.test_set.languages if app.test_set is not None else []
    n_test = len(app.test_set) if app.test_set is not None else 0

    ttl = app.limits.session_ttl_s
    # delete_cache: Gradio's own sweep of this app's uploads and served copies older than the TTL
    with gr.Blocks(title="CCR demo: one query, many languages", delete_cache=(max(60, min(600, ttl)), ttl)) as demo:
        gr.Markdown(INTRO)
        gr.Markdown(app.status_markdown(), elem_id="load-status")
        # this session's own Gallery (never the shared one); dropped after the TTL, like its files
        session_gallery = gr.State(None, time_to_live=ttl)
        gold_state = gr.State(None)  # the drawn test instance: image id + its captions
        rows_state = gr.State({})  # gallery rows behind each pane, for click -> image-to-text

        with gr.Tabs() as tabs:
            # ------------------------------------------------------------ text -> image
            with gr.Tab("Text → image", id="search"):
                with gr.Row():
                    languages = inputs.CheckboxGroup(list(LANGUAGES), value=app.default_languages, label="Languages",
                                                     scale=4, elem_id="languages")
                    k = inputs.Slider(1, max_k, value=5, step=1, label="Top k", scale=1)
                    which = inputs.Radio([DEFAULT_GALLERY, MY_GALLERY], value=DEFAULT_GALLERY, label="Search in",
                                         scale=1)
                with gr.Row(equal_height=True):
                    # Shown for every model; a dual encoder gets it disabled, saying why (the API
                    # answers rerank=true with the same reason).
                    rerank = inputs.Checkbox(False, label="Re-rank top-k with the fusion encoder (ITM)",
                                             interactive=app.can_rerank, elem_id="rerank", scale=2,
                                             info="each language's contrastive top k re-ordered by the image-text "
                                                  "matching head; ranks and MRV shown without → with"
                                             if app.can_rerank else f"Unavailable: {NO_FUSION}.")
                    rerank_k = inputs.Slider(1, app.limits.max_rerank_k, value=DEFAULT_RERANK_K, step=1,
                                             label="Re-rank k", interactive=app.can_rerank, elem_id="rerank-k",
                                             scale=1)
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
                compare_ui = _compare_section(app) if app.comparing else None
                if app.comparing:
                    gr.Markdown(f"#### {app.model_names[0]} in detail: results per language, every rank, overlap",
                                elem_id="main-model-head")
                mrv_md = gr.Markdown(elem_id="mrv")
                with gr.Row(equal_height=False):
                    panes = [gr.Gallery(label=_pane_label(lang), visible=lang in app.default_languages,
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

            # ------------------------------------------------------------ image -> text
            with gr.Tab("Image → text", id="i2t"):
                gr.Markdown("Upload an image, or click an image in a search result: the top captions of each "
                            "language, from the test set's captions.")
                with gr.Row():
                    with gr.Column(scale=1):
                        # no file_types: Gradio would reject other files before the callback; the
                        # guarded loader's message says what is wrong with the file instead
                        upload = gr.File(label="Image", type="filepath", elem_id="i2t-upload")
                        i2t_k = inputs.Slider(1, max_k, value=3, step=1, label="Captions per language")
                        i2t_btn = gr.Button("Find captions", variant="primary")
                        query_image = gr.Image(label="Query", interactive=False, height=240)
                    with gr.Column(scale=3):
                        i2t_status = gr.Markdown(elem_id="i2t-status")
                        i2t_table = gr.Dataframe(wrap=True, max_height=600, elem_id="i2t-table")
                        with gr.Accordion("Raw numbers (JSON)", open=False):
                            i2t_json = gr.JSON()

            # ------------------------------------------------------------ own gallery
            with gr.Tab("Your own gallery", id="mine"):
                gr.Markdown(f"Index your own images with the loaded model, for this session only (up to "
                            f"{app.limits.max_upload_images} images; files that are not images are skipped).")
                own_files = gr.File(label="Images", file_count="multiple")  # non-images: skipped, listed
                own_folder = gr.Textbox(label="…or a folder on this machine", visible=app.allow_local_paths,
                                        placeholder="/path/to/images")
                own_btn = gr.Button("Build my gallery", variant="primary")
                own_status = gr.Markdown()

            # ------------------------------------------------------------ evaluation
            with gr.Tab("Evaluate", id="evaluate"):
                gr.Markdown("Recall@1/5/10 both ways, mean recall and MRV of the loaded model on the parallel "
                            "test set" + (f" `{app.test_set.name}` ({n_test} instances)." if n_test else
                                          ": **no test set loaded**.")
                            + (f" Typed queries (`{app.queries.name}`, {len(app.queries)}): P@1, P@5, mAP@10 per "
                               "language and their consistency across languages, over the same images."
                               if app.queries is not None else ""))
                with gr.Row():
                    eval_langs = inputs.CheckboxGroup(test_langs, value=[x for x in app.default_languages
                                                                         if x in test_langs] or test_langs,
                                                      label="Languages", scale=3)
                    eval_n = inputs.Slider(1, max(n_test, 2), value=min(100, max(n_test, 1)), step=1,  # min < max
                                           label="Max instances", scale=2, interactive=n_test > 0)
                eval_btn = gr.Button("Evaluate", variant="primary", interactive=n_test > 0)
                eval_status = gr.Markdown()
                eval_head = gr.Markdown(elem_id="eval-mrv")
                eval_query_head = gr.Markdown(elem_id="eval-queries-head")
                eval_query_table = gr.Dataframe(label="Typed queries per language (P@1, P@5, mAP@10)",
                                                elem_id="eval-queries", visible=app.queries is not None)
                with gr.Row():
                    eval_table = gr.Dataframe(label="Recall (%) per language", scale=3)
                    eval_plot = gr.LinePlot(x="metric", y="recall", color="language", title="Recall (%) per language",
                                            show_label=False, sort=cb.METRIC_ORDER, scale=2, height=340,
                                            elem_id="eval-plot")
                with gr.Accordion("Report as the model card prints it", open=False):
                    eval_md = gr.Markdown()
                with gr.Accordion("Raw report (JSON)", open=False):
                    eval_json = gr.JSON()
                eval_compare_ui = _eval_compare_section(app) if app.comparing else None

            with gr.Tab("About", id="about"):
                gr.Markdown(ABOUT)
                gr.Markdown(app.status_markdown())

        # ------------------------------------------------------------------ events
        search_outputs = [status, mrv_md, table, overlap, plot, summary, rows_state, *panes]

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
                _warn([res.message])
                return _search_outputs(res, selected)
            texts = dict(zip(LANGUAGES, (en, de, fr, cs, zh, ja, id, es, ru, tr)))
            chosen, note = pick_gallery(gallery, session)
            res = cb.search(app, {lang: texts[lang] for lang in LANGUAGES if lang in selected}, k,
                            gallery=chosen, gold=gold if chosen is None else None, rerank=rerank, rerank_k=rerank_k)
            if note:
                res.message = f"- {note}\n" + res.message
            _warn(([note] if note else []) + res.warnings)
            return _search_outputs(res, selected, mine=chosen is not None)

        search_inputs = [languages, k, which, session_gallery, gold_state, *boxes, rerank, rerank_k]
        search_btn.click(on_search, search_inputs, search_outputs, api_name="search",
                         api_description="Search the gallery with one query per chosen language.")
        for box in boxes:
            box.submit(on_search, search_inputs, search_outputs, api_visibility="private")

        def on_gold(languages, k, instance, rerank=False, rerank_k=DEFAULT_RERANK_K):
            selected = list(languages or [])
            inst = cb.random_instance(app, selected, instance)
            if inst.gold is None:
                gr.Warning(inst.message.split(". ")[0])
                res = cb.SearchResult(False, inst.message)
                return [*[gr.update() for _ in LANGUAGES], None, *_search_outputs(res, selected)]
            res = cb.search(app, inst.texts, k, gold=inst.gold, rerank=rerank, rerank_k=rerank_k)
            res.message = inst.message + ("\n\n" + res.message if res.message else "")
            fills = [inst.texts[lang] if lang in inst.texts else gr.update() for lang in LANGUAGES]
            return [*fills, inst.gold, *_search_outputs(res, selected)]

        gold_event = gold_btn.click(on_gold, [languages, k, instance_no, rerank, rerank_k],
                                    [*boxes, gold_state, *search_outputs], api_name="gold",
                                    api_description="Fill the chosen languages with one test instance's captions and "
                                                    "search; the panel shows the gold image's rank per language and "
                                                    "its MRV.")

        def i2t_outputs(res: cb.ImageToTextResult):
            if not res.ok:
                gr.Warning(res.message.split("\n")[0].replace("**", ""))
            return serving.serve_image(res.image), res.message, res.table, res.summary()

        i2t_outs = [query_image, i2t_status, i2t_table, i2t_json]

        def on_image_to_text(image, languages, k):
            serving.enforce_disk_budget(demo.temp_file_sets, app.limits.max_cache_bytes, keep=[image or ""])
            return i2t_outputs(cb.image_to_text(app, image, languages=list(languages or []), k=k))

        i2t_btn.click(on_image_to_text, [upload, languages, i2t_k], i2t_outs, api_name="image_to_text",
                      api_description="Top captions per language for an uploaded image.")

        def make_select(lang):
            def on_select(rows, session, selected, k_value, evt: gr.SelectData):
                rows = rows or {}
                gallery = session if rows.get("mine") else None  # the gallery the panes were filled from
                lang_rows = rows.get("rows", {}).get(lang, [])
                if evt.index is None or not 0 <= evt.index < len(lang_rows):
                    return *i2t_outputs(cb.ImageToTextResult(False, "Search again, then click an image.")), gr.Tabs()
                res = cb.image_to_text(app, row=lang_rows[evt.index], gallery=gallery, languages=list(selected or []),
                                       k=k_value)
                return *i2t_outputs(res), gr.Tabs(selected="i2t")
            return on_select

        for lang, pane in zip(LANGUAGES, panes):
            pane.select(make_select(lang), [rows_state, session_gallery, languages, i2t_k],
                        [*i2t_outs, tabs], api_visibility="private")

        def on_build(files, folder):
            serving.enforce_disk_budget(demo.temp_file_sets, app.limits.max_cache_bytes,
                                        keep=[str(getattr(f, "name", f)) for f in files or []])
            res = cb.build_session_gallery(app, files, folder)
            release_memory()  # encoding freed its batches: give the pages back (flat RSS across waves)
            if res.gallery is None:
                gr.Warning(res.message.split("\n")[0].replace("**", ""))
                return gr.update(), res.message, gr.update()
            return res.gallery, res.message, MY_GALLERY

        own_btn.click(on_build, [own_files, own_folder], [session_gallery, own_status, which],
                      api_name="build_gallery", concurrency_limit=1,
                      api_description="Index your own images for this session.")

        def on_evaluate(max_instances, languages, progress=gr.Progress()):  # no track_tqdm: it patches tqdm globally
            res = cb.evaluate(app, max_instances, list(languages or []), progress=progress)
            if not res.ok:
                gr.Warning(res.message.split("\n")[0].replace("**", ""))
            return (res.message, res.headline, res.table, res.chart, res.markdown, res.report,
                    res.query_headline, res.query_table)

        eval_btn.click(on_evaluate, [eval_n, eval_langs],
                       [eval_status, eval_head, eval_table, eval_plot, eval_md, eval_json, eval_query_head,
                        eval_query_table],
                       api_name="evaluate", concurrency_limit=1, concurrency_id="evaluate",
                       api_description="Recall@K both ways and MRV on the first N test instances.")
        if app.comparing:
            _compare_events(app, compare_ui, eval_compare_ui, search_btn, boxes, gold_event, languages, k,
                            gold_state, eval_n, eval_langs)
    return demo


# --------------------------------------------------------------------------- several models (compare_view)


def _compare_section(app: AppState) -> dict:
    """Each configured model side by side: the verdict, then per model its MRV and top k per language."""
    names = app.model_names
    ui = {}
    with gr.Column(variant="panel", elem_id="compare"):
        gr.Markdown(f"### Models side by side: {', '.join(names)} (same {app.gallery.count} images)")
        ui["models"] = inputs.CheckboxGroup(names, value=names, label="Models to compare", elem_id="compare-models")
        ui["verdict"] = gr.Markdown(elem_id="compare-verdict")
        with gr.Row(equal_height=False):
            ui["heads"], ui["panes"] = [], []
            for i, name in enumerate(names):
                with gr.Column(min_width=300):
                    ui["heads"].append(gr.Markdown(f"### {name}", elem_id=f"compare-head-{i}"))
                    ui["panes"].append(gr.Gallery(label=f"{name}: top k per language (a row per language)",
                                                  columns=5, height="auto", object_fit="contain",
                                                  allow_preview=False, elem_id=f"compare-pane-{i}",
                                                  elem_classes=["ccr-pane", "ccr-whole"]))
        ui["table"] = gr.Dataframe(label="Per language: each model's top 1 and the rank of the image its MRV is about",
                                   elem_id="compare-table", wrap=True)
        with gr.Accordion("Comparison numbers (JSON)", open=False):
            ui["json"] = gr.JSON()
    return ui


def _eval_compare_section(app: AppState) -> dict:
    names = app.model_names
    ui = {}
    gr.Markdown(f"### Models side by side: {', '.join(names)}\nThe same instances and languages for each: "
                "per-language R@1 both ways and MRV.")
    ui["models"] = inputs.CheckboxGroup(names, value=names, label="Models to compare", elem_id="eval-compare-models")
    ui["button"] = gr.Button("Evaluate the models side by side", elem_id="eval-compare-button")
    ui["status"] = gr.Markdown()
    ui["head"] = gr.Markdown(elem_id="eval-compare-head")
    with gr.Row():
        ui["table"] = gr.Dataframe(label="R@1 (%) per language and MRV, per model", elem_id="eval-compare-table",
                                   scale=3)
        ui["plot"] = gr.LinePlot(x="metric", y="R@1", color="model", title="R@1 (%) per language, by model",
                                 show_label=False, scale=2, height=340, elem_id="eval-compare-plot")
    with gr.Accordion("Reports (JSON)", open=False):
        ui["json"] = gr.JSON()
    return ui


def _compare_outputs(app: AppState, c) -> list:
    """Comparison -> values for: verdict, table, JSON, then per model its head and pane."""
    if not c.ok:
        _warn([c.message])
        return [c.message, pd.DataFrame(), {}, *[gr.update() for _ in app.model_names] * 2]
    verdict = f"**{c.verdict}**" + (f"\n\n{c.message}" if c.message else "")
    heads = [gr.update(value=compare_view.model_markdown(c, n), visible=True) if n in c.results
             else gr.update(visible=False) for n in app.model_names]
    panes = [gr.update(value=serving.serve_pairs(compare_view.model_pane(c, n)), visible=True,
                       columns=max(1, len(c.results[n].hits.get(c.languages[0], [])) if c.languages else 1))
             if n in c.results else gr.update(visible=False) for n in app.model_names]
    return [verdict, c.table, c.summary(), *heads, *panes]


def _compare_events(app: AppState, ui: dict, eval_ui: dict, search_btn, boxes, gold_event, languages, k, gold_state,
                    eval_n, eval_langs) -> None:
    """Search and gold mode also fill the side-by-side view; named API endpoints ``compare``,
    ``compare_gold`` and ``evaluate_compare`` (only when two or more models are loaded)."""
    outputs = [ui["verdict"], ui["table"], ui["json"], *ui["heads"], *ui["panes"]]

    def on_compare(languages, k, gold, en, de, fr, cs, zh, ja, id, es, ru, tr, models=None):  # noqa: A002
        """Named parameters: they are the API's parameter names (gradio_client)."""
        selected = list(languages or [])
        texts = dict(zip(LANGUAGES, (en, de, fr, cs, zh, ja, id, es, ru, tr)))
        c = compare_view.compare(app, {lang: texts[lang] for lang in LANGUAGES if lang in selected}, k, models,
                                 gold=gold)
        return _compare_outputs(app, c)

    compare_inputs = [languages, k, gold_state, *boxes, ui["models"]]
    search_btn.click(on_compare, compare_inputs, outputs, api_name="compare",
                     api_description="Search every chosen model (by its configured name) with one query per "
                                     "language: per model its results, ranks and MRV, and a one-line verdict.")
    for box in boxes:
        box.submit(on_compare, compare_inputs, outputs, api_visibility="private")
    # after gold mode filled the boxes and drew the instance: the same instance for every model
    gold_event.then(on_compare, compare_inputs, outputs, api_visibility="private")

    def compare_gold(languages: list[str], k: int = 5, instance: int = -1, models: list[str] | None = None) -> dict:
        """Fill the chosen languages with one test instance's captions and search every chosen
        model: per model the gold image's rank per language and its MRV, and the verdict."""
        try:
            c, inst = compare_view.compare_gold(app, languages, k, instance, models)
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False) from None
        if not c.ok:
            raise gr.Error(c.message, print_exception=False)
        return {"instance": inst.gold.get("index"), "texts": inst.texts, **c.summary()}

    gr.api(compare_gold, api_name="compare_gold")

    def on_evaluate_compare(max_instances, languages, models, progress=gr.Progress()):
        res = compare_view.evaluate(app, max_instances, list(languages or []), models, progress=progress)
        if not res.ok:
            gr.Warning(res.message.split("\n")[0].replace("**", ""))
        chart = gr.update(value=res.chart, sort=list(dict.fromkeys(res.chart["metric"])) or None)  # IR, then TR
        return res.message, res.headline, res.table, chart, res.reports

    eval_ui["button"].click(on_evaluate_compare, [eval_n, eval_langs, eval_ui["models"]],
                            [eval_ui["status"], eval_ui["head"], eval_ui["table"], eval_ui["plot"], eval_ui["json"]],
                            api_name="evaluate_compare", concurrency_limit=1, concurrency_id="evaluate",
                            api_description="Recall@1 both ways per language and MRV of every chosen model on the "
                                            "first N test instances.")


"""Several models side by side (``compare_view``; only when two or more are configured): a section
of the search tab (the verdict, then a row per language with each model's top k under a header
with its MRV) and one of the Evaluate tab, with the endpoints ``compare``, ``compare_gold`` and
``evaluate_compare``. The search tab's events fill the section together with the detail view,
in one handler (``tabs.search``), so the two views always show the same query."""

from __future__ import annotations

import gradio as gr

from ccr_demo import LANGUAGES
from ccr_demo.ui import compare_view, inputs
from ccr_demo.ui.ranges import shown_value
from ccr_demo.ui.state import AppState
from ccr_demo.ui.tabs.common import warn


def build_section(app: AppState) -> dict:
    """The verdict, then per model its MRV and top k, a row per language (``compare_view.grid_html``)."""
    names = app.model_names
    n_images = next((info.n_images for info in app.infos.values() if info.n_images), None)
    ui = {}
    with gr.Column(variant="panel", elem_id="compare"):
        gr.Markdown(f"### Models side by side: {', '.join(names)}"
                    + (f" (the same {n_images:,} images)" if n_images else ""))
        ui["verdict"] = gr.Markdown(elem_id="compare-verdict")
        ui["grid"] = gr.HTML(elem_id="compare-grid")
        with gr.Accordion("Fewer models, and the comparison's numbers (JSON)", open=False):
            ui["models"] = inputs.CheckboxGroup(names, value=names, label="Models to compare",
                                                elem_id="compare-models")
            ui["json"] = gr.JSON()
    return ui


def build_eval_section(app: AppState) -> dict:
    """The Evaluate tab's part: every chosen model evaluated now on the same instances and languages."""
    names = app.model_names
    ui = {}
    gr.Markdown(f"### Evaluate the models now, side by side: {', '.join(names)}\nThe same instances and "
                "languages for each: per-language R@1 both ways, and MRV.")
    ui["models"] = inputs.CheckboxGroup(names, value=names, label="Models to compare", elem_id="eval-compare-models")
    ui["button"] = gr.Button("Evaluate the models side by side", elem_id="eval-compare-button")
    ui["status"] = gr.Markdown()
    ui["head"] = gr.Markdown(elem_id="eval-compare-head")
    ui["plot"] = gr.HTML(elem_id="eval-compare-plot")
    ui["table"] = gr.Dataframe(label="R@1 (%) per language, per model and direction", elem_id="eval-compare-table",
                               interactive=False, visible=False)  # shown once an evaluation fills it
    with gr.Accordion("Reports (JSON)", open=False):
        ui["json"] = gr.JSON()
    return ui


def compare_outputs(app: AppState, c, quiet: bool = False) -> list:
    """Comparison -> values for: verdict, grid (HTML), JSON. ``quiet``: no pop-up for a failure
    (the detail view's status already says it)."""
    if not c.ok:
        if not quiet:
            warn([c.message])
        return [c.message, "", {}]
    verdict = f"**{c.verdict}**" + (f"\n\n{c.message}" if c.message else "")
    grid = compare_view.grid_html(c, lambda name: app.view(name).gallery)
    return [verdict, grid, c.summary()]


def compare_components(ui: dict) -> list:
    """The components ``compare_outputs`` fills, in its order."""
    return [ui["verdict"], ui["grid"], ui["json"]]


def wire(app: AppState, eval_ui: dict, eval_n, eval_langs) -> None:
    """API endpoints ``compare`` and ``compare_gold`` (JSON answers) and the Evaluate tab's
    side-by-side evaluation (``evaluate_compare``); only when two or more models are loaded."""

    def compare(languages: list[str], k: int = 5, en: str = "", de: str = "", fr: str = "", cs: str = "",
                zh: str = "", ja: str = "", id: str = "", es: str = "", ru: str = "", tr: str = "",  # noqa: A002
                models: list[str] | None = None) -> dict:
        """Search every chosen model (by its configured name) with one query per language: per model
        its results, ranks and MRV, and a one-line verdict."""
        if not isinstance(languages, (list, tuple)) or not all(isinstance(x, str) for x in languages):
            raise gr.Error(f"languages: got {shown_value(languages)}; expected a list drawn from {list(LANGUAGES)}",
                           print_exception=False)
        texts = dict(zip(LANGUAGES, (en, de, fr, cs, zh, ja, id, es, ru, tr)))
        c = compare_view.compare(app, {lang: texts[lang] for lang in LANGUAGES if lang in languages}, k, models)
        if not c.ok:
            raise gr.Error(c.message, print_exception=False)
        return {"message": c.message, **c.summary()}

    gr.api(compare, api_name="compare")

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
        return res.message, res.headline, gr.update(value=res.table, visible=len(res.table) > 0), res.chart, res.reports

    eval_ui["button"].click(on_evaluate_compare, [eval_n, eval_langs, eval_ui["models"]],
                            [eval_ui["status"], eval_ui["head"], eval_ui["table"], eval_ui["plot"], eval_ui["json"]],
                            api_name="evaluate_compare", concurrency_limit=1, concurrency_id="evaluate",
                            api_description="Recall@1 both ways per language and MRV of every chosen model on the "
                                            "first N test instances, ranked among those N images.")

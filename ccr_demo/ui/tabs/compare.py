"""Several models side by side (``compare_view``; only when two or more are loaded): a section
of the search tab (each model's MRV and top k per language, and a verdict) and one of the
Evaluate tab, with the endpoints ``compare``, ``compare_gold`` and ``evaluate_compare``. The
search and gold events of the search tab also fill the section (``wire``)."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ccr_demo import LANGUAGES
from ccr_demo.ui import compare_view, inputs, serving
from ccr_demo.ui.state import AppState
from ccr_demo.ui.tabs.common import warn


def build_section(app: AppState) -> dict:
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


def build_eval_section(app: AppState) -> dict:
    """The Evaluate tab's part: every chosen model evaluated on the same instances and languages."""
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


def compare_outputs(app: AppState, c) -> list:
    """Comparison -> values for: verdict, table, JSON, then per model its head and pane."""
    if not c.ok:
        warn([c.message])
        return [c.message, pd.DataFrame(), {}, *[gr.update() for _ in app.model_names] * 2]
    verdict = f"**{c.verdict}**" + (f"\n\n{c.message}" if c.message else "")
    heads = [gr.update(value=compare_view.model_markdown(c, n), visible=True) if n in c.results
             else gr.update(visible=False) for n in app.model_names]
    panes = [gr.update(value=serving.serve_pairs(compare_view.model_pane(c, n)), visible=True,
                       columns=max(1, len(c.results[n].hits.get(c.languages[0], [])) if c.languages else 1))
             if n in c.results else gr.update(visible=False) for n in app.model_names]
    return [verdict, c.table, c.summary(), *heads, *panes]


def wire(app: AppState, ui: dict, eval_ui: dict, search_btn, boxes, gold_event, languages, k, gold_state,
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
        return compare_outputs(app, c)

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


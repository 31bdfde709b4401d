"""The "Evaluate" tab: first each configured model's saved evaluation on the full test set (its
eval report, ``model_info``: grouped bars per language from 0), then a live evaluation of the
loaded model (Recall@1/5/10 both ways, mean recall, MRV, typed-query precision) on the first N
instances, ranked among those N images, with progress. Endpoint ``evaluate``; with two or more
models also the side-by-side section (``tabs.compare``)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ccr_demo.ui import eval_callbacks as eval_cb
from ccr_demo.ui import inputs
from ccr_demo.ui.state import AppState
from ccr_demo.ui.tabs import compare

TAB_ID = "evaluate"


@dataclass
class EvaluateTab:
    languages: gr.CheckboxGroup
    max_instances: gr.Slider
    button: gr.Button
    outputs: list  # status, headline, table, chart, Markdown report, JSON, typed-query headline and table
    compare: dict | None  # the side-by-side section's components (two or more models), else None


def build(app: AppState) -> EvaluateTab:
    """The tab and its components (call inside ``gr.Tabs``)."""
    test_langs = app.test_set.languages if app.test_set is not None else []
    n_test = len(app.test_set) if app.test_set is not None else 0
    with gr.Tab("Evaluate", id=TAB_ID):
        saved_head, saved_t2i, saved_i2t = eval_cb.saved_figures(app)
        if saved_head:
            gr.Markdown(saved_head, elem_id="saved-eval")
            with gr.Row():
                gr.HTML(saved_t2i, elem_id="saved-eval-t2i")
                gr.HTML(saved_i2t, elem_id="saved-eval-i2t")
        gr.Markdown("### Evaluate now\nRecall@1/5/10 both ways, mean recall and MRV of the loaded model on the "
                    "first N instances of the parallel test set"
                    + (f" ({n_test} instances), each ranked among those N images only: with fewer images R@1 is "
                       "higher than on the full test set." if n_test else ": **no test set loaded**.")
                    + " With the test set's typed queries: P@1, P@5, mAP@10 per language and their consistency "
                      "across languages, over the same images.")
        with gr.Row():
            languages = inputs.CheckboxGroup(test_langs, value=[x for x in app.default_languages
                                                                if x in test_langs] or test_langs,
                                             label="Languages", scale=3)
            max_instances = inputs.Slider(1, max(n_test, 2), value=min(100, max(n_test, 1)), step=1,  # min < max
                                          label="Max instances", scale=2, interactive=n_test > 0,
                                          info="each ranked among these N images only")
        button = gr.Button("Evaluate", variant="primary", interactive=n_test > 0)
        status = gr.Markdown()
        head = gr.Markdown(elem_id="eval-mrv")
        query_head = gr.Markdown(elem_id="eval-queries-head")
        # tables stay hidden until an evaluation fills them: no empty grid headed "1 2 3"
        query_table = gr.Dataframe(label="Typed queries per language (P@1, P@5, mAP@10)",
                                   elem_id="eval-queries", visible=False, interactive=False)
        plot = gr.HTML(elem_id="eval-plot")
        table = gr.Dataframe(label="Recall (%) per language", interactive=False, elem_id="eval-table", visible=False)
        with gr.Accordion("Report as the model card prints it", open=False):
            report_md = gr.Markdown()
        with gr.Accordion("Raw report (JSON)", open=False):
            report_json = gr.JSON()
        compare_ui = compare.build_eval_section(app) if app.comparing else None
    return EvaluateTab(languages, max_instances, button,
                       [status, head, table, plot, report_md, report_json, query_head, query_table], compare_ui)


def wire(app: AppState, tab: EvaluateTab) -> None:
    def on_evaluate(max_instances, languages, progress=gr.Progress()):  # no track_tqdm: it patches tqdm globally
        res = eval_cb.evaluate(app, max_instances, list(languages or []), progress=progress)
        if not res.ok:
            gr.Warning(res.message.split("\n")[0].replace("**", ""))
        return (res.message, res.headline, gr.update(value=res.table, visible=len(res.table) > 0), res.chart,
                res.markdown, res.report, res.query_headline,
                gr.update(value=res.query_table, visible=len(res.query_table) > 0))

    tab.button.click(on_evaluate, [tab.max_instances, tab.languages], tab.outputs,
                     api_name="evaluate", concurrency_limit=1, concurrency_id="evaluate",
                     api_description="Recall@K both ways and MRV on the first N test instances.")

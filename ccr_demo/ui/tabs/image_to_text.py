"""The "Image → text" tab: the top captions per language for an uploaded image, or for an image
clicked in a search result pane (which switches to this tab). Endpoint ``image_to_text``."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ccr_demo import LANGUAGES
from ccr_demo.ui import i2t_callbacks as i2t_cb
from ccr_demo.ui import inputs, serving
from ccr_demo.ui.state import AppState
from ccr_demo.ui.tabs.common import Session

TAB_ID = "i2t"


@dataclass
class ImageToTextTab:
    upload: gr.File
    k: gr.Slider
    button: gr.Button
    outputs: list  # query image, status, table, JSON


def build(app: AppState) -> ImageToTextTab:
    """The tab and its components (call inside ``gr.Tabs``)."""
    with gr.Tab("Image → text", id=TAB_ID):
        gr.Markdown("Upload an image, or click an image in a search result: the top captions of each "
                    "language, from the test set's captions.")
        with gr.Row():
            with gr.Column(scale=1):
                # no file_types: Gradio would reject other files before the callback; the
                # guarded loader's message says what is wrong with the file instead
                upload = inputs.File(label="Image", type="filepath", elem_id="i2t-upload")
                k = inputs.Slider(1, app.limits.max_k, value=3, step=1, label="Captions per language")
                button = gr.Button("Find captions", variant="primary")
                query_image = gr.Image(label="Query", interactive=False, height=240)
            with gr.Column(scale=3):
                status = gr.Markdown(elem_id="i2t-status")
                # the caption takes what the short columns leave: every column shows at 1440 px
                table = gr.Dataframe(wrap=True, max_height=600, elem_id="i2t-table", interactive=False,
                                     column_widths=["10%", "5%", "9%", "52%", "14%", "10%"])
                with gr.Accordion("Raw numbers (JSON)", open=False):
                    summary = gr.JSON()
    return ImageToTextTab(upload, k, button, [query_image, status, table, summary])


def wire(app: AppState, demo: gr.Blocks, tab: ImageToTextTab, languages, panes, session: Session,
         tabs: gr.Tabs) -> None:
    """The upload button, and a click on an image of a search pane (``panes``, in LANGUAGES
    order; ``languages``: the search tab's choice) -> its captions, on this tab."""

    def i2t_outputs(res: i2t_cb.ImageToTextResult):
        if not res.ok:
            gr.Warning(res.message.split("\n")[0].replace("**", ""))
        return serving.serve_image(res.image), res.message, res.table, res.summary()

    def on_image_to_text(image, languages, k):
        serving.enforce_disk_budget(demo.temp_file_sets, app.limits.max_cache_bytes, keep=[image or ""])
        return i2t_outputs(i2t_cb.image_to_text(app, image, languages=list(languages or []), k=k))

    tab.button.click(on_image_to_text, [tab.upload, languages, tab.k], tab.outputs, api_name="image_to_text",
                     api_description="Top captions per language for an uploaded image.")

    def make_select(lang):
        def on_select(rows, session, selected, k_value, evt: gr.SelectData):
            rows = rows or {}
            gallery = session if rows.get("mine") else None  # the gallery the panes were filled from
            lang_rows = rows.get("rows", {}).get(lang, [])
            if evt.index is None or not 0 <= evt.index < len(lang_rows):
                return *i2t_outputs(i2t_cb.ImageToTextResult(False, "Search again, then click an image.")), gr.Tabs()
            res = i2t_cb.image_to_text(app, row=lang_rows[evt.index], gallery=gallery, languages=list(selected or []),
                                   k=k_value)
            return *i2t_outputs(res), gr.Tabs(selected=TAB_ID)
        return on_select

    for lang, pane in zip(LANGUAGES, panes):
        pane.select(make_select(lang), [session.rows, session.gallery, languages, tab.k],
                    [*tab.outputs, tabs], api_visibility="private")

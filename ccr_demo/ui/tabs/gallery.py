"""The "Your own gallery" tab: index uploaded images (or, locally, a server folder) with the
loaded model for this session only; the search tab can then search it. Endpoint ``build_gallery``."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ccr_demo.ui import gallery_callbacks as gallery_cb
from ccr_demo.ui import inputs, serving
from ccr_demo.ui.memory import release_memory
from ccr_demo.ui.state import AppState
from ccr_demo.ui.tabs.common import MY_GALLERY, Session

TAB_ID = "mine"


@dataclass
class GalleryTab:
    files: gr.File
    folder: gr.Textbox
    button: gr.Button
    status: gr.Markdown


def build(app: AppState) -> GalleryTab:
    """The tab and its components (call inside ``gr.Tabs``)."""
    with gr.Tab("Your own gallery", id=TAB_ID):
        gr.Markdown(f"Index your own images with the loaded model, for this session only (up to "
                    f"{app.limits.max_upload_images} images; files that are not images are skipped).")
        files = inputs.File(label="Images", file_count="multiple")  # non-images: skipped, listed
        folder = gr.Textbox(label="…or a folder on this machine", visible=app.allow_local_paths,
                            placeholder="/path/to/images")
        button = gr.Button("Build my gallery", variant="primary")
        status = gr.Markdown()
    return GalleryTab(files, folder, button, status)


def wire(app: AppState, demo: gr.Blocks, tab: GalleryTab, session: Session, which: gr.Radio) -> None:
    """Build the session gallery; on success the search tab's ``which`` switches to it."""

    def on_build(files, folder):
        serving.enforce_disk_budget(demo.temp_file_sets, app.limits.max_cache_bytes,
                                    keep=[str(getattr(f, "name", f)) for f in files or []])
        res = gallery_cb.build_session_gallery(app, files, folder)
        release_memory()  # encoding freed its batches: give the pages back (flat RSS across waves)
        if res.gallery is None:
            gr.Warning(res.message.split("\n")[0].replace("**", ""))
            return gr.update(), res.message, gr.update()
        return res.gallery, res.message, MY_GALLERY

    tab.button.click(on_build, [tab.files, tab.folder], [session.gallery, tab.status, which],
                     api_name="build_gallery", concurrency_limit=1,
                     api_description="Index your own images for this session.")

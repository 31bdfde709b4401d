"""The "About" tab: how each number is made, the configuration, and what was loaded from where."""

from __future__ import annotations

import gradio as gr

from ccr_demo.ui.state import AppState

TAB_ID = "about"

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
  is the other one: MRV measures agreement, not accuracy). Two MRVs closer than the **tie
  margin** are "about equally consistent": the margin is the MRV of a query whose languages
  agree but for one language one place lower (0.373 for 6 languages), the smallest
  disagreement one query can show.
- **No good match**: a language whose best score is below its model's calibrated threshold
  (`python -m ccr_demo.ui.calibration` writes `assets/no_match.json`: the 5th percentile of
  the best true score of the test set's typed queries, in every language, against the model's
  own gallery). A lower best score is rarer than 1 in 20 among queries that do match an image.
  A higher one proves nothing: a query that matches nothing can score as high as a true match
  (the file keeps the measured AUC).
- **Evaluate**: each model's saved evaluation on the full test set (its `eval_report*.json`:
  every instance ranked among every image), and a live one: Recall@1/5/10 for text-to-image
  (IR) and image-to-text (TR) per language, mean recall, and MRV in both directions on the
  first N instances, ranked among those N images only (`ccr_demo.eval.evaluate`).

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


def build(app: AppState) -> gr.Markdown:
    """The tab (call inside ``gr.Tabs``); it has no events. Returns its load line, which the page
    load event fills once the models are loaded."""
    with gr.Tab("About", id=TAB_ID):
        gr.Markdown(ABOUT)
        return gr.Markdown(app.status_markdown())

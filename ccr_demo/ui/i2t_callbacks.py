"""Image to text, as plain Python: the captions of the gallery ranked for an uploaded image or a
result clicked in the search tab, with the gold captions' ranks per language and their MRV for a
known test image. Uploads are checked (size, aspect, decompression bombs) before any work."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from ccr_demo.data.errors import DataFormatError
from ccr_demo.data.images import load_image
from ccr_demo.eval import metrics
from ccr_demo.ui.callbacks import item_image, not_ready_message, rank_list
from ccr_demo.ui.ranges import whole_number
from ccr_demo.ui.state import AppState, Limits


@dataclass
class ImageToTextResult:
    ok: bool
    message: str
    image: Any = None  # what to show as the query
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    ranks: dict[str, int] | None = None  # gold caption's best rank per language (1-based), for a known image
    mrv: float | None = None
    mrv_var: float | None = None
    query_id: str | None = None

    def summary(self) -> dict:
        return {"query": self.query_id, "ranks": self.ranks, "mrv": self.mrv, "mrv_var": self.mrv_var,
                "captions": self.table.to_dict(orient="records") if len(self.table) else []}


def check_shape(width: int, height: int, max_aspect: float, label: str = "image") -> None:
    """DataFormatError for an image too thin to use: resizing its short side to the model's input
    size would make a huge image (a 2 KB 1x1,000,000 PNG asked for gigabytes), and the centre
    crop would keep a sliver of it anyway."""
    if width < 1 or height < 1:
        raise DataFormatError(f"{label}: image is {width}x{height}: it has no pixels")
    aspect = max(width, height) / min(width, height)
    if aspect > max_aspect:
        raise DataFormatError(f"{label}: image is {width}x{height}, aspect ratio {aspect:,.0f}:1; at most "
                              f"{max_aspect:g}:1 is accepted (crop it first)")


def open_upload(source: Any, max_pixels: int, max_aspect: float = Limits.max_aspect) -> Image.Image:
    """An uploaded file (path, bytes or PIL image) as RGB, via the library's guarded loader
    (decompression-bomb limit, truncated files, CMYK/16-bit/alpha conversion). The size in the
    file's header is checked (aspect ratio, pixel count) before anything is decoded."""
    if isinstance(source, Image.Image):
        check_shape(source.width, source.height, max_aspect)
        if source.width * source.height > max_pixels:
            raise DataFormatError(f"image is {source.width}x{source.height}, over the limit of {max_pixels} pixels")
        buf = io.BytesIO()
        source.save(buf, format="PNG")
        source = buf.getvalue()
    name = Path(source).name if isinstance(source, (str, Path)) else None
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise DataFormatError(f"{name}: file not found")
    try:
        with Image.open(source if isinstance(source, (str, Path)) else io.BytesIO(source)) as header:
            size = header.size
    except Exception:  # noqa: BLE001 - not an image, unreadable...: load_image names the problem
        size = None
    if size is not None:
        check_shape(*size, max_aspect, name or "image")
    return load_image(source, name=name, max_pixels=max_pixels)


def image_to_text(app: AppState, image: Any = None, *, row: int | None = None, gallery=None,
                  languages: Sequence[str] = (), k: int = 5) -> ImageToTextResult:
    """Top captions per language for an uploaded image or a gallery image (``row``).

    A gallery image is not re-encoded: its stored vector is the query. When the image is a
    test instance, its own captions' best rank per language (metrics.i2t_ranks) and their
    spread (the paper's image-to-text MRV for one instance) are shown too.
    """
    import torch  # here, not at import: the page is built and served before torch is loaded

    app.wait_loaded()
    if app.model is None:
        return ImageToTextResult(False, not_ready_message(app))
    try:
        k = whole_number(k, 1, app.limits.max_k, "k")
    except ValueError as e:
        return ImageToTextResult(False, str(e))
    query_id = None
    if row is not None:
        gallery = gallery if gallery is not None else app.gallery
        if gallery is None or not 0 <= int(row) < gallery.count:
            return ImageToTextResult(False, "That gallery image is no longer available; search again.")
        q = gallery.vectors[int(row)][None]
        query_id = gallery.ids[int(row)]
        shown = item_image(gallery, int(row))
    elif image is None or image == "":
        return ImageToTextResult(False, "Upload an image, or click an image in a search result.")
    else:
        try:
            pil = open_upload(image, app.limits.max_pixels, app.limits.max_aspect)
        except DataFormatError as e:
            return ImageToTextResult(False, f"That file cannot be used as an image: {e}")
        q = app.model.encode_images([pil]).numpy()
        pil.thumbnail((512, 512))
        shown = pil
    captions = app.captions(wait=False)  # never hold a request for minutes while captions are encoded
    if captions is None:
        why = app.captions_error or "the test captions are still being encoded (once, at start-up); try again soon"
        return ImageToTextResult(False, f"No captions to search: {why}", image=shown, query_id=query_id)
    langs = [lang for lang in languages if lang in captions.per_language] or captions.languages
    records, ranks = [], {}
    for lang in langs:
        g = captions.per_language[lang]
        scores, rows = g.search(q, k)
        for pos, (s, r) in enumerate(zip(scores[0], rows[0]), 1):
            if r >= 0:
                item = g.items[r]
                records.append({"language": lang, "#": pos, "score": round(float(s), 3),
                                "caption": item.get("caption", ""), "image": item.get("image_id", ""),
                                "match": "✓" if query_id is not None and item.get("image_id") == query_id else ""})
        gold = captions.gold_rows(lang, query_id) if query_id is not None else []
        if gold:
            full = (torch.from_numpy(q) @ torch.from_numpy(g.vectors).T).numpy()
            ranks[lang] = int(metrics.i2t_ranks(full, [gold])[0]) + 1
    result = ImageToTextResult(True, "", image=shown, table=pd.DataFrame(records), query_id=query_id)
    if ranks:
        result.ranks = ranks
        if len(ranks) > 1:
            r = np.array([list(ranks.values())])
            result.mrv = metrics.mean_rank_variance(r, "std")
            result.mrv_var = metrics.mean_rank_variance(r, "var")
    result.message = _i2t_markdown(result, app.shown(captions.source))  # a built index names its files
    return result


def _i2t_markdown(res: ImageToTextResult, source: str) -> str:
    head = f"Query: gallery image **{res.query_id}**" if res.query_id else "Query: your uploaded image"
    lines = [head + f" (captions from {source})."]
    if res.ranks:
        lines.append("")
        lines.append("Best rank of its own captions: " + rank_list(res.ranks)
                     + (f" — image-to-text MRV **{res.mrv:.3f}** (variance {res.mrv_var:.3f})"
                        if res.mrv is not None else ""))
    return "\n".join(lines)



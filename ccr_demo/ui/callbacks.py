"""The functions behind every UI event, as plain Python: no Gradio objects in or out.

Why plain: tests call them directly (no browser, no server), and layout.py only maps their
results onto components. Every number comes from the library: ranks, consensus, MRV and
top-k overlap from ``ccr_demo.eval.metrics``, search from ``ccr_demo.gallery.gallery.Gallery``, evaluation
from ``ccr_demo.eval.evaluate``. Ranks are 0-based in the library; the UI shows them 1-based
(1 = top), which changes no spread (std, variance, MRV).

Bad input never raises out of here: each function returns a message for the user instead.
"""

from __future__ import annotations

import io
import logging
import os
import random
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ccr_demo import LANGUAGES
from ccr_demo.data.errors import DataFormatError
from ccr_demo.data.images import load_image
from ccr_demo.eval import metrics
from ccr_demo.model.fingerprint import weights_fingerprint
from ccr_demo.ui import rerank_view
from ccr_demo.ui.state import AppState, Limits

log = logging.getLogger(__name__)

PLOT_IMAGES = 8  # images drawn in the rank-per-language plot
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
_PLACEHOLDER: Image.Image | None = None


def _placeholder() -> Image.Image:
    """Shown for a gallery item whose image file is gone (a missing file would fail the whole event)."""
    global _PLACEHOLDER
    if _PLACEHOLDER is None:
        _PLACEHOLDER = Image.new("RGB", (64, 64), (210, 210, 210))
    return _PLACEHOLDER


def _bullets(notes: Sequence[str]) -> str:
    return "\n".join(f"- {n}" for n in notes)


def not_ready_message(app: AppState) -> str:
    return "**The model or the gallery is not loaded**, so there is nothing to search.\n\n" + app.status_markdown()


# --------------------------------------------------------------------------- queries


def clean_query(text: Any, max_chars: int) -> tuple[str | None, str | None]:
    """(query to encode or None to skip it, a note for the user or None).

    Control and format characters (zero-width, bidi marks, NUL) become spaces, text is NFC
    normalised and cut at ``max_chars``; a text without any letter or digit (only emoji,
    punctuation or symbols) is skipped: the model has nothing to read in it.
    """
    if text is None:
        return None, None
    if not isinstance(text, str):
        return None, f"a query must be text, got {type(text).__name__}"
    typed = len(text)
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text)
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return None, None
    note = None
    if len(text) > max_chars:
        note = f"the query has {typed:,} characters; only the first {max_chars:,} were used"
        text = text[:max_chars].rstrip()
    if not any(unicodedata.category(c)[0] in "LN" for c in text):
        return None, "the query has no letters or digits (only punctuation, emoji or symbols): skipped"
    return text, note


def prepare_queries(texts: Mapping[str, Any], max_chars: int) -> tuple[dict[str, str], list[str]]:
    """{language: raw text} -> ({language: clean query} for the non-empty ones, notes)."""
    queries, notes = {}, []
    for lang, raw in texts.items():
        if lang not in LANGUAGES:
            notes.append(f"unknown language {lang!r} ignored (choose from {', '.join(LANGUAGES)})")
            continue
        query, note = clean_query(raw, max_chars)
        if note:
            notes.append(f"**{lang}**: {note}")
        if query is not None:
            queries[lang] = query
    return queries, notes


def _clamp_k(k: Any, max_k: int, what: str = "k") -> int:
    """k as an int clamped to [1, max_k]; ValueError naming the problem for NaN, inf, None or text."""
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) or not np.isfinite(k):
        raise ValueError(f"{what} must be a whole number from 1 to {max_k}, got {k!r}")
    return max(1, min(int(k), max_k))


# --------------------------------------------------------------------------- text -> image


@dataclass
class SearchResult:
    """Everything a search shows. ``panes``: per language, (image, caption) pairs best first."""

    ok: bool
    message: str
    languages: list[str] = field(default_factory=list)
    queries: dict[str, str] = field(default_factory=dict)
    panes: dict[str, list[tuple[Any, str]]] = field(default_factory=dict)
    pane_rows: dict[str, list[int]] = field(default_factory=dict)
    hits: dict[str, list[dict]] = field(default_factory=dict)  # per language: {"image", "score"} best first
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    overlap: pd.DataFrame = field(default_factory=pd.DataFrame)
    plot: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["language", "rank", "image"]))
    mrv: float | None = None
    mrv_var: float | None = None
    consensus: str | None = None
    gold: dict | None = None
    mrv_markdown: str = ""
    warnings: list[str] = field(default_factory=list)
    # with fusion re-ranking: the re-ranked view's numbers (rerank_view.summary); mrv, consensus,
    # gold and hits above stay contrastive, panes / table / plot / overlap show the re-ranked view
    rerank: dict | None = None

    def summary(self) -> dict:
        """JSON-ready numbers (the API's view of the consistency panel)."""
        out = {"languages": self.languages, "queries": self.queries, "mrv": self.mrv, "mrv_var": self.mrv_var,
               "consensus": self.consensus, "gold": self.gold,
               "results": self.hits,
               "ranks": self.table.to_dict(orient="records") if len(self.table) else []}
        if self.rerank is not None:
            out["rerank"] = self.rerank
        return out


def _item_image(gallery, row: int):
    return gallery.image_file(row) or _placeholder()


def _gold_row(gallery, gold: Mapping | None, queries: Mapping[str, str], notes: list[str],
              max_chars: int) -> int | None:
    """The gold image's row, if gold mode still applies to these queries (none was edited)."""
    if not gold:
        return None
    captions = gold.get("captions") or {}
    edited = [lang for lang, q in queries.items() if clean_query(captions.get(lang), max_chars)[0] != q]
    if edited:
        notes.append(f"gold mode is off: the {', '.join(edited)} quer{'ies were' if len(edited) > 1 else 'y was'} "
                     "edited after the test instance was drawn")
        return None
    try:
        return gallery.position(gold["image_id"])
    except (KeyError, TypeError):
        notes.append(f"the gold image {gold.get('image_id')!r} is not in this gallery")
        return None


def search(app: AppState, texts: Mapping[str, Any], k: int = 5, gallery=None,
           gold: Mapping | None = None, rerank: bool = False,
           rerank_k: Any = rerank_view.DEFAULT_RERANK_K) -> SearchResult:
    """Search the gallery with one query per language: one encode_texts call for all
    languages (through the app's query cache) and one index search (Gallery.search_texts), then the rank of every image under
    every language from the stored vectors (metrics.rank_consistency).

    ``rerank``: re-order each language's top ``rerank_k`` with the fusion encoder's ITM head
    (rerank_view); panes show the re-ranked order, ranks and MRV read "contrastive → re-ranked".
    """
    gallery = gallery if gallery is not None else app.gallery
    if app.model is None or gallery is None:
        return SearchResult(False, not_ready_message(app))
    queries, notes = prepare_queries(texts, app.limits.max_query_chars)
    if not queries:
        msg = "Type a query in at least one language box, then press **Search**."
        return SearchResult(False, msg + ("\n\n" + _bullets(notes) if notes else ""), warnings=notes)
    try:
        k = _clamp_k(k, app.limits.max_k)
    except ValueError as e:
        return SearchResult(False, str(e), warnings=[str(e)])
    search_k = k
    if rerank:
        if not app.can_rerank:
            msg = f"Re-ranking is off for this model: {rerank_view.NO_FUSION}."
            return SearchResult(False, msg, warnings=[msg])
        try:
            rerank_k = rerank_view.check_rerank_k(rerank_k, app.limits.max_rerank_k)
        except ValueError as e:
            return SearchResult(False, str(e), warnings=[str(e)])
        search_k = max(k, rerank_k)
    langs = list(queries)
    try:
        res = gallery.search_texts(app.query_encoder, queries, search_k, exact_ranks=False)
    except Exception as e:  # noqa: BLE001 - e.g. a session gallery of another model
        log.exception("search failed")
        return SearchResult(False, f"Search failed: {e}")
    # Exact scores of every image under every language: ranks over the WHOLE gallery.
    full = (torch.from_numpy(res.query_emb) @ torch.from_numpy(gallery.vectors).T).numpy()
    cons = metrics.rank_consistency(full, k)
    shown, top_scores, top_rows, rr = cons, res.scores[:, :k], res.positions[:, :k], None
    if rerank:
        try:
            rr = rerank_view.rerank(app.model, app.image_memory, gallery, list(queries.values()), res.scores,
                                    res.positions, cons.ranks, rerank_k, k, max_pixels=app.limits.max_pixels)
        except Exception as e:  # noqa: BLE001 - the app keeps serving; the log has the traceback
            log.exception("re-ranking failed")
            return SearchResult(False, f"Re-ranking failed: {e}")
        notes.extend(rr.notes)
        shown, top_scores, top_rows = rr.cons, rr.scores[:, :k], rr.positions[:, :k]
    gold_row = _gold_row(gallery, gold, queries, notes, app.limits.max_query_chars)

    # with re-ranking, also the contrastive top k: the table shows what re-ranking moved out of it
    rows: list[int] = sorted({int(p) for p in top_rows.ravel() if p >= 0}
                             | {int(p) for p in res.positions[:, :k].ravel() if p >= 0}
                             | {cons.consensus, shown.consensus} | ({gold_row} if gold_row is not None else set()))
    ids = {r: gallery.items[r]["id"] for r in rows}  # not gallery.ids: that lists every item
    row_of = {v: r for r, v in ids.items()}

    def role(row: int) -> str:
        return ", ".join(r for r, on in (("gold", row == gold_row), ("consensus", row == shown.consensus)) if on)

    def rank(row: int, i: int):  # 1-based; "contrastive → re-ranked" with re-ranking
        return int(cons.ranks[row, i]) + 1 if rr is None else \
            rerank_view.arrow(int(cons.ranks[row, i]) + 1, int(shown.ranks[row, i]) + 1)

    def both(values_c, values_r, row: int, digits: int, shift: float = 0):
        c = round(float(values_c[row]) + shift, digits)
        return c if rr is None else rerank_view.arrow(c, round(float(values_r[row]) + shift, digits))

    pane_rows = {lang: [int(p) for p in top_rows[i] if p >= 0] for i, lang in enumerate(langs)}
    panes = {}
    for i, lang in enumerate(langs):
        pane = []
        for pos, (score, row) in enumerate(zip(top_scores[i], top_rows[i]), 1):
            if row < 0:
                continue
            mark = {"gold": "★ ", "consensus": "◆ ", "gold, consensus": "★◆ "}.get(role(row), "")
            where = f"#{pos}"
            if rr is not None and pos > rr.k:
                where = f"#{pos} (after the re-ranked top {rr.k}: contrastive order)"
            elif rr is not None:
                itm = rr.itm[i, pos - 1]
                where = (f"#{pos} re-ranked (contrastive #{rr.before[i, pos - 1]})"
                         + (f" · ITM {itm:.3f}" if np.isfinite(itm) else " · ITM -"))
            ranks = " · ".join(f"{lg}\u00a0{rank(row, j)}".replace(" → ", "\u00a0→\u00a0")  # no break inside
                               for j, lg in enumerate(langs))
            pane.append((_item_image(gallery, row), f"{mark}{ids[row]}\n{where} · score {score:.3f}\n{ranks}"))
        panes[lang] = pane
    hits = {lang: [{"image": ids[r], "score": round(float(s), 4)}
                   for s, r in zip(res.scores[i, :k], res.positions[i, :k]) if r >= 0] for i, lang in enumerate(langs)}

    table = pd.DataFrame({
        "image": [ids[r] for r in rows],
        "role": [role(r) for r in rows],
        "top-k in": [",".join(lg for lg in langs if r in pane_rows[lg]) for r in rows],
        **{f"rank {lg}": [rank(r, i) for r in rows] for i, lg in enumerate(langs)},
        "mean rank": [both(cons.mean_rank, shown.mean_rank, r, 2, 1) for r in rows],
        "std": [both(cons.std, shown.std, r, 3) for r in rows],
        "variance": [both(cons.var, shown.var, r, 3) for r in rows],
        "_order": [round(float(shown.mean_rank[r]) + 1, 2) for r in rows],
    }).sort_values(["_order", "image"], kind="stable").drop(columns="_order").reset_index(drop=True)

    plotted = list(table["image"][:PLOT_IMAGES])
    for r in (gold_row, shown.consensus):
        if r is not None and ids[r] not in plotted:
            plotted.append(ids[r])
    plot = pd.DataFrame([{"language": lg, "rank": int(shown.ranks[row_of[img], i]) + 1, "image": img}
                         for img in plotted for i, lg in enumerate(langs)])
    overlap = pd.DataFrame(np.round(shown.overlap, 2), columns=langs)
    overlap.insert(0, f"top-{cons.k} overlap" + (" (re-ranked)" if rr is not None else ""), langs)

    several = len(langs) > 1
    gold_info = None
    if gold_row is not None:
        gold_ranks = cons.ranks[[gold_row]]  # [1, L]: one instance, as the paper's MRV takes it
        gold_info = {"image_id": ids[gold_row], "ranks": {lg: int(r) + 1 for lg, r in zip(langs, gold_ranks[0])},
                     "mrv": metrics.mean_rank_variance(gold_ranks, "std"),
                     "mrv_var": metrics.mean_rank_variance(gold_ranks, "var")}
    result = SearchResult(
        ok=True, message=_bullets(notes), languages=langs, queries=queries, panes=panes, pane_rows=pane_rows, hits=hits,
        table=table, overlap=overlap, plot=plot, mrv=cons.mrv if several else None,
        mrv_var=cons.mrv_var if several else None, consensus=ids[cons.consensus], gold=gold_info, warnings=notes)
    if rr is not None:
        result.rerank = rerank_view.summary(rr, langs, ids, cons.ranks, rows, k, gold_row)
    result.mrv_markdown = _mrv_markdown(result, cons, gallery.count)
    return result


def _rank_list(ranks: Mapping[str, int]) -> str:
    return " · ".join(f"{lang} **{r}**" for lang, r in ranks.items())


def _mrv_markdown(res: SearchResult, cons: metrics.RankConsistency, n_images: int) -> str:
    if res.rerank is not None:
        return rerank_view.mrv_markdown(res.languages, res.mrv, res.mrv_var, res.consensus, res.gold, res.rerank,
                                        cons, n_images)
    langs = res.languages
    row = res.table.set_index("image").loc[res.consensus]
    cons_ranks = {lg: int(row[f"rank {lg}"]) for lg in langs}
    lines = []
    if res.mrv is None:
        lines.append("### Query MRV: needs two or more languages")
        lines.append("MRV is the spread of an image's rank across languages; type the query in another language too.")
    else:
        lines.append(f"### Query MRV: {res.mrv:.3f}")
        lines.append(f"std of the consensus image's ranks across the {len(langs)} languages "
                     f"(variance {res.mrv_var:.3f}); 0 = every language ranks it the same. "
                     f"Ranks are over all {n_images} gallery images, 1 = top.")
    lines.append("")
    lines.append(f"◆ Consensus image **{res.consensus}** (lowest mean rank, {row['mean rank']:.2f}): "
                 + _rank_list(cons_ranks))
    if res.gold:
        g = res.gold
        mrv = f"gold MRV **{g['mrv']:.3f}** (variance {g['mrv_var']:.3f})" if len(langs) > 1 else "one language: no MRV"
        lines.append("")
        lines.append(f"★ Gold image **{g['image_id']}**: " + _rank_list(g["ranks"]) + f" — {mrv}, "
                     "the per-instance quantity the paper's MRV averages.")
    overlap = cons.overlap[~np.eye(len(langs), dtype=bool)]
    if overlap.size:
        lines.append("")
        lines.append(f"Mean pairwise top-{cons.k} overlap between languages: {overlap.mean():.2f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- gold mode


@dataclass
class Instance:
    texts: dict[str, str]
    gold: dict | None
    message: str


def random_instance(app: AppState, languages: Sequence[str], index: Any = None, seed: int | None = None) -> Instance:
    """Draw a parallel test instance (or take ``index``; None or < 0 draws): its first caption in
    each chosen language (the paper's parallel query) and the gold image to mark."""
    inst = app.instances
    if inst is None:
        return Instance({}, None, "Gold mode needs the test set: none was loaded. " + app.status_markdown())
    langs = [lang for lang in languages if lang in LANGUAGES]
    if not langs:
        return Instance({}, None, "Choose at least one language first.")
    eligible = list(range(len(inst)))
    if app.gallery is not None:
        in_gallery = set(app.gallery.ids)
        eligible = [i for i in eligible if inst.image_ids[i] in in_gallery]
        if not eligible:
            return Instance({}, None, "None of the test set's images is in the gallery: no gold image to mark.")
    try:
        index = None if index is None or index == "" else int(index)
    except (TypeError, ValueError):
        return Instance({}, None, f"instance number must be an integer, got {index!r}")
    if index is None or index < 0:
        index = random.Random(seed).choice(eligible)
    elif index >= len(inst):
        return Instance({}, None, f"instance {index} does not exist: the test set has {len(inst)} (0-{len(inst) - 1})")
    elif index not in eligible:
        return Instance({}, None, f"instance {index} ({inst.image_ids[index]}) is not in the gallery")
    texts = {lang: inst.captions[lang][index][0] for lang in langs if lang in inst.captions}
    missing = [lang for lang in langs if lang not in inst.captions]
    notes = [f"Test instance {index} of {len(inst)}: gold image **{inst.image_ids[index]}**."]
    if missing:
        notes.append(f"The test set has no captions in {', '.join(missing)}: those boxes were cleared.")
    gold = {"image_id": inst.image_ids[index], "index": index, "captions": dict(texts)}
    return Instance({**{lang: "" for lang in missing}, **texts}, gold, " ".join(notes))


# --------------------------------------------------------------------------- image -> text


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
    if app.model is None:
        return ImageToTextResult(False, not_ready_message(app))
    try:
        k = _clamp_k(k, app.limits.max_k)
    except ValueError as e:
        return ImageToTextResult(False, str(e))
    query_id = None
    if row is not None:
        gallery = gallery if gallery is not None else app.gallery
        if gallery is None or not 0 <= int(row) < gallery.count:
            return ImageToTextResult(False, "That gallery image is no longer available; search again.")
        q = gallery.vectors[int(row)][None]
        query_id = gallery.ids[int(row)]
        shown = _item_image(gallery, int(row))
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
    result.message = _i2t_markdown(result, captions.source)
    return result


def _i2t_markdown(res: ImageToTextResult, source: str) -> str:
    head = f"Query: gallery image **{res.query_id}**" if res.query_id else "Query: your uploaded image"
    lines = [head + f" (captions from {source})."]
    if res.ranks:
        lines.append("")
        lines.append("Best rank of its own captions: " + _rank_list(res.ranks)
                     + (f" — image-to-text MRV **{res.mrv:.3f}** (variance {res.mrv_var:.3f})"
                        if res.mrv is not None else ""))
    return "\n".join(lines)


# --------------------------------------------------------------------------- session gallery


@dataclass
class SessionGalleryResult:
    gallery: Any
    message: str


def _unique_names(paths: Sequence[Path]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        n = seen.get(p.name, 0)
        seen[p.name] = n + 1
        out.append(p.name if n == 0 else f"{p.stem}_{n + 1}{p.suffix}")
    return out


def scan_image_folder(root: Path, max_files: int, max_entries: int) -> tuple[list[Path], list[str]]:
    """Image files under ``root`` (sorted walk, hidden entries left out), at most ``max_files``,
    looking at no more than ``max_entries`` directory entries. Never raises: a folder or entry
    that cannot be read (permissions, a vanished file, /proc oddities) is skipped and counted."""
    found: list[Path] = []
    unreadable: list[str] = []
    seen = 0
    stopped = None

    def on_error(e: OSError) -> None:
        unreadable.append(f"{e.filename}: {e.strerror or e}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            seen += 1
            if seen > max_entries:
                stopped = f"looked at {max_entries:,} entries of the folder and stopped"
                break
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            p = Path(dirpath) / name
            try:
                ok = p.is_file() and os.access(p, os.R_OK)
            except OSError as e:
                ok = False
                unreadable.append(f"{p}: {e.strerror or e}")
            else:
                if not ok:
                    unreadable.append(f"{p}: not a readable file")
            if ok:
                found.append(p)
                if len(found) >= max_files:
                    stopped = f"stopped at {max_files} images (the limit for one gallery)"
                    break
        if stopped:
            break
    notes = [stopped] if stopped else []
    if unreadable:
        notes.append(f"skipped {len(unreadable)} unreadable entr{'y' if len(unreadable) == 1 else 'ies'}, "
                     "e.g. " + "; ".join(unreadable[:3]))
    return found, notes


def build_session_gallery(app: AppState, files: Sequence[Any] | None = None,
                          folder: str | None = None) -> SessionGalleryResult:
    """A gallery of the user's own images, for this session only (the shared one is untouched).

    Each file is checked with the guarded loader first; bad ones are listed and skipped.
    ``folder`` (a path on the server) is accepted only when the app allows local paths.
    """
    if app.model is None:
        return SessionGalleryResult(None, not_ready_message(app))
    lim = app.limits
    paths: list[Path] = []
    notes: list[str] = []
    for f in files or []:
        p = getattr(f, "name", f)  # a gradio upload (filepath) or a plain path
        if p:
            paths.append(Path(str(p)))
    if folder and str(folder).strip():
        if not app.allow_local_paths:
            notes.append("Folder paths are turned off on this server; upload the images instead.")
        else:
            root = Path(str(folder).strip()).expanduser()
            if not root.is_dir():
                notes.append(f"`{root}` is not a folder on this machine.")
            else:
                found, folder_notes = scan_image_folder(root, lim.max_folder_files, lim.max_folder_entries)
                notes.extend(folder_notes)
                paths.extend(found)
    if not paths:
        return SessionGalleryResult(None, "Give some images: upload files (or a folder path when running locally). "
                                    + " ".join(notes))
    max_n = max(lim.max_upload_images, lim.max_folder_files if folder else 0)
    if len(paths) > max_n:
        notes.append(f"{len(paths)} images given; the first {max_n} were used")
        paths = paths[:max_n]
    good, bad = [], []
    for p in paths:
        try:
            open_upload(p, lim.max_pixels, lim.max_aspect)
            good.append(p)
        except DataFormatError as e:
            bad.append(f"{p.name}: {str(e).split(': ', 1)[-1]}")
    if bad:
        notes.append(f"skipped {len(bad)} file(s) that are not usable images: " + "; ".join(bad[:5])
                     + (" ..." if len(bad) > 5 else ""))
    if not good:
        return SessionGalleryResult(None, "No usable image among the files.\n\n" + _bullets(notes))
    from ccr_demo.gallery.gallery import Gallery

    try:
        g = Gallery.build(app.model, [str(p) for p in good], metadata=[{"id": n} for n in _unique_names(good)],
                          batch_size=32, progress=False)
    except Exception as e:  # noqa: BLE001
        log.exception("session gallery failed")
        return SessionGalleryResult(None, f"Building the gallery failed: {e}\n\n" + _bullets(notes))
    msg = f"Your gallery: **{g.count} images**, searchable now (choose *my gallery* in the search tab)."
    return SessionGalleryResult(g, msg + ("\n\n" + _bullets(notes) if notes else ""))


# --------------------------------------------------------------------------- evaluation


METRIC_ORDER = ["IR R@1", "IR R@5", "IR R@10", "TR R@1", "TR R@5", "TR R@10"]


@dataclass
class EvaluationResult:
    ok: bool
    message: str
    report: dict | None = None
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    chart: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["metric", "recall", "language"]))
    headline: str = ""  # MRV both ways, instances, mean recall
    markdown: str = ""  # the full report as model cards print it (ccr_demo.eval.tables.report_table)
    query_table: pd.DataFrame = field(default_factory=pd.DataFrame)  # typed queries: P@1, P@5, mAP@10
    query_headline: str = ""  # typed queries: consistency across languages


def evaluate(app: AppState, max_instances: Any = 100, languages: Sequence[str] = (),
             progress: Callable | None = None, reuse_gallery: bool = True) -> EvaluationResult:
    """Recall@1/5/10 both ways, mean recall and MRV on the first ``max_instances`` of the test set.

    When the gallery holds the test images embedded by this model, their stored vectors are
    reused (only captions are encoded): the same numbers, without re-encoding images.
    """
    from ccr_demo.eval.evaluate import evaluate as run_evaluation
    from ccr_demo.eval.evaluate import query_report_from_embeddings, report_from_embeddings
    from ccr_demo.eval.tables import report_table

    if app.model is None:
        return EvaluationResult(False, not_ready_message(app))
    if app.test_set is None:
        return EvaluationResult(False, "Evaluation needs a parallel test set: none was loaded. "
                                + app.status_markdown())
    ts = app.test_set
    langs = [lang for lang in languages if lang in ts.languages] or list(ts.languages)
    try:
        n = _clamp_k(max_instances, len(ts), what="max_instances")
    except ValueError as e:
        return EvaluationResult(False, str(e))
    sub = ts.with_languages(langs).subset(n)
    notes = []
    dropped = [lang for lang in languages if lang not in ts.languages]
    if dropped:
        notes.append(f"the test set has no {', '.join(dropped)} captions: left out")
    g = app.gallery
    rows = None
    if reuse_gallery and g is not None and g.fingerprint == weights_fingerprint(app.model):
        try:
            rows = [g.position(i) for i in sub.image_ids]
        except KeyError:
            rows = None
    queries = None
    if app.queries is not None and all(lang in app.queries.texts for lang in langs):
        queries = app.queries.with_languages(langs).restricted(sub.image_ids, max_queries=n) or None
    try:
        if rows is not None:
            image_emb = torch.from_numpy(g.vectors[rows])
            text_emb = {}
            for i, lang in enumerate(langs):
                if progress is not None:
                    progress(i / len(langs), desc=f"encoding {lang} captions")
                text_emb[lang] = app.model.encode_texts(sub.captions[lang])
            report = report_from_embeddings(image_emb, text_emb, sub)
            notes.append("image embeddings: the gallery's stored vectors (same model); captions encoded now")
            if queries is not None:
                if progress is not None:
                    progress(0.9, desc=f"encoding {len(queries)} typed queries")
                query_emb = {lang: app.model.encode_texts(queries.texts[lang]) for lang in langs}
                report["queries"] = query_report_from_embeddings(image_emb, query_emb, queries, sub.image_ids)
        else:
            if progress is not None:
                progress(0.0, desc=f"encoding {n} images and their captions")
            report = run_evaluation(app.model, sub, langs, progress=False, queries=queries)
        if queries is not None:
            notes.append(f"typed queries: the {len(queries)} of `{app.queries.name}` true of at least one of "
                         f"these {n} images, ranked among them")
    except Exception as e:  # noqa: BLE001 - e.g. missing image files
        log.exception("evaluation failed")
        return EvaluationResult(False, f"Evaluation failed: {e}")
    table = pd.DataFrame([{"language": lang,
                           **{f"IR R@{k}": round(report["t2i"][lang][str(k)], 2) for k in (1, 5, 10)},
                           **{f"TR R@{k}": round(report["i2t"][lang][str(k)], 2) for k in (1, 5, 10)},
                           "mean recall": round(report["mean_recall"][lang], 2)} for lang in langs])
    chart = table.melt(id_vars="language", value_vars=METRIC_ORDER, var_name="metric", value_name="recall")
    mrv = report["mrv"]
    head = (f"### MRV: text-to-image {mrv['t2i']:.3f} · image-to-text {mrv['i2t']:.3f}\n"
            f"{n} instances × {len(langs)} languages of `{ts.name}`; mean recall over languages "
            f"{report['mean_recall']['all']:.2f}.")
    query_table, query_head = pd.DataFrame(), ""
    if report.get("queries"):
        q = report["queries"]
        query_table = pd.DataFrame([{"language": lang, **{m: round(v, 3) for m, v in q["per_language"][lang].items()}}
                                    for lang in langs])
        c = q["consistency"]
        query_head = (f"**Typed queries** ({q['n_queries']} queries, {q['mean_relevant']:.1f} relevant images each): "
                      f"mean P@5 {q['mean']['p@5']:.3f} · first-relevant-rank std across languages "
                      f"{c['first_rank_std']:.3f} · top-5 overlap {c['top5_overlap']:.3f}")
    return EvaluationResult(True, _bullets(notes), report=report, table=table, chart=chart, headline=head,
                            markdown=report_table(report), query_table=query_table, query_headline=query_head)


"""The search tab's events as plain Python (queries, text -> image search, gold mode): no Gradio
objects in or out. Their siblings: ``i2t_callbacks`` (image -> text), ``gallery_callbacks`` (the
session gallery), ``eval_callbacks`` (the Evaluate tab), ``compare_view`` (models side by side).

Why plain: tests call them directly (no browser, no server), and the tabs (``ccr_demo.ui.tabs``)
only map their results onto components. Every number comes from the library: ranks, consensus,
MRV and top-k overlap from ``ccr_demo.eval.metrics``, search from ``ccr_demo.gallery.Gallery``,
evaluation from ``ccr_demo.eval.evaluate``. Ranks are 0-based in the library; the UI shows them
1-based (1 = top), which changes no spread (std, variance, MRV).

Bad input never raises out of here: each function returns a message for the user instead.
"""

from __future__ import annotations

import logging
import random
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from ccr_demo import LANGUAGES
from ccr_demo.eval import metrics
from ccr_demo.ui import rerank_view
from ccr_demo.ui.lanes import LaneFull
from ccr_demo.ui.ranges import whole_number
from ccr_demo.ui.state import AppState

log = logging.getLogger(__name__)

_PLACEHOLDER: Image.Image | None = None


def _placeholder() -> Image.Image:
    """Shown for a gallery item whose image file is gone (a missing file would fail the whole event)."""
    global _PLACEHOLDER
    if _PLACEHOLDER is None:
        _PLACEHOLDER = Image.new("RGB", (64, 64), (210, 210, 210))
    return _PLACEHOLDER


def bullets(notes: Sequence[str]) -> str:
    return "\n".join(f"- {n}" for n in notes)


def not_ready_message(app: AppState) -> str:
    if not app.loaded.is_set():
        return "**The models are still loading**; try again in a few seconds.\n\n" + app.status_markdown()
    return "**The model or the gallery is not loaded**, so there is nothing to search.\n\n" + app.status_markdown()


# --------------------------------------------------------------------------- queries


def tower_text(model: Any, text: str) -> str:
    """The part of ``text`` the model's text tower reads: the characters its first
    ``text_max_length`` tokens cover (after the model's prefix, as ``processing.tokenize`` cuts).
    Why: anything after them changes no embedding and no ITM score, yet was tokenized, cached
    and carried through fusion re-ranking; cut here, before any work, a 1000-character query
    costs what the model reads. The cut text must tokenize to exactly the tokens the whole text
    gave, so no embedding or score changes; the text is kept whole when it fits, when the
    tokenizer cannot map its tokens back to characters (a slow one), or when the cut would
    tokenize otherwise."""
    tokenizer, config = getattr(model, "tokenizer", None), getattr(model, "config", None)
    if not getattr(tokenizer, "is_fast", False) or config is None:
        return text
    prefix = config.text_prefix or ""
    limit = min(config.text_max_length, getattr(tokenizer, "model_max_length", None) or config.text_max_length)
    from ccr_demo.model.processing import call_tokenizer  # imports torch: not before the page is served

    enc = call_tokenizer(tokenizer, prefix + text, truncation=True, max_length=limit, return_offsets_mapping=True)
    ends = [end for start, end in enc["offset_mapping"] if end > start]  # special tokens are (0, 0)
    used = max(ends, default=len(prefix) + len(text)) - len(prefix)
    if not 0 < used < len(text):
        return text
    cut = text[:used]
    same = call_tokenizer(tokenizer, prefix + cut, truncation=True, max_length=limit)["input_ids"] == enc["input_ids"]
    return cut if same else text


def clean_query(text: Any, max_chars: int, fit: Callable[[str], str] | None = None) -> tuple[str | None, str | None]:
    """(query to encode or None to skip it, a note for the user or None).

    Control and format characters (zero-width, bidi marks, NUL) become spaces, text is NFC
    normalised and cut at ``max_chars``, then to what ``fit`` keeps (``tower_text``: what the
    model reads); a text without any letter or digit (only emoji, punctuation or symbols) is
    skipped: the model has nothing to read in it.
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
    cut = text[:max_chars].rstrip() if len(text) > max_chars else text
    fitted = fit(cut) if fit is not None else cut
    if len(fitted) < len(text):
        note = f"the query has {typed:,} characters; only the first {len(fitted):,} were used" + (
            " (what the model reads)" if len(fitted) < len(cut) else "")
        text = fitted
    if not any(unicodedata.category(c)[0] in "LN" for c in text):
        return None, "the query has no letters or digits (only punctuation, emoji or symbols): skipped"
    return text, note


def prepare_queries(texts: Mapping[str, Any], max_chars: int,
                    fit: Callable[[str], str] | None = None) -> tuple[dict[str, str], list[str]]:
    """{language: raw text} -> ({language: clean query} for the non-empty ones, notes)."""
    queries, notes = {}, []
    for lang, raw in texts.items():
        if lang not in LANGUAGES:
            notes.append(f"unknown language {lang!r} ignored (choose from {', '.join(LANGUAGES)})")
            continue
        query, note = clean_query(raw, max_chars, fit)
        if note:
            notes.append(f"**{lang}**: {note}")
        if query is not None:
            queries[lang] = query
    return queries, notes


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
    mrv: float | None = None
    mrv_var: float | None = None
    consensus: str | None = None
    gold: dict | None = None
    mrv_markdown: str = ""
    detail_markdown: str = ""  # the same without the MRV heading (shown where MRV already is: side by side)
    warnings: list[str] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)  # per language: its best (contrastive) score
    no_match_threshold: float | None = None  # the model's calibrated threshold (model_info), if any
    no_match: list[str] = field(default_factory=list)  # languages whose best score is below it
    # with fusion re-ranking: the re-ranked view's numbers (rerank_view.summary); mrv, consensus,
    # gold and hits above stay contrastive, panes / table / overlap show the re-ranked view
    rerank: dict | None = None

    def summary(self) -> dict:
        """JSON-ready numbers (the API's view of the consistency panel)."""
        out = {"languages": self.languages, "queries": self.queries, "mrv": self.mrv, "mrv_var": self.mrv_var,
               "consensus": self.consensus, "gold": self.gold,
               "results": self.hits,
               "ranks": self.table.to_dict(orient="records") if len(self.table) else [],
               "best_score": self.best, "no_match_threshold": self.no_match_threshold,
               "no_good_match": self.no_match}
        if self.rerank is not None:
            out["rerank"] = self.rerank
        return out


def item_image(gallery, row: int):
    return gallery.image_file(row) or _placeholder()


def _gold_row(gallery, gold: Mapping | None, queries: Mapping[str, str], notes: list[str],
              clean: Callable[[Any], str | None]) -> int | None:
    """The gold image's row, if gold mode still applies to these queries (none was edited);
    ``clean``: raw text -> the query it makes, as the search made ``queries``."""
    if not gold:
        return None
    captions = gold.get("captions") or {}
    edited = [lang for lang, q in queries.items() if clean(captions.get(lang)) != q]
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
    languages (through the app's query cache) and one index search (Gallery.search_texts), then
    the rank of every image under every language from the stored vectors (metrics.rank_consistency);
    each language's best score against the model's "no good match" threshold (``no_match``).

    ``rerank``: re-order each language's top ``rerank_k`` with the fusion encoder's ITM head
    (rerank_view); panes show the re-ranked order, ranks and MRV read "contrastive → re-ranked".
    """
    import torch  # here, not at import: the page is built and served before torch is loaded

    app.wait_loaded()
    gallery = gallery if gallery is not None else app.gallery
    if app.model is None or gallery is None:
        return SearchResult(False, not_ready_message(app))

    def fit(text: str) -> str:
        return tower_text(app.model, text)

    queries, notes = prepare_queries(texts, app.limits.max_query_chars, fit)
    if not queries:
        msg = "Type a query in at least one language box, then press **Search**."
        return SearchResult(False, msg + ("\n\n" + bullets(notes) if notes else ""), warnings=notes)
    try:
        k = whole_number(k, 1, app.limits.max_k, "k")
    except ValueError as e:
        return SearchResult(False, str(e), warnings=[str(e)])
    search_k = k
    if rerank:
        if not app.can_rerank:
            msg = f"Re-ranking is off for this model: {rerank_view.NO_FUSION}."
            return SearchResult(False, msg, warnings=[msg])
        try:
            rerank_k = whole_number(rerank_k, 1, app.limits.max_rerank_k, "re-rank k")
        except ValueError as e:
            return SearchResult(False, str(e), warnings=[str(e)])
        rerank_k, note = rerank_view.depth_within_budget(rerank_k, len(queries), app.limits.max_rerank_pairs)
        notes.extend([note] if note else [])
        search_k = max(k, rerank_k)
    langs = list(queries)
    try:
        with app.search_lane.enter():  # as many contrastive searches at once as the cores (lanes.py)
            res = gallery.search_texts(app.query_encoder, queries, search_k, exact_ranks=False)
            # Exact scores of every image under every language: ranks over the WHOLE gallery.
            full = (torch.from_numpy(res.query_emb) @ torch.from_numpy(gallery.vectors).T).numpy()
            cons = metrics.rank_consistency(full, k)
    except Exception as e:  # noqa: BLE001 - e.g. a session gallery of another model
        log.exception("search failed")
        return SearchResult(False, f"Search failed: {e}")
    shown, top_scores, top_rows, rr = cons, res.scores[:, :k], res.positions[:, :k], None
    if rerank:
        try:
            with app.rerank_lane.enter():  # one at a time, never in the search lane: ordinary searches go on
                rr = rerank_view.rerank(app.model, app.image_memory, gallery, list(queries.values()), res.scores,
                                        res.positions, cons.ranks, rerank_k, k, max_pixels=app.limits.max_pixels)
        except LaneFull as e:
            msg = f"Not searched: {e}, or search without re-ranking."
            return SearchResult(False, msg, warnings=[msg])
        except Exception as e:  # noqa: BLE001 - the app keeps serving; the log has the traceback
            log.exception("re-ranking failed")
            return SearchResult(False, f"Re-ranking failed: {e}")
        notes.extend(rr.notes)
        shown, top_scores, top_rows = rr.cons, rr.scores[:, :k], rr.positions[:, :k]
    gold_row = _gold_row(gallery, gold, queries, notes,
                         lambda raw: clean_query(raw, app.limits.max_query_chars, fit)[0])

    # with re-ranking, also the contrastive top k: the table shows what re-ranking moved out of it
    rows: list[int] = sorted({int(p) for p in top_rows.ravel() if p >= 0}
                             | {int(p) for p in res.positions[:, :k].ravel() if p >= 0}
                             | {cons.consensus, shown.consensus} | ({gold_row} if gold_row is not None else set()))
    ids = {r: gallery.items[r]["id"] for r in rows}  # not gallery.ids: that lists every item

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
            pane.append((item_image(gallery, row), f"{mark}{ids[row]}\n{where} · score {score:.3f}\n{ranks}"))
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
        ok=True, message=bullets(notes), languages=langs, queries=queries, panes=panes, pane_rows=pane_rows, hits=hits,
        table=table, overlap=overlap, mrv=cons.mrv if several else None,
        mrv_var=cons.mrv_var if several else None, consensus=ids[cons.consensus], gold=gold_info, warnings=notes)
    # only the app's own gallery is calibrated: a session gallery's scores have no reference
    threshold = app.no_match if gallery is app.gallery else None
    result.best = {lg: round(float(res.scores[i, 0]), 4) for i, lg in enumerate(langs) if res.positions[i, 0] >= 0}
    result.no_match_threshold = threshold
    result.no_match = [lg for lg, s in result.best.items() if threshold is not None and s < threshold]
    if rr is not None:
        result.rerank = rerank_view.summary(rr, langs, ids, cons.ranks, rows, k, gold_row)
    result.mrv_markdown = _mrv_markdown(result, cons, gallery.count)
    result.detail_markdown = _mrv_markdown(result, cons, gallery.count, heading=False)
    return result


def shown_rank(value: Any) -> float:
    """The rank a table cell shows: the number itself, or after re-ranking the one after "→"."""
    try:
        return float(str(value).split("→")[-1])
    except ValueError:
        return float("nan")


def rank_colour(rank: float, k: int) -> str:
    """A cell's background for a rank: green inside the top k (darker the higher), pale orange
    within 10 k, pale red beyond; the table reads as a heat map of where each image lands."""
    if not np.isfinite(rank):
        return ""
    if rank <= k:
        shade = 0.55 + 0.35 * (rank - 1) / max(k - 1, 1)  # lightness: 1 darkest, k lightest
        return f"background-color: hsl(140, 55%, {shade * 100:.0f}%)"
    return "background-color: hsl(35, 90%, 85%)" if rank <= 10 * k else "background-color: hsl(0, 70%, 90%)"


def heat_table(res: SearchResult):
    """The rank table as the page shows it (a pandas Styler): the image, its role, its rank in
    every language coloured by ``rank_colour``, mean rank and std. Why fewer columns than
    ``res.table``: "top-k in" is what the colours say, and the variance is the std squared;
    both stay in the JSON, and the table fits the page for ten languages."""
    if not len(res.table):
        return res.table
    k = max((len(rows) for rows in res.pane_rows.values()), default=1)
    ranks = [f"rank {lg}" for lg in res.languages]
    shown = res.table[["image", "role", *ranks, "mean rank", "std"]]
    return (shown.style.map(lambda v: rank_colour(shown_rank(v), k), subset=ranks)
            .format({"mean rank": lambda v: v if isinstance(v, str) else f"{v:.2f}",
                     "std": lambda v: v if isinstance(v, str) else f"{v:.3f}"}).hide(axis="index"))


def rank_list(ranks: Mapping[str, int]) -> str:
    return " · ".join(f"{lang} **{r}**" for lang, r in ranks.items())


def no_match_line(res: SearchResult) -> str:
    """The "no good match" line of a result ("" when every language's best score is above the
    model's calibrated threshold, or there is none)."""
    if not res.no_match:
        return ""
    scores = ", ".join(f"{lg} {res.best[lg]:.3f}" for lg in res.no_match)
    return (f"⚠ **No good match** in {', '.join(res.no_match)}: best score {scores}, below "
            f"{res.no_match_threshold:.3f}, which 95% of the test set's typed queries that match an image beat "
            "(their best true score): nothing in the gallery fits this query well, so its ranks order poor matches.")


def _mrv_markdown(res: SearchResult, cons: metrics.RankConsistency, n_images: int, heading: bool = True) -> str:
    """The consistency panel; ``heading``: with the "Query MRV" heading and its explanation
    (left out where the MRV is already shown large, in the side-by-side view)."""
    warning = no_match_line(res)
    if res.rerank is not None:
        text = rerank_view.mrv_markdown(res.languages, res.mrv, res.mrv_var, res.consensus, res.gold, res.rerank,
                                        cons, n_images)
        return text + (f"\n\n{warning}" if warning else "")
    langs = res.languages
    row = res.table.set_index("image").loc[res.consensus]
    cons_ranks = {lg: int(row[f"rank {lg}"]) for lg in langs}
    lines = [warning, ""] if warning else []
    if heading and res.mrv is None:
        lines.append("### Query MRV: needs two or more languages")
        lines.append("MRV is the spread of an image's rank across languages; type the query in another language too.")
    elif heading:
        lines.append(f"### Query MRV: {res.mrv:.3f}")
        lines.append(f"std of the consensus image's ranks across the {len(langs)} languages "
                     f"(variance {res.mrv_var:.3f}); 0 = every language ranks it the same. "
                     f"Ranks are over all {n_images} gallery images, 1 = top.")
    lines.append("")
    lines.append(f"◆ Consensus image **{res.consensus}** (lowest mean rank, {row['mean rank']:.2f}): "
                 + rank_list(cons_ranks))
    if res.gold:
        g = res.gold
        mrv = f"gold MRV **{g['mrv']:.3f}** (variance {g['mrv_var']:.3f})" if len(langs) > 1 else "one language: no MRV"
        lines.append("")
        lines.append(f"★ Gold image **{g['image_id']}**: " + rank_list(g["ranks"])
                     + (f" — {mrv}, the per-instance quantity the paper's MRV averages." if heading else ""))
    overlap = cons.overlap[~np.eye(len(langs), dtype=bool)]
    if overlap.size:
        lines.append("")
        lines.append(f"Mean pairwise top-{cons.k} overlap between languages: {overlap.mean():.2f}")
    return "\n".join(lines).strip()


# --------------------------------------------------------------------------- gold mode


def check_instance(app: AppState, index: Any) -> int | None:
    """A test instance number as every endpoint takes it: None ("" or None, or -1) to draw one,
    else its number; ValueError naming the input for anything else (-5, 2.5, a number past the
    test set, text): refused, never taken as "random". Without a test set there is nothing to
    check (None): gold mode then says it needs one."""
    if index is None or index == "" or app.instances is None:
        return None
    n = len(app.instances)
    index = whole_number(index, -1, n - 1, "instance", f"-1 = random; the test set has {n}")
    return None if index == -1 else index


@dataclass
class Instance:
    texts: dict[str, str]
    gold: dict | None
    message: str


def random_instance(app: AppState, languages: Sequence[str], index: Any = None, seed: int | None = None) -> Instance:
    """Draw a parallel test instance (or take ``index``; None, "" or -1 draws; any other number
    outside the test set is refused, as every endpoint refuses it): its first caption in each
    chosen language (the paper's parallel query) and the gold image to mark."""
    app.wait_loaded()  # which instances are eligible depends on the gallery
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
        index = check_instance(app, index)
    except ValueError as e:
        return Instance({}, None, str(e))
    if index is None:
        index = random.Random(seed).choice(eligible)
    elif index not in eligible:
        return Instance({}, None, f"instance {index} ({inst.image_ids[index]}) is not in the gallery")
    texts = {lang: inst.captions[lang][index][0] for lang in langs if lang in inst.captions}
    missing = [lang for lang in langs if lang not in inst.captions]
    notes = [f"Test instance {index} of {len(inst)}: gold image **{inst.image_ids[index]}**."]
    if missing:
        notes.append(f"The test set has no captions in {', '.join(missing)}: those boxes were cleared.")
    gold = {"image_id": inst.image_ids[index], "index": index, "captions": dict(texts)}
    return Instance({**{lang: "" for lang in missing}, **texts}, gold, " ".join(notes))

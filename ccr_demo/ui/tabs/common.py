"""What several tabs share: language names and example queries, the per-session states, and the
small helpers that turn a callbacks result into component updates."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ccr_demo import LANGUAGES
from ccr_demo.ui import callbacks as cb
from ccr_demo.ui import serving
from ccr_demo.ui.examples import LANGUAGE_NAMES

EXAMPLES = {"en": "a red circle", "de": "ein roter Kreis", "fr": "un cercle rouge", "cs": "červený kruh",
            "zh": "红色的圆", "ja": "赤い丸", "id": "lingkaran merah", "es": "un círculo rojo",
            "ru": "красный круг", "tr": "kırmızı bir daire"}
DEFAULT_GALLERY, MY_GALLERY = "default gallery", "my gallery"

__all__ = ["LANGUAGE_NAMES", "EXAMPLES", "DEFAULT_GALLERY", "MY_GALLERY", "Session", "pane_label", "warn",
           "search_outputs"]


@dataclass
class Session:
    """Per-session values (gr.State), shared by the tabs' events."""

    gallery: gr.State  # this session's own Gallery (never the shared one); dropped after the TTL
    gold: gr.State  # the drawn test instance: image id + its captions
    rows: gr.State  # gallery rows behind each pane, for click -> image-to-text


def pane_label(lang: str, query: str | None = None, reranked: int | None = None, poor: str = "") -> str:
    """A result row's label: the language, the whole query (a row has the page's width), and
    ``poor`` ("no good match ...") when the row's best score is below the model's threshold."""
    base = f"{lang} · {LANGUAGE_NAMES[lang]}"
    if query is None:
        return base + " — no query"
    return (f"{base} — “{query}”" + (f" · re-ranked top {reranked}" if reranked else "")
            + (f" · ⚠ {poor}" if poor else ""))


def warn(notes) -> None:
    """Pop-up for problems with the input (the status Markdown keeps the full text)."""
    for note in notes[:3]:
        gr.Warning(note.replace("**", ""))


def search_outputs(res: cb.SearchResult, selected: list[str], mine: bool = False, comparing: bool = False) -> list:
    """SearchResult -> values for the search outputs (status, MRV, rank heat-table, overlap, JSON,
    the rows behind the panes and which gallery they index, 10 panes). ``comparing``: the MRV is
    shown large in the side-by-side view, so the detail view leaves its heading out."""
    # gr.update dicts, not component instances: building 11 components costs ~60 ms per request
    reranked = res.rerank["k"] if res.rerank else None
    k = max((len(rows) for rows in res.pane_rows.values()), default=5) or 5

    def poor(lang: str) -> str:
        if lang not in res.no_match:
            return ""
        return f"no good match: best score {res.best[lang]:.3f} < {res.no_match_threshold:.3f}"

    panes = [gr.update(value=serving.serve_pairs(res.panes.get(lang, [])), visible=lang in selected, columns=k,
                       label=pane_label(lang, res.queries.get(lang), reranked, poor(lang))) for lang in LANGUAGES]
    mrv = res.detail_markdown if comparing and res.ok else res.mrv_markdown
    return [res.message, mrv, cb.heat_table(res), res.overlap, res.summary(),
            {"rows": res.pane_rows, "mine": mine}, *panes]

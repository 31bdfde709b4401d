"""What several tabs share: language names and example queries, the per-session states, and the
small helpers that turn a callbacks result into component updates."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ccr_demo import LANGUAGES
from ccr_demo.ui import callbacks as cb
from ccr_demo.ui import serving

LANGUAGE_NAMES = {"en": "English", "de": "Deutsch", "fr": "Français", "cs": "Čeština", "zh": "中文", "ja": "日本語",
                  "id": "Bahasa Indonesia", "es": "Español", "ru": "Русский", "tr": "Türkçe"}
EXAMPLES = {"en": "a red circle", "de": "ein roter Kreis", "fr": "un cercle rouge", "cs": "červený kruh",
            "zh": "红色的圆", "ja": "赤い丸", "id": "lingkaran merah", "es": "un círculo rojo",
            "ru": "красный круг", "tr": "kırmızı bir daire"}
DEFAULT_GALLERY, MY_GALLERY = "default gallery", "my gallery"


@dataclass
class Session:
    """Per-session values (gr.State), shared by the tabs' events."""

    gallery: gr.State  # this session's own Gallery (never the shared one); dropped after the TTL
    gold: gr.State  # the drawn test instance: image id + its captions
    rows: gr.State  # gallery rows behind each pane, for click -> image-to-text


def pane_label(lang: str, query: str | None = None, reranked: int | None = None) -> str:
    base = f"{lang} · {LANGUAGE_NAMES[lang]}"
    if query is None:
        return base + " — no query"
    return (f"{base} — “{query if len(query) <= 40 else query[:39] + '…'}”"
            + (f" · re-ranked top {reranked}" if reranked else ""))


def warn(notes) -> None:
    """Pop-up for problems with the input (the status Markdown keeps the full text)."""
    for note in notes[:3]:
        gr.Warning(note.replace("**", ""))


def search_outputs(res: cb.SearchResult, selected: list[str], mine: bool = False) -> list:
    """SearchResult -> values for the search outputs (status, MRV, table, overlap, plot, JSON, the
    rows behind the panes and which gallery they index, 10 panes)."""
    # gr.update dicts, not component instances: building 11 components costs ~60 ms per request
    reranked = res.rerank["k"] if res.rerank else None
    panes = [gr.update(value=serving.serve_pairs(res.panes.get(lang, [])), visible=lang in selected,
                       label=pane_label(lang, res.queries.get(lang), reranked)) for lang in LANGUAGES]
    plot = gr.update(value=res.plot, sort=res.languages or None)
    return [res.message, res.mrv_markdown, res.table, res.overlap, plot, res.summary(),
            {"rows": res.pane_rows, "mine": mine}, *panes]

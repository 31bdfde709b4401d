"""Clickable example queries: short, typed-style queries, the same query in all ten languages.

Why generated, not hand-typed: the shapes world's grammars word one assertion in every
language in parallel (``ccr_demo.data.queries``), so each row is a faithful translation set
and uses the phrasings people type (bare phrases, questions, requests).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ccr_demo import LANGUAGES
from ccr_demo.data.languages import describe_query
from ccr_demo.data.queries import to_query

# Each language's own name, shown beside its code wherever a language labels a box or a row.
LANGUAGE_NAMES = {"en": "English", "de": "Deutsch", "fr": "Français", "cs": "Čeština", "zh": "中文", "ja": "日本語",
                  "id": "Bahasa Indonesia", "es": "Español", "ru": "Русский", "tr": "Türkçe"}

# (assertion, phrasing form): colour + shape, a question, a count, size, a position, the
# background alone, an object on a background.
EXAMPLE_QUERIES = (
    ({"shape": "star", "colour": "red"}, "phrase"),
    ({"shape": "heart", "colour": "purple"}, "question"),
    ({"shape": "circle", "colour": "blue", "count": 2}, "request"),
    ({"shape": "triangle", "colour": "yellow", "size": "large"}, "phrase"),
    ({"shape": "cross", "colour": "green", "position": "left"}, "sentence"),
    ({"background": "striped"}, "request"),
    ({"shape": "diamond", "colour": "orange", "background": "black"}, "question"),
)


def example_rows(languages: Sequence[str] = LANGUAGES, seed: int = 0) -> list[list[str]]:
    """One row per example query: its wording in each of ``languages`` (fixed by ``seed``)."""
    rows = []
    for n, (asserts, form) in enumerate(EXAMPLE_QUERIES):
        query = to_query(asserts, form)
        rows.append([describe_query(query, lang, np.random.default_rng([seed, n, LANGUAGES.index(lang)]))
                     for lang in languages])
    return rows

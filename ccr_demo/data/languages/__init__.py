"""Caption grammars for the shapes world, one module per language.

Each module holds its vocabulary as tables and one ``describe(plan, choose)``; this package
turns a scene into a language-independent :class:`~.common.Plan` and dispatches.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import numpy as np

from ccr_demo import LANGUAGES

from .common import FORMS, Choices, Item, Plan, Query, plan_from_scene

# Module per language code (imported by name: "id" would shadow the builtin).
GRAMMARS = {lang: importlib.import_module(f"{__name__}.{lang}") for lang in LANGUAGES}

__all__ = ["FORMS", "GRAMMARS", "Choices", "Item", "Plan", "Query", "describe_query", "describe_scene",
           "plan_from_scene"]


Choice = np.random.Generator | Mapping[str, int] | int | Choices | None


def _grammar(lang: str):
    if lang not in GRAMMARS:
        raise ValueError(f"no grammar for language {lang!r}; have {sorted(GRAMMARS)}")
    return GRAMMARS[lang]


def _choices(grammar, choice: Choice, query_test: bool = False) -> Choices:
    if isinstance(choice, Choices):
        return choice
    held_out = getattr(grammar, "HELD_OUT", {})
    if isinstance(choice, np.random.Generator):
        return Choices(rng=choice, held_out=held_out, query_test=query_test)
    if isinstance(choice, int):
        return Choices(fixed={"template": choice})
    return Choices(fixed=choice)


def describe_scene(scene, lang: str, choice: Choice = None, group_identical: bool = False) -> str:
    """One caption of ``scene`` in ``lang``.

    ``choice``: a numpy Generator (random template and synonyms, never the held-out ones),
    a mapping of slot name to option index (e.g. ``{"template": 2, "shape:circle": 1}``;
    other slots take option 0), an int (shorthand for ``{"template": n}``), a
    :class:`Choices`, or None (all option 0).
    """
    grammar = _grammar(lang)
    return grammar.describe(plan_from_scene(scene, group_identical), _choices(grammar, choice))


def describe_query(query: Query, lang: str, choice: Choice = None, query_test: bool = False) -> str:
    """A typed query (a partial caption) in ``lang``; ``choice`` as for :func:`describe_scene`.

    ``query_test``: draw the held-out phrasings and synonyms too (the typed-query test split).
    """
    grammar = _grammar(lang)
    return grammar.query(query, _choices(grammar, choice, query_test))

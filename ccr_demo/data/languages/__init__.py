"""Caption grammars for the shapes world, one module per language.

Each module holds its vocabulary as tables and one ``describe(plan, choose)``; this package
turns a scene into a language-independent :class:`~.common.Plan` and dispatches.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import numpy as np

from ccr_demo import LANGUAGES

from .common import Choices, Item, Plan, plan_from_scene

# Module per language code (imported by name: "id" would shadow the builtin).
GRAMMARS = {lang: importlib.import_module(f"{__name__}.{lang}") for lang in LANGUAGES}

__all__ = ["GRAMMARS", "Choices", "Item", "Plan", "describe_scene", "plan_from_scene"]


def describe_scene(scene, lang: str, choice: np.random.Generator | Mapping[str, int] | int | Choices | None = None) -> str:
    """One caption of ``scene`` in ``lang``.

    ``choice``: a numpy Generator (random template and synonyms), a mapping of slot name
    to option index (e.g. ``{"template": 2, "shape:circle": 1}``; other slots take option 0),
    an int (shorthand for ``{"template": n}``), a :class:`Choices`, or None (all option 0).
    """
    if lang not in GRAMMARS:
        raise ValueError(f"no grammar for language {lang!r}; have {sorted(GRAMMARS)}")
    if isinstance(choice, Choices):
        choose = choice
    elif isinstance(choice, np.random.Generator):
        choose = Choices(rng=choice)
    elif isinstance(choice, int):
        choose = Choices(fixed={"template": choice})
    else:
        choose = Choices(fixed=choice)
    return GRAMMARS[lang].describe(plan_from_scene(scene), choose)

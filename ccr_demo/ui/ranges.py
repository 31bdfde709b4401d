"""The one check of the whole numbers a request names: top k, re-rank depth, test instance,
number of instances.

Why one place: each endpoint used to treat its numbers its own way (``/compare_gold`` clamped
k = 0 to 1 and took instance -5 as "random" where ``/search`` and ``/gold`` refused them,
``/search`` took k = 1.5 as 1). A value the user did not ask for changes results silently, so
every endpoint and callback now refuses the same values with the same message, naming the
input, what it got and what it takes. No Gradio here: the callbacks use it as plain Python,
``inputs`` turns its ValueError into the API's error.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any


def shown_value(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: a message must not echo a megabyte of input."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def shown_text(text: str, limit: int = 80) -> str:
    """A setting or path as a message shows it: as it is when printable, else its repr (a NUL
    byte made visible), cut to ``limit`` characters."""
    text = text if text.isprintable() else repr(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def bounds_text(lo: float | None, hi: float | None, what: str = "a whole number") -> str:
    """'a whole number from 1 to 20' (or '>= 1', '<= 20', or no bound)."""
    if lo is not None and hi is not None:
        return f"{what} from {lo:g} to {hi:g}"
    if lo is not None:
        return f"{what} >= {lo:g}"
    return f"{what} <= {hi:g}" if hi is not None else what


def whole_number(value: Any, lo: int | None, hi: int | None, what: str, hint: str = "") -> int:
    """``value`` as an int if it is a whole number in [lo, hi] (None: unbounded): an int, or a
    float without a fractional part (JSON sends 5.0 for 5). ValueError naming ``what`` for
    anything else: text, None, a bool, NaN, inf, 1.5, or a number out of range, which is refused,
    never clamped. ``hint`` is appended to the message (e.g. "-1 = random")."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value) \
        and float(value).is_integer() and (lo is None or value >= lo) and (hi is None or value <= hi)
    if not ok:
        raise ValueError(f"{what}: got {shown_value(value)}; expected {bounds_text(lo, hi)}"
                         + (f" ({hint})" if hint else ""))
    return int(value)

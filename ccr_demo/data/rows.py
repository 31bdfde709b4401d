"""TODO docstring."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
from pathlib import Path
from typing import Any, Iterator, Sequence

from ccr_demo import LANGUAGES
from ccr_demo.data.errors import DataFormatError, _at, _BadRows

log = logging.getLogger(__name__)


# Language codes of the paper, xFlickr&CO and WIT: tells a {lang: info} "noise" mapping
# from a per-row info mapping.
_KNOWN_LANGUAGES = frozenset(LANGUAGES) | {"ar", "bg", "da", "el", "et", "ko", "vi"}


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building millions of small objects (it would rescan them all, 2-3x slower)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _jsonl(path: Path, bad: _BadRows) -> Iterator[tuple[int, int, dict]]:
    """Yield (line number, byte offset, object) for each non-blank line of a JSONL file."""
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    rows = 0
    offset = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            rows += 1
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as e:
                bad(_at(path, lineno), f"malformed JSON at column {e.colno}: {e.msg}")
                continue
            except ValueError as e:  # undecodable bytes
                bad(_at(path, lineno), f"malformed JSON: {e}")
                continue
            if not isinstance(obj, dict):
                bad(_at(path, lineno), f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield lineno, start, obj
    if rows == 0:
        bad(str(path), "file is empty")


def _norm_id(value: Any) -> str | None:
    """Ids are ints in COCO rows and strings in Flickr rows: compare them as strings."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        return None
    return str(value)


def _require(obj: dict, keys: Sequence[str]) -> str | None:
    missing = [k for k in keys if k not in obj]
    return f"missing required key {missing[0]!r} (has {sorted(obj)})" if missing else None

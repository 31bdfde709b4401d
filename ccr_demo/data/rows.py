"""Row-level helpers shared by the dataset readers: JSONL lines, ids and required keys.

``read_jsonl`` walks a JSON-lines file and reports each malformed line to a `BadRows`
(raised, or counted with ``skip_bad``) with the file and line; ``norm_id`` makes COCO's
int ids and Flickr's string ids comparable; ``missing_key_problem`` names the first
required key a row lacks; ``gc_paused`` speeds up reading millions of rows.
"""

from __future__ import annotations

import contextlib
import gc
import json
from pathlib import Path
from typing import Any, Iterator, Sequence

from ccr_demo.data.errors import BadRows, DataFormatError, where_in_file


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building millions of small objects (it would rescan them all, 2-3x slower)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_jsonl(path: Path, bad: BadRows) -> Iterator[tuple[int, int, dict]]:
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
                bad(where_in_file(path, lineno), f"malformed JSON at column {e.colno}: {e.msg}")
                continue
            except ValueError as e:  # undecodable bytes
                bad(where_in_file(path, lineno), f"malformed JSON: {e}")
                continue
            if not isinstance(obj, dict):
                bad(where_in_file(path, lineno), f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield lineno, start, obj
    if rows == 0:
        bad(str(path), "file is empty")


def norm_id(value: Any) -> str | None:
    """Ids are ints in COCO rows and strings in Flickr rows: compare them as strings."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        return None
    return str(value)


def missing_key_problem(obj: dict, keys: Sequence[str]) -> str | None:
    """Why ``obj`` cannot be used (the first of ``keys`` it lacks, and the keys it has), or None."""
    missing = [k for k in keys if k not in obj]
    return f"missing required key {missing[0]!r} (has {sorted(obj)})" if missing else None


def is_caption_list(value: Any) -> bool:
    """A non-empty list of strings: what the retrieval formats' caption fields hold."""
    return isinstance(value, list) and bool(value) and all(isinstance(c, str) for c in value)


def retrieval_row_problem(row_id: str | None, image: Any, captions_ok: bool, raw_id: Any,
                          keys: tuple[str, str, str], captions_rule: str) -> str | None:
    """Why a retrieval row's (id, image path, captions) cannot be used, or None. ``row_id`` is the
    id after ``norm_id`` (``raw_id`` as written), ``keys`` the format's names for the three
    fields, ``captions_rule`` what its caption field must be."""
    id_key, image_key, captions_key = keys
    if row_id is None:
        return f"{id_key!r} must be a non-empty string or an int, got {raw_id!r}"
    if not isinstance(image, str) or not image:
        return f"{image_key!r} must be a non-empty string"
    if not captions_ok:
        return f"{captions_key!r} must be {captions_rule}"
    return None


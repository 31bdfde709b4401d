"""CCRK/CCLM retrieval JSON (Multi30K, MSCOCO): one JSON list per file.

Train form: a list of ``{"caption", "image", "image_id"}`` (one caption an item); val/test
form: a list of ``{"image", "caption": [...], "image_id"}``. Both are read into one entry per
image with all its captions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ccr_demo.data.errors import BadRows, DataFormatError, where_in_file
from ccr_demo.data.rows import is_caption_list, missing_key_problem, norm_id, retrieval_row_problem


@dataclass(slots=True)
class RetrievalEntry:
    """One image of a CCRK retrieval JSON with all its captions (train rows grouped by image_id)."""

    image_id: str
    image: str
    captions: list[str]
    file: str
    item: int  # index of the (first) list item for this image


def read_ccrk_json(path: str | Path, *, skip_bad: bool = False) -> list[RetrievalEntry]:
    """Read a CCRK/CCLM retrieval JSON (Multi30K, MSCOCO) in either train or val/test form."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise DataFormatError(f"{path}: file is empty")
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{where_in_file(path, e.lineno)}: malformed JSON at column {e.colno}: {e.msg}") from None
    if not isinstance(items, list) or not items:
        raise DataFormatError(f"{path}: expected a non-empty JSON list of objects")
    bad = BadRows(skip_bad, str(path))
    entries: dict[str, RetrievalEntry] = {}
    for i, obj in enumerate(items):
        at = where_in_file(path, item=i)
        if not isinstance(obj, dict):
            bad(at, f"expected an object, got {type(obj).__name__}")
            continue
        problem = missing_key_problem(obj, ["image", "caption", "image_id"])
        if problem:
            bad(at, problem)
            continue
        iid, image, cap = norm_id(obj["image_id"]), obj["image"], obj["caption"]
        caps = [cap] if isinstance(cap, str) else cap
        problem = retrieval_row_problem(iid, image, is_caption_list(caps), obj["image_id"],
                                        ("image_id", "image", "caption"), "a string or a non-empty list of strings")
        if problem:
            bad(at, problem)
        elif iid in entries:
            if entries[iid].image != image:
                first = entries[iid]
                bad(at, f"image_id {iid!r} has image {image!r} here but {first.image!r} at item {first.item}")
            else:
                entries[iid].captions.extend(caps)
        else:
            entries[iid] = RetrievalEntry(iid, image, list(caps), str(path), i)
    bad.finish()
    if not entries:
        raise DataFormatError(f"{path}: no usable items")
    return list(entries.values())

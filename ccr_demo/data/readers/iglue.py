"""IGLUE retrieval JSONL (xFlickr&CO ``annotations/{lang}/test.jsonl``, Flickr30K ``train_ann.jsonl``).

Rows are ``{"id", "img_path", "sentences"}``; ids are ints (COCO) or strings (Flickr) and
are normalised to str. Optional ``"scene"`` and ``"noise"`` keys are kept.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccr_demo.data.errors import BadRows, DataFormatError, DataFormatWarning, where_in_file
from ccr_demo.data.rows import is_caption_list, missing_key_problem, norm_id, read_jsonl, retrieval_row_problem


@dataclass(slots=True)
class IglueRow:
    id: str
    img_path: str
    sentences: list[str]
    file: str
    line: int
    scene: Any = None
    noise: Any = None


def read_iglue_jsonl(path: str | Path, *, skip_bad: bool = False) -> list[IglueRow]:
    """Read an IGLUE retrieval file (xFlickr&CO test.jsonl, Flickr30K train_ann.jsonl).

    Empty caption strings are kept (the real de and id files each have one) so the set
    stays parallel; they are counted in one warning.
    """
    path = Path(path)
    bad = BadRows(skip_bad, str(path))
    rows: list[IglueRow] = []
    seen: dict[str, int] = {}
    empty: list[int] = []
    for lineno, _, row in read_jsonl(path, bad):
        at = where_in_file(path, lineno)
        problem = missing_key_problem(row, ["id", "img_path", "sentences"])
        if problem:
            bad(at, problem)
            continue
        rid, img, sents = norm_id(row["id"]), row["img_path"], row["sentences"]
        problem = retrieval_row_problem(rid, img, is_caption_list(sents), row["id"], ("id", "img_path", "sentences"),
                                        "a non-empty list of strings")
        if problem:
            bad(at, problem)
        elif rid in seen:
            bad(at, f"duplicate id {rid!r} (first on line {seen[rid]})")
        else:
            seen[rid] = lineno
            if not all(s.strip() for s in sents):
                empty.append(lineno)
            rows.append(IglueRow(rid, img, sents, str(path), lineno, row.get("scene"), row.get("noise")))
    bad.finish()
    if empty:
        warnings.warn(f"{path}: {len(empty)} row(s) with an empty caption kept (first: line {empty[0]})",
                      DataFormatWarning, stacklevel=2)
    if not rows:
        raise DataFormatError(f"{path}: no usable rows")
    return rows

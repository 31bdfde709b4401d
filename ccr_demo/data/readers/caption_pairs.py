"""A one-language retrieval training file read as (image, caption) records.

Flickr30K/xFlickr&CO JSONL or a CCRK retrieval JSON, flattened the way the official
fine-tuning datasets iterate: an image with 5 captions is 5 records sharing ``image_path``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ccr_demo.data.errors import BadRows, DataFormatError, path_problem, where_in_file
from ccr_demo.data.readers.ccrk_json import read_ccrk_json
from ccr_demo.data.readers.ccrk_pretrain import PretrainRecord
from ccr_demo.data.readers.iglue import read_iglue_jsonl

CAPTION_PAIR_FORMATS = ("iglue", "ccrk_json")


def read_caption_pairs(path: str | Path, language: str, fmt: str, *, image_root: str | Path | None = None,
                       check_images: bool = False, skip_bad: bool = False,
                       allow_outside_root: bool = False) -> list[PretrainRecord]:
    """A one-language retrieval training file as one record per (image, caption), the way the
    official fine-tuning datasets iterate (CCRK ``xflickrco_train_dataset``, X-VLM
    ``re_train_dataset``): an image with 5 captions is 5 items.

    ``fmt``: ``"iglue"`` (Flickr30K / xFlickr&CO ``train_ann.jsonl``-style JSONL rows
    ``{"id", "img_path", "sentences"}``) or ``"ccrk_json"`` (a CCRK retrieval JSON list, train
    form ``{"caption", "image", "image_id"}`` or val/test form with a caption list). Each record
    has ``captions == {language: caption}``; ``image_path`` resolves against ``image_root``
    (default: the file's folder) and must stay inside it unless ``allow_outside_root``. Records
    of one image share ``image_path``, which is how a batch tells same-image captions apart.
    """
    path = Path(path)
    if fmt not in CAPTION_PAIR_FORMATS:
        raise ValueError(f"format must be one of {CAPTION_PAIR_FORMATS}, got {fmt!r}")
    root = Path(image_root) if image_root is not None else path.parent
    if fmt == "iglue":
        rows = [(r.img_path, r.sentences, str(r.file), r.line) for r in read_iglue_jsonl(path, skip_bad=skip_bad)]
    else:
        rows = [(e.image, e.captions, f"{e.file}, item {e.item}", None)
                for e in read_ccrk_json(path, skip_bad=skip_bad)]
    bad = BadRows(skip_bad, str(path))
    records: list[PretrainRecord] = []
    for image, captions, file, line in rows:
        at = where_in_file(file, line)
        problem = None if allow_outside_root else path_problem(image, root)
        if problem:
            bad(at, problem)
            continue
        full = os.path.join(root, image)
        if check_images and not os.path.isfile(full):
            bad(at, f"image file not found: {full}")
            continue
        records.extend(PretrainRecord(captions={language: c}, file=file, line=line, image_path=full)
                       for c in captions if c.strip())
    bad.finish()
    if not records:
        raise DataFormatError(f"{path}: no usable (image, caption) pairs")
    return records

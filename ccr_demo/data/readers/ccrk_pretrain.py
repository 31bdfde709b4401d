"""CCRK pretraining data: a folder of ``part_*.data`` files, one JSON object a line.

A row is ``{"caption": {"en": ..., "de": ...}, "image_path": "..."}``; a relative path
resolves against the part file's folder (or ``image_root``) and must stay inside it. Instead
of a path a row may carry its image as base64 in ``"image"`` (CCRK's ``images.image_key``),
``"binary"`` (CCLM's key for region and monolingual data) or ``"image_base64"``; such images
stay on disk (file and byte offset) until a record is loaded. ``"scene"``, ``"noise"`` and
``"variants"`` are kept as they are.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from PIL import Image

from ccr_demo import LANGUAGES
from ccr_demo.data.errors import BadRows, DataFormatError, path_problem, where_in_file
from ccr_demo.data.images import decode_base64, load_image
from ccr_demo.data.rows import gc_paused, missing_key_problem, read_jsonl

PRETRAIN_BASE64_KEYS = ("image", "binary", "image_base64")


@dataclass(slots=True)
class PretrainRecord:
    """One image with its parallel captions. Base64 images stay on disk until loaded."""

    captions: dict[str, str]
    file: str
    line: int
    image_path: str | None = None  # resolved path, or None when the image is base64 in the row
    image_key: str | None = None  # the row's base64 field
    offset: int = 0  # byte offset of the row in `file` (to re-read a base64 image lazily)
    scene: Any = None
    noise: Any = None
    variants: Any = None  # partial captions beside the full one: [{"caption": {lang: text}, ...}]
    twin: Any = None  # {"group", "kind"}: this scene and its twin share the group (ccr_demo.data.twins)
    negatives: Any = None  # caption hard negatives: [{"of": caption index, "caption": {lang: text}, ...}]

    @property
    def where(self) -> str:
        return where_in_file(self.file, self.line)

    def load_image(self, max_pixels: int | None = None) -> Image.Image:
        if self.image_path is not None:
            return load_image(self.image_path, name=f"{self.image_path} (from {self.where})", max_pixels=max_pixels)
        try:
            with open(self.file, "rb") as f:
                f.seek(self.offset)
                data = json.loads(f.readline())[self.image_key]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataFormatError(f"{self.where}: cannot re-read base64 image {self.image_key!r}: {e}") from None
        label = f"{self.where} (base64 {self.image_key!r})"
        return load_image(decode_base64(data, label), name=label, max_pixels=max_pixels)


def pretrain_files(source: str | Path | Iterable[str | Path]) -> list[Path]:
    """The part files of a CCRK pretraining folder (``part_*.data``, in natural order)."""
    if isinstance(source, (str, Path)):
        p = Path(source)
        if p.is_dir():
            files = sorted(p.glob("part_*.data"), key=lambda f: (len(f.name), f.name))
            if not files:
                raise DataFormatError(f"{p}: no part_*.data files in this folder")
            return files
        if not p.is_file():
            raise DataFormatError(f"{p}: no such file or folder")
        return [p]
    return [Path(f) for f in source]


def _check_captions(caption: Any, languages: Sequence[str] | None) -> str | None:
    if not isinstance(caption, dict) or not caption:
        return f"'caption' must be a non-empty object {{language: text}}, got {type(caption).__name__}"
    for lang, text in caption.items():
        if not isinstance(text, str):
            return f"caption[{lang!r}] is {type(text).__name__}, not a string"
    if languages is not None:
        missing = [lang for lang in languages if lang not in caption]
        if missing:
            return f"caption lacks language {missing[0]!r} (has {sorted(caption)}; needs {list(languages)})"
    return None


def read_ccrk_pretrain(source: str | Path | Iterable[str | Path], languages: Sequence[str] | None = None, *,
                       image_root: str | Path | None = None, check_images: bool = False,
                       skip_bad: bool = False, allow_outside_root: bool = False) -> list[PretrainRecord]:
    """Read CCRK pretraining rows from a folder of ``part_*.data`` (or given files).

    ``languages``: every row must have a caption in each (a 1-to-K batch needs all K).
    ``check_images``: fail on rows whose image file does not exist (cheap; no decoding).
    ``allow_outside_root``: accept absolute ``image_path``s and ones that leave the root with
    ``..`` (by default such a row is bad: paths stay inside ``image_root`` / the part's folder).
    """
    files = pretrain_files(source)
    bad = BadRows(skip_bad, str(source) if isinstance(source, (str, Path)) else f"{len(files)} files")
    records: list[PretrainRecord] = []
    for path in files:
        file = str(path)
        root = str(image_root) if image_root is not None else str(path.parent)
        with gc_paused():
            records.extend(pretrain_rows(path, file, root, languages, check_images, bad, allow_outside_root))
    bad.finish()
    if not records:
        raise DataFormatError(f"{source}: no usable rows")
    return records


def pretrain_rows(path: Path, file: str, root: str, languages: Sequence[str] | None, check_images: bool,
                  bad: BadRows, allow_outside_root: bool = False) -> Iterator[PretrainRecord]:
    """Validate one part file's rows into records (see read_ccrk_pretrain); bad rows go to ``bad``.

    ``file`` is the name records carry, ``root`` the folder relative image paths resolve against.
    """
    for lineno, offset, row in read_jsonl(path, bad):
        at = where_in_file(file, lineno)
        if "caption" not in row:
            bad(at, missing_key_problem(row, ["caption"]))
            continue
        problem = _check_captions(row["caption"], languages)
        if problem:
            bad(at, problem)
            continue
        rec = PretrainRecord(captions=row["caption"], file=file, line=lineno, offset=offset,
                             scene=row.get("scene"), noise=row.get("noise"), variants=row.get("variants"),
                             twin=row.get("twin"), negatives=row.get("negatives"))
        if "image_path" in row:
            rel = row["image_path"]
            if not isinstance(rel, str) or not rel:
                bad(at, "'image_path' must be a non-empty string")
                continue
            problem = None if allow_outside_root else path_problem(rel, root)
            if problem:
                bad(at, problem)
                continue
            rec.image_path = os.path.join(root, rel)  # an absolute rel replaces root (allow_outside_root)
            if check_images and not os.path.isfile(rec.image_path):
                bad(at, f"image file not found: {rec.image_path}")
                continue
        else:
            key = next((k for k in PRETRAIN_BASE64_KEYS if k in row), None)
            if key is None:
                bad(at, f"missing image: needs 'image_path' or base64 in one of {list(PRETRAIN_BASE64_KEYS)}")
                continue
            if not isinstance(row[key], str) or not row[key]:
                bad(at, f"base64 image {key!r} must be a non-empty string")
                continue
            rec.image_key = key
        yield rec


def check_languages(records: Sequence[PretrainRecord], languages: Sequence[str], *,
                    skip_bad: bool = False) -> list[PretrainRecord]:
    """Keep records that have every language in `languages` (or fail naming the first that lacks one)."""
    kept = BadRows(skip_bad, f"{len(records)} records").keep(
        records, lambda rec: _check_captions(rec.captions, languages), lambda rec: rec.where)
    if not kept:
        raise DataFormatError(f"no record has all of {list(languages)}")
    return kept


def default_language_order(languages: Iterable[str]) -> list[str]:
    """The paper's K order (ccr_demo.LANGUAGES) for known languages, then the rest sorted."""
    langs = set(languages)
    return [lang for lang in LANGUAGES if lang in langs] + sorted(langs - set(LANGUAGES))

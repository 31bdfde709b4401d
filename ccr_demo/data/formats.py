"""Readers for the real CCR dataset formats, and the parallel test set they feed.

One code path reads both the real datasets and the generated shapes world (which is written
in the same formats). Every reader returns plain records and fails with a `DataFormatError`
that names the file and line, because a bad row in a million-line corpus is otherwise a
needle in a haystack. ``skip_bad=True`` drops bad rows instead and emits one counted warning.

Formats (see PAPER.md "Datasets"; field names checked against CCRK/CCLM/IGLUE code):

* CCRK pretraining: a folder of ``part_*.data``, one JSON object a line,
  ``{"caption": {"en": ..., "de": ...}, "image_path": "..."}``; relative paths resolve against
  the part file's folder (or ``image_root``). Instead of a path a row may carry the image as
  base64 in ``"image"`` (CCRK's ``images.image_key``), ``"binary"`` (CCLM's key for region and
  monolingual data) or ``"image_base64"``. Extra keys ``"scene"`` and ``"noise"`` are kept.
* IGLUE xFlickr&CO: ``annotations/{lang}/test.jsonl``, rows ``{"id", "img_path",
  "sentences"}``; ids are ints (COCO) or strings (Flickr) and are normalised to str.
* IGLUE WIT: ``test_{lang}.jsonl`` rows with ``image_url`` and
  ``caption_reference_description``; images as base64 in CSV/TSV files (``url<TAB>base64``
  a line), or merged into the row as ``"image_content"`` (CCLM's wit_preproc).
* CCRK retrieval JSON (Multi30K, MSCOCO): train = list of ``{"caption", "image", "image_id"}``,
  val/test = list of ``{"image", "caption": [...], "image_id"}``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gc
import io
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ccr_demo import LANGUAGES

log = logging.getLogger(__name__)

PRETRAIN_BASE64_KEYS = ("image", "binary", "image_base64")
WIT_BASE64_KEY = "image_content"
_EXIF_ORIENTATION = 0x0112
# Language codes of the paper, xFlickr&CO and WIT: tells a {lang: info} "noise" mapping
# from a per-row info mapping.
_KNOWN_LANGUAGES = frozenset(LANGUAGES) | {"ar", "bg", "da", "el", "et", "ko", "vi"}


class DataFormatError(ValueError):
    """A data file is malformed; the message names the file (and line) to fix."""


class DataFormatWarning(UserWarning):
    """Rows were skipped or kept with a caveat (empty captions, non-parallel ids)."""


def _at(file: str | Path, line: int | None = None, item: int | None = None) -> str:
    if line is not None:
        return f"{file}, line {line}"
    if item is not None:
        return f"{file}, item {item}"
    return str(file)


class _BadRows:
    """Raise on the first bad row, or (skip_bad) count them and warn once at the end."""

    def __init__(self, skip_bad: bool, where: str):
        self.skip_bad = skip_bad
        self.where = where
        self.count = 0
        self.first: str | None = None

    def __call__(self, at: str, message: str) -> None:
        text = f"{at}: {message}"
        if not self.skip_bad:
            raise DataFormatError(text)
        self.count += 1
        if self.first is None:
            self.first = text

    def finish(self, stacklevel: int = 3) -> None:
        if self.count:
            warnings.warn(f"skipped {self.count} bad row{'s' if self.count > 1 else ''} in {self.where} "
                          f"(first: {self.first})", DataFormatWarning, stacklevel=stacklevel)

    def keep(self, items: Iterable, problem_of: Callable[[Any], str | None], where_of: Callable[[Any], str]) -> list:
        """The items without a problem; each other one is a bad row (raised, or counted and warned)."""
        kept = []
        for item in items:
            problem = problem_of(item)
            if problem:
                self(where_of(item), problem)
            else:
                kept.append(item)
        self.finish(stacklevel=4)
        return kept


def _path_problem(rel: str, root: str | Path) -> str | None:
    """Why a row's image path may not be used under the dataset root ``root``, or None.

    A row's path (relative to the root, or absolute) must name a file inside the root: one that
    climbs out with ``..`` or points elsewhere on the machine would let a dataset file aim the
    reader (and whatever serves its images) at any file. The check is on the path's text; a
    symlink placed inside the root by whoever laid the dataset out is followed. Readers take
    ``allow_outside_root=True`` to trust a file that does this on purpose.
    """
    base = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(os.path.join(base, rel))
    if full == base or os.path.commonpath([full, base]) != base:
        return (f"image path {rel!r} is outside the dataset root {root} "
                "(allow_outside_root=True trusts this file)")
    return None


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


# --------------------------------------------------------------------------- images


def _decode_base64(text: Any, at: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise DataFormatError(f"{at}: base64 image is not a non-empty string")
    if text.startswith("data:"):  # data URL: "data:image/png;base64,...."
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError) as e:
        raise DataFormatError(f"{at}: invalid base64 image ({e})") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB without the usual surprises.

    Alpha is composited on white (a plain convert turns transparent pixels black), and
    16/32-bit grey is rescaled (a plain convert clips it to white).
    """
    if im.mode == "RGB":
        return im
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im, dtype=np.float32)
        peak = float(a.max()) if a.size else 0.0
        if im.mode.startswith("I;16") or (im.mode == "I" and peak > 255):
            a = a / 257.0
        elif im.mode == "F" and peak <= 1.0:
            a = a * 255.0
        im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return im.convert("RGB")


def load_image(source: str | Path | bytes | bytearray | memoryview, *, name: str | None = None,
               max_pixels: int | None = None) -> Image.Image:
    """Open a path or encoded bytes as an RGB image, or raise DataFormatError naming it.

    ``max_pixels`` guards against decompression bombs (default: ``Image.MAX_IMAGE_PIXELS``;
    Pillow's own limit still applies, the smaller wins). Truncated files are errors unless
    the caller has set ``ImageFile.LOAD_TRUNCATED_IMAGES``.
    """
    is_path = isinstance(source, (str, Path))
    label = name or (str(source) if is_path else "image bytes")
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        fp = source if is_path else io.BytesIO(bytes(source))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            im = Image.open(fp)
        w, h = im.size
        if limit is not None and w * h > limit:
            raise DataFormatError(
                f"{label}: image is {w}x{h} = {w * h} pixels, over the limit of {limit} "
                "(decompression-bomb guard; raise max_pixels if the file is trusted)")
        im.load()
        if im.getexif().get(_EXIF_ORIENTATION, 1) != 1:  # camera photos stored rotated
            im = ImageOps.exif_transpose(im)
        return to_rgb(im)
    except DataFormatError:
        raise
    except FileNotFoundError:
        raise DataFormatError(f"{label}: image file not found") from None
    except Image.DecompressionBombError as e:
        raise DataFormatError(f"{label}: decompression-bomb guard: {e}") from None
    except UnidentifiedImageError:
        raise DataFormatError(f"{label}: not an image file (Pillow cannot identify it)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        hint = "" if ImageFile.LOAD_TRUNCATED_IMAGES else " (truncated or corrupt)"
        raise DataFormatError(f"{label}: cannot decode image{hint}: {e}") from None


# --------------------------------------------------------------------------- CCRK pretraining


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

    @property
    def where(self) -> str:
        return _at(self.file, self.line)

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
        return load_image(_decode_base64(data, label), name=label, max_pixels=max_pixels)


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
    bad = _BadRows(skip_bad, str(source) if isinstance(source, (str, Path)) else f"{len(files)} files")
    records: list[PretrainRecord] = []
    for path in files:
        file = str(path)
        root = str(image_root) if image_root is not None else str(path.parent)
        with _gc_paused():
            records.extend(_pretrain_rows(path, file, root, languages, check_images, bad, allow_outside_root))
    bad.finish()
    if not records:
        raise DataFormatError(f"{source}: no usable rows")
    return records


def _pretrain_rows(path: Path, file: str, root: str, languages: Sequence[str] | None, check_images: bool,
                   bad: _BadRows, allow_outside_root: bool = False) -> Iterator[PretrainRecord]:
    """Validate one part file's rows into records (see read_ccrk_pretrain)."""
    for lineno, offset, row in _jsonl(path, bad):
        at = _at(file, lineno)
        if "caption" not in row:
            bad(at, _require(row, ["caption"]))
            continue
        problem = _check_captions(row["caption"], languages)
        if problem:
            bad(at, problem)
            continue
        rec = PretrainRecord(captions=row["caption"], file=file, line=lineno, offset=offset,
                             scene=row.get("scene"), noise=row.get("noise"), variants=row.get("variants"))
        if "image_path" in row:
            rel = row["image_path"]
            if not isinstance(rel, str) or not rel:
                bad(at, "'image_path' must be a non-empty string")
                continue
            problem = None if allow_outside_root else _path_problem(rel, root)
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
    kept = _BadRows(skip_bad, f"{len(records)} records").keep(
        records, lambda rec: _check_captions(rec.captions, languages), lambda rec: rec.where)
    if not kept:
        raise DataFormatError(f"no record has all of {list(languages)}")
    return kept


def default_language_order(languages: Iterable[str]) -> list[str]:
    """The paper's K order (ccr_demo.LANGUAGES) for known languages, then the rest sorted."""
    langs = set(languages)
    return [lang for lang in LANGUAGES if lang in langs] + sorted(langs - set(LANGUAGES))


# --------------------------------------------------------------------------- IGLUE xFlickr&CO


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
    bad = _BadRows(skip_bad, str(path))
    rows: list[IglueRow] = []
    seen: dict[str, int] = {}
    empty: list[int] = []
    for lineno, _, row in _jsonl(path, bad):
        at = _at(path, lineno)
        problem = _require(row, ["id", "img_path", "sentences"])
        if problem:
            bad(at, problem)
            continue
        rid, img, sents = _norm_id(row["id"]), row["img_path"], row["sentences"]
        if rid is None:
            bad(at, f"'id' must be a non-empty string or an int, got {row['id']!r}")
        elif not isinstance(img, str) or not img:
            bad(at, "'img_path' must be a non-empty string")
        elif not isinstance(sents, list) or not sents or not all(isinstance(s, str) for s in sents):
            bad(at, "'sentences' must be a non-empty list of strings")
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


# --------------------------------------------------------------------------- IGLUE WIT


@dataclass(slots=True)
class WitRow:
    image_url: str
    caption: str
    language: str | None
    file: str
    line: int
    image_base64: str | None = None


def read_wit_jsonl(path: str | Path, *, skip_bad: bool = False) -> list[WitRow]:
    """Read an IGLUE WIT annotation file (``test_{lang}.jsonl``).

    Rows whose caption is empty or null are dropped, as CCLM's WIT loader does.
    """
    path = Path(path)
    bad = _BadRows(skip_bad, str(path))
    rows: list[WitRow] = []
    dropped = 0
    for lineno, _, row in _jsonl(path, bad):
        at = _at(path, lineno)
        problem = _require(row, ["image_url", "caption_reference_description"])
        if problem:
            bad(at, problem)
            continue
        url, cap = row["image_url"], row["caption_reference_description"]
        if not isinstance(url, str) or not url:
            bad(at, "'image_url' must be a non-empty string")
        elif cap is not None and not isinstance(cap, str):
            bad(at, f"'caption_reference_description' is {type(cap).__name__}, not a string")
        elif not cap:
            dropped += 1
        else:
            rows.append(WitRow(url, cap, row.get("language"), str(path), lineno, row.get(WIT_BASE64_KEY)))
    bad.finish()
    if dropped:
        log.info("%s: dropped %d rows with an empty caption", path, dropped)
    if not rows:
        raise DataFormatError(f"{path}: no usable rows")
    return rows


def wit_image_files(source: str | Path) -> list[Path]:
    """The WIT image files of ``source``: the file itself, or a folder's *.csv / *.tsv by name."""
    p = Path(source)
    files = sorted(f for ext in ("*.csv", "*.tsv") for f in p.glob(ext)) if p.is_dir() else [p]
    if not files or not files[0].is_file():
        raise DataFormatError(f"{p}: no WIT image file (.csv/.tsv of url<TAB>base64)")
    return files


def iter_wit_image_lines(path: Path) -> Iterator[tuple[int, str, bytes, str]]:
    """(line number, url, base64 bytes, problem) per non-empty line of one WIT image file, read a
    line at a time (the files are many GB); ``problem`` says what is wrong with a bad line, else "".
    The base64 stays bytes: most lines of a filtered read are never decoded."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            raw = raw.rstrip(b"\r\n")
            if not raw:
                continue
            url, tab, data = raw.partition(b"\t")
            if not tab or not url or not data:
                yield lineno, "", b"", "expected 'url<TAB>base64'"
                continue
            try:
                yield lineno, url.decode("utf-8"), data, ""
            except UnicodeDecodeError:
                yield lineno, "", b"", "url is not UTF-8"


def read_wit_images(source: str | Path, urls: Iterable[str] | None = None, *,
                    skip_bad: bool = False) -> dict[str, str]:
    """Read WIT image files (``url<TAB>base64`` a line; a file, or a folder of *.csv/*.tsv).

    ``urls`` keeps only those images (the full files are many GB). Values stay base64 text.
    """
    p = Path(source)
    files = wit_image_files(p)
    want = None if urls is None else set(urls)
    bad = _BadRows(skip_bad, str(p))
    out: dict[str, str] = {}
    for path in files:
        lines = 0
        for lineno, url, data, problem in iter_wit_image_lines(path):
            lines += 1
            if problem:
                bad(_at(path, lineno), problem)
            elif want is None or url in want:
                out[url] = data.decode("ascii", "replace")
        if lines == 0:
            bad(str(path), "file is empty")
    bad.finish()
    return out


# --------------------------------------------------------------------------- CCRK retrieval JSON


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
        raise DataFormatError(f"{_at(path, e.lineno)}: malformed JSON at column {e.colno}: {e.msg}") from None
    if not isinstance(items, list) or not items:
        raise DataFormatError(f"{path}: expected a non-empty JSON list of objects")
    bad = _BadRows(skip_bad, str(path))
    entries: dict[str, RetrievalEntry] = {}
    for i, obj in enumerate(items):
        at = _at(path, item=i)
        if not isinstance(obj, dict):
            bad(at, f"expected an object, got {type(obj).__name__}")
            continue
        problem = _require(obj, ["image", "caption", "image_id"])
        if problem:
            bad(at, problem)
            continue
        iid, image, cap = _norm_id(obj["image_id"]), obj["image"], obj["caption"]
        caps = [cap] if isinstance(cap, str) else cap
        if iid is None:
            bad(at, f"'image_id' must be a non-empty string or an int, got {obj['image_id']!r}")
        elif not isinstance(image, str) or not image:
            bad(at, "'image' must be a non-empty string")
        elif not isinstance(caps, list) or not caps or not all(isinstance(c, str) for c in caps):
            bad(at, "'caption' must be a string or a non-empty list of strings")
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


# --------------------------------------------------------------------------- parallel test set


def _noise_flags(noise: Any, lang: str, n: int) -> list[bool]:
    """Per-caption noisy flags from a row's optional "noise" field.

    Accepted forms: absent/None (clean), a bool, a list with one entry per caption, a
    mapping ``{lang: info}`` whose entry for this language applies (truthy = noisy), or any
    other mapping describing this row's noise (non-empty = noisy).
    """
    if isinstance(noise, Mapping) and (lang in noise or not _KNOWN_LANGUAGES.isdisjoint(noise)):
        noise = noise.get(lang)
    if isinstance(noise, list) and len(noise) == n:
        return [bool(x) for x in noise]
    return [bool(noise)] * n


@dataclass(slots=True)
class _Instance:
    """One instance as read from one language's file, before alignment."""

    id: str
    image: str
    captions: list[str]
    at: str
    noisy: list[bool]
    scene: Any = None
    image_data: str | None = None


def _rows_inside_root(rows: list, path_and_root: Callable[[Any], tuple[str, Path]], where: Callable[[Any], str],
                      skip_bad: bool, name: str) -> list:
    """The rows whose image path stays inside its root (see `_path_problem`); the others are bad rows."""
    kept = _BadRows(skip_bad, name).keep(rows, lambda r: _path_problem(*path_and_root(r)), where)
    if not kept:
        raise DataFormatError(f"{name}: no usable rows")
    return kept


class ParallelTestSet:
    """N instances x L languages: the retrieval test set behind recall and MRV.

    Instance i has one image and, per language, one or more captions. Texts are flattened
    per language in instance order; ``text_to_image[lang]`` gives each text's gold image,
    ``image_to_texts[lang]`` each image's gold texts and ``first_text[lang]`` each
    instance's first caption (the query whose rank enters the paper's text-to-image MRV).
    Image paths may point to files that do not exist (text-only use).
    """

    def __init__(self, image_ids: Sequence[str], image_paths: Sequence[str],
                 captions: Mapping[str, Sequence[Sequence[str]]], *,
                 noisy: Mapping[str, Sequence[Sequence[bool]]] | None = None,
                 scenes: Sequence[Any] | None = None, image_data: Sequence[str | None] | None = None,
                 name: str = ""):
        n = len(image_ids)
        self.name = name
        self.languages = list(captions)
        self.image_ids = [str(i) for i in image_ids]
        self.image_paths = [str(p) for p in image_paths]
        self.scenes = list(scenes) if scenes is not None else None
        self.image_data = list(image_data) if image_data is not None else None
        if not self.languages:
            raise DataFormatError(f"{name or 'test set'}: no languages")
        for what, seq in (("image_paths", self.image_paths), ("scenes", self.scenes), ("image_data", self.image_data)):
            if seq is not None and len(seq) != n:
                raise DataFormatError(f"{name or 'test set'}: {what} has {len(seq)} entries for {n} instances")
        self._nested = {lang: [list(c) for c in captions[lang]] for lang in self.languages}
        self._nested_noisy = None if noisy is None else {
            lang: [list(f) for f in noisy[lang]] for lang in self.languages}
        self.captions: dict[str, list[str]] = {}
        self.text_to_image: dict[str, np.ndarray] = {}
        self.image_to_texts: dict[str, list[list[int]]] = {}
        self.first_text: dict[str, np.ndarray] = {}
        self.noisy: dict[str, np.ndarray] | None = None if noisy is None else {}
        for lang in self.languages:
            nested = self._nested[lang]
            counts = np.fromiter((len(c) for c in nested), dtype=np.int64, count=len(nested))
            if len(nested) != n or (counts == 0).any():
                raise DataFormatError(
                    f"{name or 'test set'}: language {lang!r} needs >= 1 caption for each of {n} instances")
            first = np.cumsum(counts) - counts
            self.captions[lang] = [c for caps in nested for c in caps]
            self.text_to_image[lang] = np.repeat(np.arange(n, dtype=np.int64), counts)
            self.first_text[lang] = first
            self.image_to_texts[lang] = [list(range(s, s + c)) for s, c in zip(first.tolist(), counts.tolist())]
            if self.noisy is not None:
                flags = [f for fl in self._nested_noisy[lang] for f in fl]
                if len(flags) != len(self.captions[lang]):
                    raise DataFormatError(f"{name or 'test set'}: noisy flags for {lang!r} do not match its captions")
                self.noisy[lang] = np.asarray(flags, dtype=bool)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __repr__(self) -> str:
        texts = ", ".join(f"{lang}:{len(c)}" for lang, c in self.captions.items())
        return f"ParallelTestSet({self.name!r}, {len(self)} instances, texts {texts})"

    def instance_captions(self, lang: str) -> list[list[str]]:
        """Captions of each instance in one language (a copy)."""
        return [list(c) for c in self._nested[lang]]

    def select(self, indices: Sequence[int] | np.ndarray) -> "ParallelTestSet":
        """A new test set with the given instances (and all their captions), in that order."""
        idx = np.arange(len(self))[np.asarray(indices, dtype=np.int64)].tolist()  # bounds-checked
        pick = lambda seq: None if seq is None else [seq[i] for i in idx]  # noqa: E731
        return ParallelTestSet(
            pick(self.image_ids), pick(self.image_paths),
            {lang: pick(self._nested[lang]) for lang in self.languages},
            noisy=None if self._nested_noisy is None else {lang: pick(v) for lang, v in self._nested_noisy.items()},
            scenes=pick(self.scenes), image_data=pick(self.image_data), name=self.name)

    def __getitem__(self, key: slice | Sequence[int] | np.ndarray) -> "ParallelTestSet":
        if isinstance(key, slice):
            return self.select(range(len(self))[key])
        return self.select(key)

    def subset(self, n: int) -> "ParallelTestSet":
        """The first n instances (quick evaluations)."""
        return self[:n]

    def with_languages(self, languages: Sequence[str]) -> "ParallelTestSet":
        """The same instances restricted to (and ordered by) `languages`."""
        unknown = [lang for lang in languages if lang not in self._nested]
        if unknown:
            raise DataFormatError(f"{self.name or 'test set'}: no language {unknown[0]!r} (has {self.languages})")
        return ParallelTestSet(
            self.image_ids, self.image_paths, {lang: self._nested[lang] for lang in languages},
            noisy=None if self._nested_noisy is None else {lang: self._nested_noisy[lang] for lang in languages},
            scenes=self.scenes, image_data=self.image_data, name=self.name)

    def load_image(self, i: int, max_pixels: int | None = None) -> Image.Image:
        """Instance i's image as RGB (from its base64 data if present, else its path)."""
        data = self.image_data[i] if self.image_data is not None else None
        if data is not None:
            label = f"{self.name or 'test set'} image {self.image_ids[i]!r} (base64)"
            return load_image(_decode_base64(data, label), name=label, max_pixels=max_pixels)
        return load_image(self.image_paths[i], max_pixels=max_pixels)

    def missing_images(self) -> list[int]:
        """Indices of instances with neither image data nor an existing image file."""
        return [i for i, p in enumerate(self.image_paths)
                if (self.image_data is None or self.image_data[i] is None) and not Path(p).is_file()]

    # ---- constructors from the real formats

    @classmethod
    def _align(cls, per_lang: dict[str, list[_Instance]], *, intersect: bool, check_images: bool,
               skip_bad: bool, name: str) -> "ParallelTestSet":
        """Align instances across languages by id (row order may differ between files)."""
        langs = list(per_lang)
        ref = langs[0]
        index = {lang: {inst.id: inst for inst in per_lang[lang]} for lang in langs}
        ids = [inst.id for inst in per_lang[ref]]
        common = set(ids).intersection(*(index[lang].keys() for lang in langs[1:]))
        if len(common) < max(len(v) for v in index.values()):
            for lang in langs[1:] if not intersect else ():
                for a, b in ((lang, ref), (ref, lang)):
                    lacking = [k for k in index[b] if k not in index[a]]
                    if lacking:
                        raise DataFormatError(
                            f"{name}: not parallel: language {a!r} has no instance with id {lacking[0]!r} "
                            f"(from {index[b][lacking[0]].at}; {len(lacking)} such ids). MRV needs the same "
                            "instances in every language; pass intersect=True to keep only the common ids")
            if not common:
                raise DataFormatError(f"{name}: no id is common to all of {langs}")
            dropped = {lang: len(index[lang]) - len(common) for lang in langs}
            warnings.warn(f"{name}: kept the {len(common)} ids common to all languages; dropped: {dropped}",
                          DataFormatWarning, stacklevel=3)
            ids = [i for i in ids if i in common]
        for lang in langs[1:]:
            for i in ids:
                a, b = index[ref][i], index[lang][i]
                if a.image != b.image:
                    raise DataFormatError(f"{name}: id {i!r} has image {a.image!r} ({a.at}) but {b.image!r} ({b.at})")
        if check_images:
            bad = _BadRows(skip_bad, name)
            keep = []
            for i in ids:
                inst = index[ref][i]
                if inst.image_data is None and not Path(inst.image).is_file():
                    bad(inst.at, f"image file not found: {inst.image}")
                else:
                    keep.append(i)
            bad.finish()
            ids = keep
            if not ids:
                raise DataFormatError(f"{name}: no instance has its image")
        refs = [index[ref][i] for i in ids]
        has_scene = any(r.scene is not None for r in refs)
        has_noise = any(any(index[lang][i].noisy) for lang in langs for i in ids)
        has_data = any(r.image_data is not None for r in refs)
        return cls(ids, [r.image for r in refs], {lang: [index[lang][i].captions for i in ids] for lang in langs},
                   noisy={lang: [index[lang][i].noisy for i in ids] for lang in langs} if has_noise else None,
                   scenes=[r.scene for r in refs] if has_scene else None,
                   image_data=[r.image_data for r in refs] if has_data else None, name=name)

    @classmethod
    def from_iglue(cls, path: str | Path, languages: Sequence[str] | None = None, *,
                   image_root: str | Path | Mapping[str, str | Path] | None = None, split: str = "test",
                   intersect: bool = False, check_images: bool = False, skip_bad: bool = False,
                   allow_outside_root: bool = False) -> "ParallelTestSet":
        """Read the IGLUE layout ``<dir>/annotations/{lang}/{split}.jsonl`` (dir or annotations dir).

        ``languages`` defaults to the folders present, in the paper's K order (`default_language_order`);
        the first language's row order is the instance order. ``image_root`` defaults to
        ``<dir>/images``; a mapping ``{"coco": ..., "flickr30k": ...}`` follows CCRK's xFlickr&CO
        rule (``COCO`` in img_path picks the COCO root). An ``img_path`` must stay inside its
        root (not absolute, no ``..`` out of it) unless ``allow_outside_root``.
        """
        path = Path(path)
        ann = path / "annotations" if (path / "annotations").is_dir() else path
        base = ann.parent
        if languages is None:
            found = [d.name for d in ann.iterdir() if (d / f"{split}.jsonl").is_file()] if ann.is_dir() else []
            languages = default_language_order(found)
            if not languages:
                raise DataFormatError(f"{ann}: no {{lang}}/{split}.jsonl files")
        root = image_root if image_root is not None else base / "images"

        def root_of(img_path: str) -> Path:
            if isinstance(root, Mapping):
                return Path(root["coco" if "COCO" in img_path else "flickr30k"])
            return Path(root)

        def image_of(img_path: str) -> str:
            return str(root_of(img_path) / img_path)

        per_lang = {}
        for lang in languages:
            rows = read_iglue_jsonl(ann / lang / f"{split}.jsonl", skip_bad=skip_bad)
            if not allow_outside_root:
                rows = _rows_inside_root(rows, lambda r: (r.img_path, root_of(r.img_path)),
                                         lambda r: _at(r.file, r.line), skip_bad, str(ann / lang / f"{split}.jsonl"))
            per_lang[lang] = [_Instance(r.id, image_of(r.img_path), r.sentences, _at(r.file, r.line),
                                        _noise_flags(r.noise, lang, len(r.sentences)), r.scene) for r in rows]
        return cls._align(per_lang, intersect=intersect, check_images=check_images, skip_bad=skip_bad,
                          name=f"{ann}/*/{split}.jsonl")

    @classmethod
    def from_ccrk_json(cls, files: Mapping[str, str | Path], *, image_root: str | Path | None = None,
                       intersect: bool = False, check_images: bool = False,
                       skip_bad: bool = False, allow_outside_root: bool = False) -> "ParallelTestSet":
        """Read CCRK retrieval JSON files, one per language (``{lang: path}``), aligned by image_id.

        Images resolve against ``image_root`` (default: each JSON file's folder) and must stay
        inside it (not absolute, no ``..`` out of it) unless ``allow_outside_root``.
        """
        per_lang = {}
        for lang, f in files.items():
            root = Path(image_root) if image_root is not None else Path(f).parent
            entries = read_ccrk_json(f, skip_bad=skip_bad)
            if not allow_outside_root:
                entries = _rows_inside_root(entries, lambda e: (e.image, root), lambda e: _at(e.file, item=e.item),
                                            skip_bad, str(f))
            per_lang[lang] = [_Instance(e.image_id, str(root / e.image), e.captions, _at(e.file, item=e.item),
                                        [False] * len(e.captions)) for e in entries]
        return cls._align(per_lang, intersect=intersect, check_images=check_images, skip_bad=skip_bad,
                          name=Path(next(iter(files.values()))).stem)

    @classmethod
    def from_wit(cls, files: Mapping[str, str | Path], images: str | Path | Mapping[str, str] | None = None, *,
                 intersect: bool = False, skip_bad: bool = False) -> "ParallelTestSet":
        """Read IGLUE WIT files (``{lang: test_{lang}.jsonl}``); instances are grouped by image_url.

        WIT's languages have different images, so several languages need ``intersect=True``.
        ``images``: a url<TAB>base64 file/folder or a {url: base64} mapping; without it, rows'
        ``image_content`` is used if present, else the set is text-only.
        """
        per_lang: dict[str, list[_Instance]] = {}
        rows_by_lang = {lang: read_wit_jsonl(f, skip_bad=skip_bad) for lang, f in files.items()}
        if images is not None and not isinstance(images, Mapping):
            images = read_wit_images(images, {r.image_url for rows in rows_by_lang.values() for r in rows},
                                     skip_bad=skip_bad)
        for lang, rows in rows_by_lang.items():
            groups: dict[str, _Instance] = {}
            for r in rows:
                inst = groups.get(r.image_url)
                if inst is None:
                    data = images.get(r.image_url) if images is not None else r.image_base64
                    groups[r.image_url] = _Instance(r.image_url, r.image_url, [r.caption], _at(r.file, r.line),
                                                    [False], image_data=data)
                else:
                    inst.captions.append(r.caption)
                    inst.noisy.append(False)
            per_lang[lang] = list(groups.values())
        if images is not None:
            bad = _BadRows(skip_bad, "WIT images")
            for lang in per_lang:
                for inst in per_lang[lang]:
                    if inst.image_data is None:
                        bad(inst.at, f"no image for url {inst.id!r} in the WIT image files")
                per_lang[lang] = [inst for inst in per_lang[lang] if inst.image_data is not None]
            bad.finish()
        return cls._align(per_lang, intersect=intersect, check_images=False, skip_bad=skip_bad,
                          name=f"wit/{'+'.join(files)}")


# --------------------------------------------------------------------------- IGLUE translate-test

TRANSLATE_TEST_DIR = "annotations_machine-translate"


def read_iglue_translate_test(path: str | Path, test_set: ParallelTestSet, languages: Sequence[str] | None = None,
                              *, split: str = "test", system: str = "gmt") -> ParallelTestSet:
    """IGLUE's translate-test captions for ``test_set``'s instances, as a parallel test set.

    Layout: ``<dir>/annotations_machine-translate/{lang}/{split}_{system}.jsonl`` (``dir`` may
    also be that folder itself), rows as in ``annotations/`` (``{"id", "img_path",
    "sentences"}``) with each caption machine-translated into English (xFlickr&CO has files
    for every language but en). The result has the same images, in ``test_set``'s order, and
    the languages among ``languages`` (default: ``test_set``'s) that have a file; rows of ids
    outside ``test_set`` (e.g. a ``--max-instances`` subset) are ignored, and every instance
    of ``test_set`` must have a row with the same image.
    """
    path = Path(path)
    base = path / TRANSLATE_TEST_DIR if (path / TRANSLATE_TEST_DIR).is_dir() else path
    wanted = list(languages or test_set.languages)
    name = f"{base}/*/{split}_{system}.jsonl"
    found = [lang for lang in wanted if (base / lang / f"{split}_{system}.jsonl").is_file()]
    if not found:
        raise DataFormatError(f"{name}: no translate-test file for any of {wanted}")
    position = {image_id: i for i, image_id in enumerate(test_set.image_ids)}
    captions: dict[str, list[list[str]]] = {}
    for lang in found:
        file = base / lang / f"{split}_{system}.jsonl"
        nested: list[list[str] | None] = [None] * len(test_set)
        for row in read_iglue_jsonl(file):
            i = position.get(row.id)
            if i is None:
                continue
            original = Path(test_set.image_paths[i]).as_posix()
            if original != row.img_path and not original.endswith("/" + row.img_path.lstrip("/")):
                raise DataFormatError(f"{_at(row.file, row.line)}: id {row.id!r} has image {row.img_path!r}, "
                                      f"the test set has {test_set.image_paths[i]!r}")
            nested[i] = list(row.sentences)
        missing = [test_set.image_ids[i] for i, c in enumerate(nested) if c is None]
        if missing:
            raise DataFormatError(f"{file}: no row for id {missing[0]!r} of the test set ({len(missing)} such ids); "
                                  "translate-test needs every instance")
        captions[lang] = nested
    return ParallelTestSet(test_set.image_ids, test_set.image_paths, captions, scenes=test_set.scenes,
                           image_data=test_set.image_data, name=f"{test_set.name} translate-test ({system})")


# --------------------------------------------------------------------------- retrieval training pairs

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
        rows = [(e.image, e.captions, f"{e.file}, item {e.item}", None) for e in read_ccrk_json(path, skip_bad=skip_bad)]
    bad = _BadRows(skip_bad, str(path))
    records: list[PretrainRecord] = []
    for image, captions, file, line in rows:
        at = _at(file, line)
        problem = None if allow_outside_root else _path_problem(image, root)
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

"""IGLUE WIT: ``test_{lang}.jsonl`` annotations and the base64 image files beside them.

Rows carry ``image_url`` and ``caption_reference_description``; images come as
``url<TAB>base64`` lines in CSV/TSV files, or merged into the row as ``"image_content"``
(CCLM's wit_preproc).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ccr_demo.data.errors import BadRows, DataFormatError, where_in_file
from ccr_demo.data.rows import missing_key_problem, read_jsonl

log = logging.getLogger(__name__)


WIT_BASE64_KEY = "image_content"


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
    bad = BadRows(skip_bad, str(path))
    rows: list[WitRow] = []
    dropped = 0
    for lineno, _, row in read_jsonl(path, bad):
        at = where_in_file(path, lineno)
        problem = missing_key_problem(row, ["image_url", "caption_reference_description"])
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
    bad = BadRows(skip_bad, str(p))
    out: dict[str, str] = {}
    for path in files:
        lines = 0
        for lineno, url, data, problem in iter_wit_image_lines(path):
            lines += 1
            if problem:
                bad(where_in_file(path, lineno), problem)
            elif want is None or url in want:
                out[url] = data.decode("ascii", "replace")
        if lines == 0:
            bad(str(path), "file is empty")
    bad.finish()
    return out

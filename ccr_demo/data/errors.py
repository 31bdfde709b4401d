"""How the dataset readers report problems: errors that name the file and line, bad-row
counting for ``skip_bad``, and the check that a row's image path stays inside its root.

A bad row in a million-line corpus is a needle in a haystack, so every message starts with
``where_in_file`` ("file, line N" or "file, item N"). `BadRows` raises `DataFormatError` on
the first bad row, or with ``skip_bad`` counts them and emits one `DataFormatWarning`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

from ccr_demo.utils.paths import lexically_inside


class DataFormatError(ValueError):
    """A data file is malformed; the message names the file (and line) to fix."""


class DataFormatWarning(UserWarning):
    """Rows were skipped or kept with a caveat (empty captions, non-parallel ids)."""


def where_in_file(file: str | Path, line: int | None = None, item: int | None = None) -> str:
    """Where a row is, for messages: ``"file, line N"`` (JSONL), ``"file, item N"`` (JSON list) or the file."""
    if line is not None:
        return f"{file}, line {line}"
    if item is not None:
        return f"{file}, item {item}"
    return str(file)


class BadRows:
    """Raise on the first bad row, or (skip_bad) count them and warn once at the end.

    Call it with ``(where, message)`` for each bad row, then ``finish()`` once the file is read.
    """

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


def path_problem(rel: str, root: str | Path) -> str | None:
    """Why a row's image path may not be used under the dataset root ``root``, or None.

    A row's path (relative to the root, or absolute) must name a file inside the root: one that
    climbs out with ``..`` or points elsewhere on the machine would let a dataset file aim the
    reader (and whatever serves its images) at any file. The check is on the path's text; a
    symlink placed inside the root by whoever laid the dataset out is followed. Readers take
    ``allow_outside_root=True`` to trust a file that does this on purpose.
    """
    if not lexically_inside(rel, root):
        return (f"image path {rel!r} is outside the dataset root {root} "
                "(allow_outside_root=True trusts this file)")
    return None


def rows_inside_root(rows: list, path_and_root: Callable[[Any], tuple[str, Path]], where: Callable[[Any], str],
                     skip_bad: bool, name: str) -> list:
    """The rows whose image path stays inside its root (see `path_problem`); the others are bad rows."""
    kept = BadRows(skip_bad, name).keep(rows, lambda r: path_problem(*path_and_root(r)), where)
    if not kept:
        raise DataFormatError(f"{name}: no usable rows")
    return kept

"""Paths kept inside allowed folders: the one check every reader, gallery, thumbnail and manifest uses.

A public app serves strangers, and the files it reads are named by data (manifests, gallery
items, dataset rows). So a name in data is only used after it is resolved to where it really
leads (``..`` collapsed, symlinks followed) and found inside one of the folders its owner
allows. Call these at the moment a file is read or served, not only when its list is loaded:
a folder can change after that (a file replaced by a symlink).

- ``resolve_inside(name, base, roots)``: the file a relative name leads to, or None;
- ``is_inside(path, roots)``: whether an already resolved path lies in one of the roots;
- ``lexically_inside(name, root)``: the same question on the text alone (no file system),
  for readers that check millions of rows before any file exists;
- ``shown_path(path, root)`` / ``hide_absolute_paths(text, root)``: a path as a public page may
  show it (relative to the app's folder, else only its last part), so no page or API answer
  tells strangers the server's file layout.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable


def resolved_roots(roots: Iterable[str | os.PathLike]) -> list[Path]:
    """The roots as absolute paths with symlinks followed, as ``is_inside`` compares them."""
    return [Path(r).resolve() for r in roots]


def is_inside(path: str | os.PathLike, roots: Iterable[str | os.PathLike]) -> bool:
    """Whether ``path`` (resolved by the caller) lies in one of ``roots`` (resolved folders) or is one."""
    path = Path(path)
    return any(path.is_relative_to(root) for root in roots)


def resolve_inside(name: str | os.PathLike, base: str | os.PathLike,
                   roots: Iterable[str | os.PathLike] | None = None) -> Path | None:
    """``base / name`` resolved (``..`` collapsed, symlinks followed) if it lies inside one of
    ``roots`` (resolved folders; default: ``base`` itself), else None. An absolute ``name``
    is taken as it is, so it passes only if it leads inside a root too. A name with a NUL byte
    or that cannot be resolved (a symlink loop) is None."""
    if "\0" in os.fspath(name):
        return None
    base = Path(base).resolve()
    try:
        path = (base / name).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return path if is_inside(path, [base] if roots is None else roots) else None


def lexically_inside(name: str, root: str | os.PathLike) -> bool:
    """Whether ``root / name``, by its text alone (``..`` collapsed, nothing resolved), names
    something strictly inside ``root``."""
    base = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(os.path.join(base, name))
    return full != base and os.path.commonpath([full, base]) == base


OUTSIDE = "…"  # stands for the folders above a path outside the app's folder


def shown_path(path: str | os.PathLike, root: str | os.PathLike | None) -> str:
    """``path`` as a public page shows it: relative to ``root`` (the app's folder) when it lies
    inside it (``assets/model``), else only its last part behind ``…/`` (``…/model``). A
    relative path is taken as it is (already relative to where the app runs)."""
    text = os.fspath(path)
    if not os.path.isabs(text):
        return text
    norm = os.path.normpath(text)
    if root is not None:
        base = os.path.normpath(os.path.abspath(root))
        if norm == base:
            return "."
        if os.path.commonpath([norm, base]) == base:
            return os.path.relpath(norm, base)
    return f"{OUTSIDE}/{os.path.basename(norm)}" if os.path.basename(norm) else OUTSIDE


# An absolute POSIX path inside prose: a "/" that starts the text or follows a space, quote,
# bracket or Markdown mark (not a letter, digit, ":" or "/": "1/2", "R@1/5", "https://" stay),
# then a name character, then anything up to a space, quote or bracket.
ABSOLUTE_PATH = re.compile(r"(?:(?<=^)|(?<=[\s`'\"(\[{=,*]))/[\w.~-][^\s`'\"()\[\]{}<>,;]*")


def hide_absolute_paths(text: str, root: str | os.PathLike | None) -> str:
    """``text`` with every absolute path in it written as ``shown_path`` writes it (messages of
    libraries name the files they failed on by their full path)."""
    return ABSOLUTE_PATH.sub(lambda m: shown_path(m.group(0).rstrip(".:"), root)
                             + m.group(0)[len(m.group(0).rstrip(".:")):], text)

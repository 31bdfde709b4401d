"""Small JPEG copies of a gallery's images, kept inside the gallery folder.

Why: an image that comes as base64 text (a CCRK part row, a line of WIT's image files) has no
file a gallery item could point to, so the app could only show a placeholder for it and ITM
re-ranking could not read it. A gallery build writes a thumbnail of each such image
(``thumbnails/<chunk>/<n>.jpg``, the longer side at most ``size`` pixels) and records its name
as the item's ``"thumbnail"``. The app shows an item's image file when it has one, else its
thumbnail; re-ranking reads the thumbnail the same way, so the build makes them at least as
large as the model's input (``default_size``).

A thumbnail name is checked by its text when a gallery loads (``thumbnails/``, then folders and
a file, no ``..``: cheap for a million items) and resolved, symlinks followed, at every use: it
must lead inside the gallery folder, or inside a root the loader declares for the gallery's
files as it does for image paths (a Hub snapshot's files are links into its cache's blobs/).
So a gallery from elsewhere cannot make the app read or serve another file.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Sequence

from PIL import Image

from ccr_demo.utils.paths import is_inside, resolve_inside

FOLDER = "thumbnails"
KEY = "thumbnail"
MIN_SIZE = 256
QUALITY = 90


def default_size(model_image_size: int) -> int:
    """The longer side of a thumbnail: 256 px, or the model's input size when that is larger."""
    return max(MIN_SIZE, int(model_image_size))


def name_for(chunk: int, position: int) -> str:
    """Where item ``position`` of build chunk ``chunk`` keeps its thumbnail (a folder per chunk)."""
    return f"{FOLDER}/{chunk:07d}/{position:04d}.jpg"


def jpeg_bytes(image: Image.Image, size: int) -> bytes:
    """The image as a JPEG whose longer side is at most ``size`` (never enlarged)."""
    if size < 1:
        raise ValueError(f"thumbnail size must be at least 1 pixel, got {size}")
    thumb = image.convert("RGB")
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=QUALITY)
    return buf.getvalue()


def _allowed(folder: Path, roots: Sequence[Path] | None) -> Sequence[Path]:
    """Where a thumbnail may lead: the given roots (resolved, the gallery folder among them), else the folder."""
    return roots or [folder.resolve()]


def check_name(name, where) -> str:
    """``name`` if its text is a thumbnail name as builds write them (``thumbnails/CHUNK/FILE``,
    no ``..`` or empty parts), else ValueError. Where it leads is checked at use (``resolve``).
    ``where`` (a string, or a function giving it: formatted only for an error) names the item."""
    parts = name.split("/") if isinstance(name, str) else []
    if (len(parts) != 3 or parts[0] != FOLDER or "\0" in name or "\\" in name
            or any(p in ("", ".", "..") for p in parts)):
        raise ValueError(f"{where() if callable(where) else where}: {KEY!r} must name a file in a folder under "
                         f"the gallery's {FOLDER}/ ('{FOLDER}/CHUNK/FILE', no '..'), got {name!r}")
    return name


def resolve(name: str | None, folder: Path | None, roots: Sequence[Path] | None = None) -> str | None:
    """The thumbnail's file, if it is one inside ``folder`` or ``roots`` (resolved folders, the
    gallery folder among them), symlinks followed; else None (the app shows a placeholder).
    Checked at every use: the folder may have changed since the gallery was loaded."""
    if not name or folder is None:
        return None
    path = resolve_inside(name, folder, _allowed(folder, roots))
    return str(path) if path is not None and path.is_file() else None


def is_own_folder(path: Path) -> bool:
    """Whether ``path`` holds only what builds write (chunk folders of .jpg files), so replacing
    it loses nothing of the user's."""
    for chunk in os.scandir(path):
        if not (chunk.is_dir(follow_symlinks=False) and chunk.name.isdigit()):
            return False
        if any(not f.name.endswith(".jpg") or f.is_dir(follow_symlinks=False) for f in os.scandir(chunk.path)):
            return False
    return True


def copy_folder(src: Path, dst: Path, roots: Sequence[Path] | None = None) -> set[str]:
    """Hard-link (or copy, across file systems) the thumbnails under ``src`` (``<root>/thumbnails``)
    to ``dst``; the names copied (``thumbnails/...``, as items name them).

    Links make saving a gallery with a million thumbnails cheap and leave ``src`` intact, so a
    save that fails part-way loses nothing. A symlink is followed only to a file inside ``src``'s
    gallery folder or ``roots`` (as ``resolve`` allows); other entries are left behind."""
    copied: set[str] = set()
    if not is_inside(src.resolve(), _allowed(src.parent, roots)):
        return copied
    for chunk in sorted(os.scandir(src), key=lambda e: e.name):
        if not chunk.is_dir():
            continue
        made = False
        for entry in os.scandir(chunk.path):
            if not entry.name.endswith(".jpg") or entry.name.startswith("."):
                continue
            real = Path(entry.path)
            if entry.is_symlink() or Path(chunk.path).is_symlink():
                real = real.resolve()
                if not is_inside(real, _allowed(src.parent, roots)):
                    continue
            if not real.is_file():
                continue
            if not made:
                (dst / chunk.name).mkdir(parents=True, exist_ok=True)
                made = True
            target = dst / chunk.name / entry.name
            try:
                os.link(real, target)
            except OSError:
                shutil.copy2(real, target)
            copied.add(f"{FOLDER}/{chunk.name}/{entry.name}")
    return copied

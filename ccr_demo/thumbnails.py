"""Small JPEG copies of a gallery's images, kept inside the gallery folder.

Why: an image that comes as base64 text (a CCRK part row, a line of WIT's image files) has no
file a gallery item could point to, so the app could only show a placeholder for it and ITM
re-ranking could not read it. A gallery build writes a thumbnail of each such image
(``thumbnails/<chunk>/<n>.jpg``, the longer side at most ``size`` pixels) and records its name
as the item's ``"thumbnail"``. The app shows an item's image file when it has one, else its
thumbnail; re-ranking reads the thumbnail the same way, so the build makes them at least as
large as the model's input (``default_size``).

A thumbnail name is always relative to the gallery folder and must resolve (symlinks followed)
inside it: a gallery from elsewhere cannot make the app read or serve another file.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

from PIL import Image

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


def check_name(name, folder: Path, where: str) -> str:
    """``name`` if it is a relative path resolving inside ``folder`` (symlinks followed), else ValueError."""
    if not isinstance(name, str) or not name or "\0" in name or os.path.isabs(name):
        raise ValueError(f"{where}: {KEY!r} must be a path relative to the gallery folder, got {name!r}")
    base = folder.resolve()
    if not (base / name).resolve().is_relative_to(base):
        raise ValueError(f"{where}: {KEY} {name!r} resolves outside the gallery folder {base}: a thumbnail "
                         "must lie inside its gallery's folder")
    return name


def resolve(name: str | None, folder: Path | None) -> str | None:
    """The thumbnail's file, if it exists inside ``folder`` (checked again: the folder may have changed)."""
    if not name or folder is None:
        return None
    base = folder.resolve()
    path = (base / name).resolve()
    return str(path) if path.is_relative_to(base) and path.is_file() else None


def copy_folder(src: Path, dst: Path) -> int:
    """Hard-link (or copy, across file systems) every thumbnail under ``src`` to ``dst``; the count.

    Links make saving a gallery with a million thumbnails cheap and leave ``src`` intact, so a
    save that fails part-way loses nothing."""
    n = 0
    for path in sorted(src.rglob("*.jpg")):
        if path.name.startswith(".") or not path.is_file() or path.is_symlink():
            continue
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
        n += 1
    return n

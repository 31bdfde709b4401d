"""Small JPEG copies of a gallery's images, kept inside the gallery folder.

Why: an image that comes as base64 text (a CCRK part row, a line of WIT's image files) has no
file a gallery item could point to, so the app could only show a placeholder for it and ITM
re-ranking could not read it. A gallery build writes a thumbnail of each such image
(``thumbnails/<chunk>/<n>.jpg``, the longer side at most ``size`` pixels) and records its name
as the item's ``"thumbnail"``. The app shows an item's image file when it has one, else its
thumbnail; re-ranking reads the thumbnail the same way, so the build makes them at least as
large as the model's input (``default_size``).

A thumbnail name is always relative to the gallery folder and must resolve (symlinks followed)
inside it, or inside a root the loader declares for the gallery's files as it does for image
paths (a Hub snapshot's files are links into its cache's blobs/): a gallery from elsewhere
cannot make the app read or serve another file.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Sequence

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


def _inside(path: Path, folder: Path, roots: Sequence[Path] | None) -> bool:
    return any(path.is_relative_to(r) for r in (roots or [folder.resolve()]))


def check_name(name, folder: Path, where: str, roots: Sequence[Path] | None = None) -> str:
    """``name`` if it is a relative path resolving (symlinks followed) inside ``folder``, or
    inside one of ``roots`` (resolved folders, the gallery folder among them) when given; else
    ValueError."""
    if not isinstance(name, str) or not name or "\0" in name or os.path.isabs(name):
        raise ValueError(f"{where}: {KEY!r} must be a path relative to the gallery folder, got {name!r}")
    resolved = (folder.resolve() / name).resolve()
    if not _inside(resolved, folder, roots):
        raise ValueError(f"{where}: {KEY} {name!r} resolves to {resolved}, outside the gallery folder "
                         f"{folder.resolve()}: a thumbnail must lie inside its gallery's folder")
    return name


def resolve(name: str | None, folder: Path | None, roots: Sequence[Path] | None = None) -> str | None:
    """The thumbnail's file, if it exists where ``check_name`` allows (checked again at every use:
    the folder may have changed since the gallery was loaded)."""
    if not name or folder is None:
        return None
    path = (folder.resolve() / name).resolve()
    return str(path) if _inside(path, folder, roots) and path.is_file() else None


def copy_folder(src: Path, dst: Path, roots: Sequence[Path] | None = None) -> int:
    """Hard-link (or copy, across file systems) every thumbnail under ``src`` to ``dst``; the count.

    Links make saving a gallery with a million thumbnails cheap and leave ``src`` intact, so a
    save that fails part-way loses nothing. A link is followed only to a file inside ``src``'s
    gallery folder or ``roots`` (as ``check_name`` allows); other entries are left behind."""
    n = 0
    for path in sorted(src.rglob("*.jpg")):
        real = path.resolve()
        if path.name.startswith(".") or not real.is_file() or not _inside(real, src.parent, roots):
            continue
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(real, target)
        except OSError:
            shutil.copy2(real, target)
        n += 1
    return n

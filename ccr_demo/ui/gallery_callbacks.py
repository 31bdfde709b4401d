"""The session gallery, as plain Python: a searchable gallery built from a visitor's uploads (or,
for a local single-user run, a folder on this machine), bounded in files and entries."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ccr_demo.data.errors import DataFormatError
from ccr_demo.ui.callbacks import bullets, not_ready_message
from ccr_demo.ui.i2t_callbacks import open_upload
from ccr_demo.ui.state import AppState

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


@dataclass
class SessionGalleryResult:
    gallery: Any
    message: str


def _unique_names(paths: Sequence[Path]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        n = seen.get(p.name, 0)
        seen[p.name] = n + 1
        out.append(p.name if n == 0 else f"{p.stem}_{n + 1}{p.suffix}")
    return out


def scan_image_folder(root: Path, max_files: int, max_entries: int) -> tuple[list[Path], list[str]]:
    """Image files under ``root`` (sorted walk, hidden entries left out), at most ``max_files``,
    looking at no more than ``max_entries`` directory entries. Never raises: a folder or entry
    that cannot be read (permissions, a vanished file, /proc oddities) is skipped and counted."""
    found: list[Path] = []
    unreadable: list[str] = []
    seen = 0
    stopped = None

    def on_error(e: OSError) -> None:
        unreadable.append(f"{e.filename}: {e.strerror or e}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            seen += 1
            if seen > max_entries:
                stopped = f"looked at {max_entries:,} entries of the folder and stopped"
                break
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            p = Path(dirpath) / name
            try:
                ok = p.is_file() and os.access(p, os.R_OK)
            except OSError as e:
                ok = False
                unreadable.append(f"{p}: {e.strerror or e}")
            else:
                if not ok:
                    unreadable.append(f"{p}: not a readable file")
            if ok:
                found.append(p)
                if len(found) >= max_files:
                    stopped = f"stopped at {max_files} images (the limit for one gallery)"
                    break
        if stopped:
            break
    notes = [stopped] if stopped else []
    if unreadable:
        notes.append(f"skipped {len(unreadable)} unreadable entr{'y' if len(unreadable) == 1 else 'ies'}, "
                     "e.g. " + "; ".join(unreadable[:3]))
    return found, notes


def build_session_gallery(app: AppState, files: Sequence[Any] | None = None,
                          folder: str | None = None) -> SessionGalleryResult:
    """A gallery of the user's own images, for this session only (the shared one is untouched).

    Each file is checked with the guarded loader first; bad ones are listed and skipped.
    ``folder`` (a path on the server) is accepted only when the app allows local paths.
    """
    app.wait_loaded()
    if app.model is None:
        return SessionGalleryResult(None, not_ready_message(app))
    lim = app.limits
    paths: list[Path] = []
    notes: list[str] = []
    for f in files or []:
        p = getattr(f, "name", f)  # a gradio upload (filepath) or a plain path
        if p:
            paths.append(Path(str(p)))
    if folder and str(folder).strip():
        if not app.allow_local_paths:
            notes.append("Folder paths are turned off on this server; upload the images instead.")
        else:
            root = Path(str(folder).strip()).expanduser()
            if not root.is_dir():
                notes.append(f"`{root}` is not a folder on this machine.")
            else:
                found, folder_notes = scan_image_folder(root, lim.max_folder_files, lim.max_folder_entries)
                notes.extend(folder_notes)
                paths.extend(found)
    if not paths:
        return SessionGalleryResult(None, "Give some images: upload files (or a folder path when running locally). "
                                    + " ".join(notes))
    max_n = max(lim.max_upload_images, lim.max_folder_files if folder else 0)
    if len(paths) > max_n:
        notes.append(f"{len(paths)} images given; the first {max_n} were used")
        paths = paths[:max_n]
    good, bad = [], []
    for p in paths:
        try:
            open_upload(p, lim.max_pixels, lim.max_aspect)
            good.append(p)
        except DataFormatError as e:
            bad.append(f"{p.name}: {str(e).split(': ', 1)[-1]}")
    if bad:
        notes.append(f"skipped {len(bad)} file(s) that are not usable images: " + "; ".join(bad[:5])
                     + (" ..." if len(bad) > 5 else ""))
    if not good:
        return SessionGalleryResult(None, "No usable image among the files.\n\n" + bullets(notes))
    from ccr_demo.gallery.gallery import Gallery

    try:
        g = Gallery.build(app.model, [str(p) for p in good], metadata=[{"id": n} for n in _unique_names(good)],
                          batch_size=32, progress=False)
    except Exception as e:  # noqa: BLE001
        log.exception("session gallery failed")
        return SessionGalleryResult(None, f"Building the gallery failed: {e}\n\n" + bullets(notes))
    msg = f"Your gallery: **{g.count} images**, searchable now (choose *my gallery* in the search tab)."
    return SessionGalleryResult(g, msg + ("\n\n" + bullets(notes) if notes else ""))



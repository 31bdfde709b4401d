"""How result images reach the browser, and how long uploads stay on disk.

Serving: no folder is ever registered with Gradio (``gr.set_static_paths`` / ``allowed_paths``
would make every file under it downloadable through ``/gradio_api/file=``). Each image a
result shows is copied into Gradio's cache with Gradio's own ``save_file_to_cache`` (once per
file content; written under a temporary name and renamed), so only the images actually
returned are served. Images made in memory (an upload's thumbnail, the placeholder of a
missing file) are written the same way, temp + rename, once per content: Gradio's
``save_pil_to_cache`` rewrites the same hash-named file in place on every request, and
concurrent identical requests then served a file while it was being rewritten (h11 "Too
little data for declared Content-Length", issue 11 item 15).

Expiry: ``Blocks(delete_cache=...)`` (Gradio's own sweep) deletes the app's cached files
older than the session time-to-live; ``enforce_disk_budget`` additionally keeps their total
under a byte bound, oldest first, so a burst of uploads cannot fill the disk before that.
Both delete files only; ``enforce_disk_budget`` then removes what such sweeps leave in the cache
folder (``prune_leftovers``): emptied hash folders and zero-byte temporaries of writes that never
finished (issue 23 item 11: 148 were left after a load test).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Iterable

from PIL import Image

from ccr_demo.utils.fileio import atomic_write_bytes
from ccr_demo.utils.paths import is_inside

log = logging.getLogger(__name__)

# What only the cache folder's writers make, and so its sweep may remove once left behind: hash
# folders (Gradio's ``<sha256>/``, ``_write_once``'s ``<sha256[:32]>/``), and temporaries of a
# write that never finished (mkstemp's ``.<name>.<8 chars>`` staging files, here and in Gradio's
# ``save_file_to_cache``; ``tmp<8 chars>`` of Gradio's upload parser). Stale: older than
# ``STALE_S`` (a live write takes milliseconds; the age keeps a folder a writer is about to fill).
HASH_FOLDER = re.compile(r"[0-9a-f]{32}|[0-9a-f]{64}")
TEMP_FILE = re.compile(r"\..+\.[a-z0-9_]{8}(\.tmp)?|tmp[a-z0-9_]{8}")
STALE_S = 600


def cache_folder() -> Path:
    """Gradio's upload/cache folder (GRADIO_TEMP_DIR), which it serves and sweeps."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def _write_once(folder: Path, name: str, data: bytes) -> str:
    """``folder / sha256(data) / name``, written temp + rename unless it is already there."""
    target = folder / hashlib.sha256(data).hexdigest()[:32] / name
    if target.is_file() and target.stat().st_size == len(data):
        return str(target)
    atomic_write_bytes(target, data, fsync=False)  # served files are rewritable: no fsync
    return str(target)


def serve_image(image: Any, folder: Path | None = None) -> Any:
    """A value for an image output: a PIL image becomes a PNG file written once (atomic); a
    path becomes Gradio's cached copy of that one file; anything else passes through."""
    folder = folder or cache_folder()
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return _write_once(folder, "image.png", buf.getvalue())
    if isinstance(image, (str, Path)) and image:
        path = Path(image)
        if is_inside(path, [folder]):  # already one of Gradio's cached files
            return str(path)
        from gradio.processing_utils import save_file_to_cache

        try:
            return save_file_to_cache(path, str(folder))
        except OSError as e:  # gone or unreadable since the gallery was loaded
            log.warning("cannot serve %s: %s", path, e)
            return None
    return image


def data_uri(image: Any, max_bytes: int = 48_000, size: int = 160) -> str:
    """An image inline, as a ``data:`` URI, for views drawn as HTML (the side-by-side grid):
    nothing is served from a path, and the page names none. ``image``: a PIL image, or a file a
    gallery handed out (``Gallery.image_file``, checked where it leads at that moment). A file
    over ``max_bytes``, or in another format than PNG or JPEG, is shrunk to ``size`` px as PNG."""
    data, mime = b"", "image/png"
    if isinstance(image, (str, Path)):
        try:
            data = Path(image).read_bytes()
        except OSError as e:  # gone or unreadable since the gallery was loaded
            log.warning("cannot show %s: %s", Path(image).name, e)
            image = Image.new("RGB", (64, 64), (210, 210, 210))
        else:
            mime = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg" if data[:2] == b"\xff\xd8" else ""
            if mime and len(data) <= max_bytes:
                return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
            try:
                image = Image.open(io.BytesIO(data))
            except Exception:  # noqa: BLE001 - not an image Pillow reads: a grey square
                image = Image.new("RGB", (64, 64), (210, 210, 210))
    if not isinstance(image, Image.Image):
        image = Image.new("RGB", (64, 64), (210, 210, 210))
    small = image.convert("RGB")
    small.thumbnail((size, size))
    buf = io.BytesIO()
    small.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def serve_pairs(pairs: Iterable[tuple[Any, str]], folder: Path | None = None) -> list[tuple[Any, str]]:
    """(image, caption) pairs of a gr.Gallery with every image served as ``serve_image`` does."""
    return [(served, caption) for served, caption in ((serve_image(im, folder), c) for im, c in pairs)
            if served is not None]


def enforce_disk_budget(files: Iterable[set], max_bytes: int, keep: Iterable[str] = ()) -> tuple[int, int]:
    """Delete the oldest of the app's cached files (Gradio's ``Blocks.temp_file_sets``) until
    their total size is at most ``max_bytes``; files in ``keep`` (the current request's) stay.
    Returns (files deleted, bytes left)."""
    keep = {str(k) for k in keep}
    entries = []
    for temp_set in files:
        for name in list(temp_set):
            try:
                st = os.lstat(name)
            except OSError:
                temp_set.discard(name)
                continue
            entries.append((st.st_ctime, st.st_size, name, temp_set))
    total = sum(e[1] for e in entries)
    deleted = 0
    for _, size, name, temp_set in sorted(entries, key=lambda e: e[0]):
        if total <= max_bytes:
            break
        if name in keep:
            continue
        try:
            os.remove(name)
        except OSError:
            pass
        temp_set.discard(name)
        total -= size
        deleted += 1
    if deleted:
        log.info("upload cache over %d bytes: deleted the %d oldest files", max_bytes, deleted)
    prune_leftovers(cache_folder())  # its own and Gradio's sweeps delete files, not their folders
    return deleted, total


def prune_leftovers(folder: Path, stale_s: float = STALE_S) -> tuple[int, int]:
    """Remove what the sweeps leave in the cache ``folder``: hash folders left empty and zero-byte
    temporaries (``HASH_FOLDER``, ``TEMP_FILE``), each only when older than ``stale_s``. Returns
    (folders, files) removed. Nothing else is touched: only those names are considered, links
    are not followed, and a folder goes by ``rmdir``, which refuses one that holds anything."""
    now = time.time()
    folders = files = 0

    def stale_temporary(entry: os.DirEntry) -> bool:
        if not TEMP_FILE.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
            return False
        st = entry.stat(follow_symlinks=False)
        return st.st_size == 0 and now - st.st_mtime > stale_s

    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0, 0
    for entry in entries:
        try:
            if stale_temporary(entry):
                os.unlink(entry.path)
                files += 1
            elif HASH_FOLDER.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                # its age before its temporaries go (removing them makes it look new)
                stale = now - entry.stat(follow_symlinks=False).st_mtime > stale_s
                for inner in list(os.scandir(entry.path)):
                    if stale_temporary(inner):
                        os.unlink(inner.path)
                        files += 1
                if stale:
                    os.rmdir(entry.path)
                    folders += 1
        except OSError:  # not empty (rmdir refuses), gone meanwhile, unreadable: left as it is
            continue
    if folders or files:
        log.info("cache folder %s: removed %d empty hash folders and %d stale temporaries", folder, folders, files)
    return folders, files

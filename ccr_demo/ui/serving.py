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
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from PIL import Image

from ccr_demo.utils.paths import is_inside

log = logging.getLogger(__name__)


def cache_folder() -> Path:
    """Gradio's upload/cache folder (GRADIO_TEMP_DIR), which it serves and sweeps."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def _write_once(folder: Path, name: str, data: bytes) -> str:
    """``folder / sha256(data) / name``, written temp + rename unless it is already there."""
    target = folder / hashlib.sha256(data).hexdigest()[:32] / name
    if target.is_file() and target.stat().st_size == len(data):
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
    return deleted, total

"""What a gallery is built from: user items turned into records and embeddings.

``Gallery.build`` and ``Gallery.add`` accept several forms of items (a folder, image paths, PIL
images, an {id: image} mapping, captions); this module is the one place that reads them, so
both take the same forms with the same rules: ids are strings, unique, and come from the
items (a folder's relative paths, the paths as given, or numbers); metadata is a JSON-able
dict per item that may not override what the items themselves set ("path", "caption",
"thumbnail"). A folder is scanned (``scan_folder``, also what a streamed build's
``FolderSource`` walks), so a file in it that is not a readable image is skipped and counted in
one GalleryWarning; an image named explicitly that cannot be read is an error. Embeddings are
returned as float32 rows; ``normalised_rows`` is the one check-and-normalise every vector
passes before it is indexed (non-empty [N, D], finite, no all-zero row).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ccr_demo.data.errors import DataFormatError
from ccr_demo.data.images import load_image
from ccr_demo.gallery import thumbnails
from ccr_demo.gallery.errors import GalleryWarning
from ccr_demo.gallery.storage import KINDS


def _check_metadata(meta: Any, where: str) -> dict:
    if not isinstance(meta, Mapping):
        raise TypeError(f"metadata for {where} must be a dict, got {type(meta).__name__}")
    reserved = {"path", "caption", thumbnails.KEY} & set(meta)
    if reserved:
        raise ValueError(f"metadata for {where} may not set {sorted(reserved)}: they come from the items")
    try:
        json.dumps(dict(meta), ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata for {where} is not JSON-serialisable: {e}") from None
    return dict(meta)


def scan_folder(root: Path) -> tuple[list[str], list[Path]]:
    """Files under root (recursive, sorted, hidden ones left out) -> (ids = relative posix paths, paths)."""
    files = sorted(p for p in root.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    return [p.relative_to(root).as_posix() for p in files], [p.resolve() for p in files]


def collect_items(items: Any, kind: str, metadata: Any, first_id: int = 0) -> tuple[list[dict], list, bool]:
    """User items -> (records, payloads, skip_bad): one record (id, path/caption, metadata) and
    one payload (path, PIL image or caption) per item; skip_bad for folders (files found by scanning).
    Numbered ids start at ``first_id`` (``add`` continues after the gallery's rows).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    skip_bad = False
    if kind == "text":
        if isinstance(items, str) or not isinstance(items, Sequence):
            raise TypeError("a text gallery takes a list of captions")
        bad = [i for i, t in enumerate(items) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"captions must be strings; item {bad[0]} is {type(items[bad[0]]).__name__}")
        ids, payloads = [str(first_id + i) for i in range(len(items))], list(items)
        records = [{"id": i, "caption": t} for i, t in zip(ids, payloads)]
    elif isinstance(items, (str, Path)):
        root = Path(items)
        if not root.is_dir():
            raise (NotADirectoryError if root.exists() else FileNotFoundError)(
                f"{root}: not a folder of images (pass a list for single files)")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError("for a folder, pass metadata as {id: {...}} (ids are paths relative to the folder)")
        ids, payloads = scan_folder(root)
        records = [{"id": i, "path": str(p)} for i, p in zip(ids, payloads)]
        skip_bad = True
    elif isinstance(items, Mapping):
        ids, payloads = [str(k) for k in items], list(items.values())
        records = [{"id": i} for i in ids]
    elif isinstance(items, Sequence):
        payloads = list(items)
        if all(isinstance(p, Image.Image) for p in payloads):
            records = [{"id": str(first_id + i)} for i in range(len(payloads))]
        elif all(isinstance(p, (str, Path)) for p in payloads):
            records = [{"id": str(p), "path": str(Path(p).resolve())} for p in payloads]
        else:
            raise TypeError("an image gallery takes a folder, a list of image paths, a list of PIL images, "
                            "or a {id: PIL image} mapping (not a mix)")
    else:
        raise TypeError(f"cannot build an image gallery from {type(items).__name__}")
    if kind == "image" and not all(isinstance(p, (Image.Image, Path, str)) for p in payloads):
        raise TypeError("image items must be PIL images or paths")
    if not records:
        raise ValueError(f"no items to index ({items if isinstance(items, (str, Path)) else 'empty list'})")
    if metadata is not None:
        if isinstance(metadata, Mapping):
            known = {r["id"] for r in records}
            unknown = [k for k in metadata if k not in known]
            if unknown:
                raise ValueError(f"metadata names id {unknown[0]!r}, which is not among the items")
            for r in records:
                if r["id"] in metadata:
                    r.update(_check_metadata(metadata[r["id"]], f"id {r['id']!r}"))
        else:
            if len(metadata) != len(records):
                raise ValueError(f"metadata has {len(metadata)} entries for {len(records)} items")
            for i, (r, meta) in enumerate(zip(records, metadata)):
                r.update(_check_metadata(meta, f"item {i}"))
        for r in records:
            r["id"] = str(r["id"])
    return records, payloads, skip_bad


def embed_items(model, kind: str, records: list[dict], payloads: list, batch_size: int, progress: bool,
           skip_bad: bool) -> tuple[np.ndarray, list[dict]]:
    """Encode in batches with a progress bar; unreadable folder files are skipped and counted."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if kind == "text":  # chunks of similar length pad little (encode_texts sorts within a call)
        order = sorted(range(len(payloads)), key=lambda i: len(payloads[i]))
        vectors = np.empty((len(payloads), model.config.embed_dim), dtype=np.float32)
        with tqdm(total=len(payloads), unit=kind, desc="embedding texts", disable=not progress) as bar:
            for start in range(0, len(payloads), batch_size):
                rows = order[start:start + batch_size]
                vectors[rows] = model.encode_texts([payloads[i] for i in rows], batch_size=batch_size).numpy()
                bar.update(len(rows))
        return vectors, records
    out, kept, skipped = [], [], []
    with tqdm(total=len(payloads), unit=kind, desc=f"embedding {kind}s", disable=not progress) as bar:
        for start in range(0, len(payloads), batch_size):
            chunk, recs = payloads[start:start + batch_size], records[start:start + batch_size]
            images = []
            for rec, p in zip(recs, chunk):
                try:
                    images.append(p if isinstance(p, Image.Image) else load_image(p))
                    kept.append(rec)
                except DataFormatError as e:
                    if not skip_bad:
                        raise
                    skipped.append(str(e))
            if images:
                out.append(model.encode_images(images, batch_size=batch_size).numpy())
            bar.update(len(chunk))
    if skipped:
        warnings.warn(f"skipped {len(skipped)} file(s) that are not readable images, e.g. {skipped[0]}",
                      GalleryWarning, stacklevel=3)
    if not kept:
        raise ValueError(f"no readable images among {len(payloads)} files (e.g. {skipped[0]})")
    return np.concatenate(out), kept


def normalised_rows(vectors: Any) -> np.ndarray:
    """vectors [N, D] (numpy or torch) as C-contiguous float32 rows of unit L2 norm; ValueError for
    an empty array, NaN/inf or an all-zero row (which has no direction to normalise)."""
    v = vectors.detach().cpu().numpy() if isinstance(vectors, torch.Tensor) else np.asarray(vectors)
    if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] == 0:
        raise ValueError(f"vectors must be a non-empty [N, D] array, got shape {v.shape}")
    v = v.astype(np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    if not np.isfinite(norms).all() or (norms == 0).any():
        raise ValueError("vectors contain NaN, inf or all-zero rows")
    return np.ascontiguousarray(v / norms)

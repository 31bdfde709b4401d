"""Gallery: a FAISS index over L2-normalised embeddings, its items, and the model that made them.

Why FAISS: exact inner-product search ("Flat") is right up to ~1e5 items; "HNSW32" and
"IVF{n},PQ{m}" keep queries fast at 1e6 (docs/bench_index.md). Why keep ``vectors.npy`` beside the index: an ANN
index only proposes candidates (PQ scores are approximate), while the stored float32 vectors
give the exact score of any item, so every result gets an exact score and every returned item
its exact rank under each query language -- the per-instance consistency the paper's MRV
measures (PAPER.md).

Rows, not string ids, are what searches return: ``search`` gives int64 row numbers into
``gallery.items`` / ``gallery.vectors`` (-1 where an ANN index found fewer than k), and
``gallery.ids[row]`` is the item's id. Rows are stable: ``add`` only appends, and FAISS numbers
vectors in the order they are added, so a row is the index's own id (no IndexIDMap needed).

A saved gallery is a folder, written atomically (a crash mid-save leaves the old one intact)::

    gallery.json   format version, kind, count, embed_dim, model_fingerprint, index_factory,
                   search_params, rerank, metric, created_with versions
    index.faiss    faiss.write_index of the index; not written for "Flat", whose index is
                   nothing but vectors.npy again (it is rebuilt from it on load)
    vectors.npy    [count, embed_dim], L2-normalised, row = position; float32, or float16 when
                   built with ``vectors_dtype="float16"`` (half the disk and RAM; gallery.json's
                   "vectors_dtype" says which, and such galleries have format_version 2 so that
                   older readers refuse them with "upgrade ccr_demo")
    items.jsonl    one JSON object per row: "id", then "path" (images from files; relative to the
                   gallery folder when the file lies under the folder's parent), "thumbnail"
                   (images that had no file, e.g. base64 rows: see ccr_demo.gallery.thumbnails),
                   "caption" (text galleries), and any metadata given at build time (e.g.
                   "language", "image_id")
    thumbnails/    JPEG thumbnails the items' "thumbnail" names (only when a build wrote some)

Galleries larger than memory: ``Gallery.load(dir, model, mmap=True)`` memory-maps vectors.npy,
reads the faiss index with faiss's own mmap flags and items.jsonl line by line on demand; a
Flat gallery then has no faiss index at all, its top-k and exact ranks come from one chunked
pass over the mapped vectors (``ccr_demo.gallery.storage``). Such a gallery is read-only.

Command line: ``python -m ccr_demo.gallery build|info|search`` (``ccr_demo.gallery.cli``).
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import faiss
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ccr_demo import __version__
from ccr_demo.data.formats import DataFormatError, load_image
from ccr_demo.gallery import thumbnails
from ccr_demo.gallery.storage import ItemsFile, check_dtype, check_vectors, chunks, rows_f32, sha256
from ccr_demo.model.fingerprint import check_finite, scan_weights, weights_fingerprint
from ccr_demo.utils.fileio import atomic_directory

# 1: float32 vectors.npy; 2: vectors.npy may be float16 ("vectors_dtype"). float32 galleries are
# still written as 1, so older ccr_demo versions keep reading them.
FORMAT_VERSION = 2
INFO_NAME, INDEX_NAME, VECTORS_NAME, ITEMS_NAME = "gallery.json", "index.faiss", "vectors.npy", "items.jsonl"
KINDS = ("image", "text")
# rank_of scores this many (query x item) pairs per block: 2**24 floats = 64 MB (twice that while sorting).
_RANK_BLOCK = 1 << 24
# Factories whose codes are lossy: fetch rerank x k candidates, rescore them exactly.
_LOSSY = re.compile(r"PQ|SQ|LSH|RQ")


class GalleryError(ValueError):
    """A gallery file is corrupt or inconsistent, or does not belong to the given model."""


class GalleryWarning(UserWarning):
    """Items were skipped while building (e.g. files in a folder that are not images)."""


# ----------------------------------------------------------------------------- exact ranks


def _count_higher(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """scores [B, N], targets [B, M] taken from the same rows -> [B, M] int64: for each target,
    how many of its row's N scores are strictly higher (ties count in the target's favour).

    Each row is sorted once (numpy's SIMD sort: ~50 ms for 6 x 1e6 scores) and every target is
    found in it by one batched binary search, so the cost does not depend on how low the
    targets rank, and comparisons stay exact float32 ones. No Python loop over queries.
    """
    ordered = torch.from_numpy(np.sort(scores.numpy(), axis=1))
    return scores.shape[1] - torch.searchsorted(ordered, targets.contiguous(), right=True)


def _scan_top(q: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    """Rows [Q, k] of the k best exact scores (any order), from one chunked pass keeping a running
    top-k per query: memory Q x (k + chunk), for memory-mapped Flat galleries of any size."""
    best_s = np.full((len(q), 0), -np.inf, np.float32)
    best_r = np.zeros((len(q), 0), np.int64)
    for start, chunk in chunks(vectors):
        s = np.concatenate([best_s, q @ chunk.T], axis=1)
        r = np.concatenate([best_r, np.broadcast_to(np.arange(start, start + len(chunk)), (len(q), len(chunk)))], 1)
        if s.shape[1] > k:
            keep = np.argpartition(-s, k - 1, axis=1)[:, :k]
            s, r = np.take_along_axis(s, keep, 1), np.take_along_axis(r, keep, 1)
        best_s, best_r = s, r
    return best_r


@dataclass
class TextSearchResult:
    """Per-language top-k, plus every returned item's exact score and rank under every language.

    Row l of ``scores`` / ``positions`` / ``item_scores`` / ``item_ranks`` is ``languages[l]``.
    ``item_ranks[l, j]`` = how many gallery items score strictly higher than item ``items[j]``
    for the language-l query (0 = top); ``None`` when ``exact_ranks=False`` on an ANN gallery.
    """

    languages: list[str]
    query_emb: np.ndarray  # [L, D]
    scores: np.ndarray  # [L, k] exact scores, best first
    positions: np.ndarray  # [L, k] gallery rows (-1: the ANN index found fewer than k)
    items: np.ndarray  # [M] union of the returned rows, ascending
    item_scores: np.ndarray  # [L, M]
    item_ranks: np.ndarray | None  # [L, M]

    def __getitem__(self, language: str) -> tuple[np.ndarray, np.ndarray]:
        """(scores [k], positions [k]) for one language."""
        i = self.languages.index(language)
        return self.scores[i], self.positions[i]


# ------------------------------------------------------------------------------ inputs


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


def _scan_folder(root: Path) -> tuple[list[str], list[Path]]:
    """Files under root (recursive, sorted, hidden ones left out) -> (ids = relative posix paths, paths)."""
    files = sorted(p for p in root.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    return [p.relative_to(root).as_posix() for p in files], [p.resolve() for p in files]


def _collect(items: Any, kind: str, metadata: Any, first_id: int = 0) -> tuple[list[dict], list, bool]:
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
        ids, payloads = _scan_folder(root)
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


def _embed(model, kind: str, records: list[dict], payloads: list, batch_size: int, progress: bool,
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


def _normalised(vectors: Any) -> np.ndarray:
    v = vectors.detach().cpu().numpy() if isinstance(vectors, torch.Tensor) else np.asarray(vectors)
    if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] == 0:
        raise ValueError(f"vectors must be a non-empty [N, D] array, got shape {v.shape}")
    v = v.astype(np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    if not np.isfinite(norms).all() or (norms == 0).any():
        raise ValueError("vectors contain NaN, inf or all-zero rows")
    return np.ascontiguousarray(v / norms)


# ------------------------------------------------------------------------------- index


def _min_training_points(index: faiss.Index) -> tuple[int, str]:
    """How many vectors faiss's k-means needs to train this index, and why."""
    need, why = 1, []
    try:
        ivf = faiss.extract_index_ivf(index)
        need, inner = ivf.nlist, faiss.downcast_index(ivf)
        why.append(f"{ivf.nlist} IVF lists")
    except RuntimeError:
        inner = faiss.downcast_index(index)
    pq = getattr(inner, "pq", None)
    if pq is not None and pq.ksub > need:
        need = pq.ksub
        why.append(f"{pq.ksub} centroids per PQ sub-quantizer")
    return need, " and ".join(why) or "training"


def _default_search_params(index: faiss.Index) -> str:
    """nprobe = nlist/8 (8 at least) for IVF, efSearch = 128 for HNSW: on 1e5 random vectors
    these find a planted near-duplicate ~90-95% of the time (nlist/16 or faiss's efSearch=16-64:
    74-83%), and cost ~1 ms per query, small next to encoding the query text."""
    try:
        nlist = faiss.extract_index_ivf(index).nlist
        return f"nprobe={min(nlist, max(8, nlist // 8))}"
    except RuntimeError:
        pass
    return "efSearch=128" if hasattr(faiss.downcast_index(index), "hnsw") else ""


def _skip_polysemous_training(index: faiss.Index) -> None:
    """index_factory turns on polysemous training for "PQ" codes (unless the string ends in "np");
    searches here never use the Hamming filter it trains, and it made IVF-PQ builds ~20x slower
    with identical recall (5k real vectors: IVF64,PQ32 built in 722 s, IVF64,PQ32np in 29 s;
    bench/bench_ann_recall.py, docs/bench_ann_recall.md as of commit 8b1811e)."""
    try:
        inner = faiss.downcast_index(faiss.extract_index_ivf(index))
    except RuntimeError:
        inner = faiss.downcast_index(index)
    if getattr(inner, "do_polysemous_training", False):
        inner.do_polysemous_training = False


def _make_index(vectors: np.ndarray, spec: str, train_size: int | None) -> faiss.Index:
    n, d = vectors.shape
    try:
        index = faiss.index_factory(d, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise ValueError(f"index_factory {spec!r} is not a valid faiss factory string for dim {d}: "
                         f"{str(e).strip().splitlines()[-1]}") from None
    _skip_polysemous_training(index)
    if not index.is_trained:
        need, why = _min_training_points(index)
        if n < need:
            raise ValueError(
                f"index_factory {spec!r} needs at least {need} vectors to train ({why}); this gallery has {n}. "
                f"Use 'Flat' (exact, fine up to ~1e5 items), 'HNSW32' (no training) or fewer IVF lists")
        size = min(n, train_size or 40 * need)
        sample = vectors if size == n else vectors[np.sort(np.random.default_rng(0).choice(n, size, replace=False))]
        try:
            index.train(sample)
        except RuntimeError as e:
            raise ValueError(f"training index {spec!r} on {size} vectors failed: {str(e).strip()}") from None
    index.add(vectors)
    return index


# ----------------------------------------------------------------------------- gallery


class Gallery:
    """Embedded items (images or captions) of one model, searchable by inner product.

    Build with ``Gallery.build(model, items)`` or ``Gallery.from_vectors(vectors)``;
    ``save(dir)`` / ``load(dir, model)``; ``search`` / ``search_texts`` / ``rank_of``.

    ``vectors`` is float32 [count, D] in memory (a float16 gallery's values upcast), or, for a
    gallery loaded with ``mmap=True``, the memory-mapped vectors.npy in its stored dtype; then
    ``index`` is None for Flat (exact search is a chunked pass over ``vectors``) and ``items``
    an ``ItemsFile`` that parses one line per access.
    """

    def __init__(self, index: faiss.Index | None, vectors: np.ndarray, items: Sequence[dict], *, kind: str,
                 index_factory: str, fingerprint: str | None, search_params: str, rerank: int,
                 build: dict | None = None, vectors_dtype: str = "float32"):
        self.index, self.vectors, self.items = index, vectors, items
        self.vectors_dtype = check_dtype(vectors_dtype)
        # how the gallery was built (processes, shards, images/s, ...), saved in gallery.json
        self.build = build
        self.kind, self.index_factory, self.fingerprint = kind, index_factory, fingerprint
        self.rerank = rerank
        self.search_params = ""
        self.set_search_params(search_params)
        self._positions: dict[str, int] | None = None
        # the folder the items' "thumbnail" names are relative to (the gallery folder once saved
        # or loaded; a build's work folder before); its thumbnails/ is saved with the gallery.
        # Loaded galleries also allow the image roots given to load (see ccr_demo.gallery.thumbnails).
        self.thumbnail_root: Path | None = None
        self.thumbnail_roots: list[Path] | None = None

    # --------------------------------------------------------------- construction
    @classmethod
    def build(cls, model, items, kind: str = "image", index_factory: str = "Flat", batch_size: int = 64,
              progress: bool = True, metadata: Sequence[Mapping] | Mapping[str, Mapping] | None = None,
              **index_kwargs) -> "Gallery":
        """Embed ``items`` with ``model`` and index them.

        items, for kind="image": a folder (scanned recursively, hidden files left out; files that
        are not readable images are skipped with one counted GalleryWarning; id = path relative to
        the folder), a list of image paths (an unreadable one is an error; id = the path as given),
        a list of PIL images (id = "0", "1", ...) or a {id: PIL image} mapping. For kind="text": a
        list of captions (id = "0", "1", ...). ``metadata``: one dict per item (a list aligned with
        items, or {id: dict}) merged into each item's record, e.g. {"id": ..., "language": "de",
        "image_id": ...}; ids must be unique. ``index_kwargs`` go to ``from_vectors``.
        """
        records, payloads, skip_bad = _collect(items, kind, metadata)
        vectors, records = _embed(model, kind, records, payloads, batch_size, progress, skip_bad)
        return cls.from_vectors(vectors, [r.pop("id") for r in records], metadata=records, kind=kind,
                                index_factory=index_factory, fingerprint=weights_fingerprint(model), **index_kwargs)

    @classmethod
    def from_vectors(cls, vectors, ids: Sequence[str] | None = None, *, metadata: Sequence[Mapping] | None = None,
                     kind: str = "image", index_factory: str = "Flat", fingerprint: str | None = None,
                     search_params: str | None = None, rerank: int | None = None,
                     train_size: int | None = None, vectors_dtype: str = "float32") -> "Gallery":
        """Index precomputed vectors [N, D] (rows are L2-normalised here).

        IVF/PQ factories are trained first on a random sample (seed 0) of ``train_size`` vectors,
        default 40 x (IVF lists or PQ centroids), just above the 39 per centroid below which faiss
        warns (k-means is slow on small CPUs; pass more for better clusters); too few vectors is a
        ValueError saying how many are needed. ``search_params`` (a faiss ParameterSpace string,
        e.g. "nprobe=32" or "efSearch=256") defaults to nprobe = nlist/8 (>= 8) for IVF and
        efSearch = 128 for HNSW.
        ``rerank``: candidates fetched per result and rescored exactly; default 4 for lossy codes
        (PQ/SQ in the factory string), else 1. ``fingerprint`` None: a gallery of raw vectors, whose
        ``load`` / ``search_texts`` check only the embedding size.
        ``vectors_dtype="float16"`` stores the rows rounded to float16 (vectors.npy half the size;
        scores move by ~1e-3); the index and every score then use those rounded values, so the
        gallery gives the same results in memory and memory-mapped (``load(..., mmap=True)``).
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        v = _normalised(vectors)
        if check_dtype(vectors_dtype) != "float32":
            v = v.astype(vectors_dtype).astype(np.float32)
        items = cls._records(len(v), ids, metadata)
        if rerank is None:
            rerank = 4 if _LOSSY.search(index_factory.upper()) else 1
        if rerank < 1:
            raise ValueError(f"rerank must be >= 1, got {rerank}")
        index = _make_index(v, index_factory, train_size)
        return cls(index, v, items, kind=kind, index_factory=index_factory, fingerprint=fingerprint,
                   search_params=_default_search_params(index) if search_params is None else search_params,
                   rerank=rerank, vectors_dtype=vectors_dtype)

    @staticmethod
    def _records(n: int, ids: Sequence[str] | None, metadata: Sequence[Mapping] | None,
                 taken: set[str] | frozenset = frozenset()) -> list[dict]:
        ids = [str(i) for i in range(len(taken), len(taken) + n)] if ids is None else [str(i) for i in ids]
        if len(ids) != n or (metadata is not None and len(metadata) != n):
            raise ValueError(f"{n} vectors but {len(ids)} ids and {n if metadata is None else len(metadata)} "
                             "metadata entries")
        seen = set(taken)
        for i in ids:
            if i in seen:
                where = "is already in the gallery" if i in taken else "appears twice"
                raise ValueError(f"id {i!r} {where}: ids must be unique (put a shared key such as the gold "
                                 "image in another metadata field, e.g. 'image_id')")
            seen.add(i)
        meta = metadata if metadata is not None else [{}] * n
        return [{"id": i, **{k: v for k, v in m.items() if k != "id"}} for i, m in zip(ids, meta)]

    def set_search_params(self, params: str) -> None:
        """Apply faiss search parameters ("nprobe=64", "efSearch=128"); saved with the gallery."""
        if params:
            try:
                faiss.ParameterSpace().set_index_parameters(self.index, params)
            except RuntimeError as e:
                raise ValueError(f"search_params {params!r} do not apply to index {self.index_factory!r}: "
                                 f"{str(e).strip().splitlines()[-1]}") from None
        self.search_params = params

    # --------------------------------------------------------------- growth
    def add(self, model, items, *, batch_size: int = 64, progress: bool = True,
            metadata: Sequence[Mapping] | Mapping[str, Mapping] | None = None) -> np.ndarray:
        """Embed and append items (same forms as ``build``) without a rebuild -> their new rows.

        Flat and HNSW take new vectors directly; IVF/PQ encode them with the already trained
        quantizers (retrain by building anew if the new items differ much from the old).
        """
        self._check_writable()
        _check_model(model, self.fingerprint, self.embed_dim)
        records, payloads, skip_bad = _collect(items, self.kind, metadata, first_id=self.count)
        vectors, records = _embed(model, self.kind, records, payloads, batch_size, progress, skip_bad)
        return self.add_vectors(vectors, [r.pop("id") for r in records], metadata=records)

    def add_vectors(self, vectors, ids: Sequence[str] | None = None, *,
                    metadata: Sequence[Mapping] | None = None) -> np.ndarray:
        """Append precomputed vectors [N, D] -> their new rows. Ids default to their row numbers."""
        self._check_writable()
        v = _normalised(vectors)
        if v.shape[1] != self.embed_dim:
            raise ValueError(f"vectors have dim {v.shape[1]}, the gallery {self.embed_dim}")
        if self.vectors_dtype != "float32":
            v = v.astype(self.vectors_dtype).astype(np.float32)
        records = self._records(len(v), ids, metadata, taken=set(self.ids))
        start = self.count
        self.index.add(v)
        self.vectors = np.concatenate([self.vectors, v])
        self.items.extend(records)
        self._positions = None
        return np.arange(start, self.count)

    @property
    def mapped(self) -> bool:
        """Loaded with ``mmap=True``: vectors (and the index's data) stay on disk; read-only."""
        return isinstance(self.vectors, np.memmap)

    def _check_writable(self) -> None:
        if self.mapped:
            raise GalleryError(f"this gallery is memory-mapped from {self.vectors.filename} (loaded with mmap=True) "
                               "and read-only: load it without mmap to add items, or build a new gallery")

    # --------------------------------------------------------------- properties
    @property
    def count(self) -> int:
        return len(self.items)

    def __len__(self) -> int:
        return self.count

    @property
    def embed_dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.items]

    def position(self, item_id: str) -> int:
        """Row of an item id (KeyError naming it if absent)."""
        if self._positions is None:
            self._positions = {r["id"]: i for i, r in enumerate(self.items)}
        try:
            return self._positions[str(item_id)]
        except KeyError:
            raise KeyError(f"no item with id {item_id!r} in this gallery") from None

    def image_file(self, row: int) -> str | None:
        """A file showing row's image: its own image file when it still exists, else its thumbnail."""
        item = self.items[row]
        path = item.get("path")
        if path and Path(path).is_file():
            return path
        return thumbnails.resolve(item.get(thumbnails.KEY), self.thumbnail_root, self.thumbnail_roots)

    def __repr__(self) -> str:
        return (f"Gallery({self.count} {self.kind}s, dim {self.embed_dim}, {self.index_factory!r}, "
                f"model {self.fingerprint})")

    # --------------------------------------------------------------- search
    def _queries(self, query_emb) -> np.ndarray:
        q = query_emb.detach().cpu().numpy() if isinstance(query_emb, torch.Tensor) else np.asarray(query_emb)
        if q.ndim != 2:
            hint = " (use q[None] for a single query)" if q.ndim == 1 else ""
            raise ValueError(f"query_emb must be [Q, D]; got shape {q.shape}{hint}")
        if q.shape[1] != self.embed_dim:
            raise ValueError(f"queries have dim {q.shape[1]} but the gallery's embeddings have dim {self.embed_dim}: "
                             "embed queries with the model that built the gallery")
        if q.shape[0] == 0:
            raise ValueError("query_emb has no rows")
        q = np.ascontiguousarray(q, dtype=np.float32)
        if not np.isfinite(q).all():
            raise ValueError("query_emb contains NaN or inf")
        return q

    def _k(self, k) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be an integer, got {k!r}")
        if k <= 0:
            raise ValueError(f"k must be >= 1, got {k}")
        return min(int(k), self.count)

    def _candidates(self, q: np.ndarray, k: int) -> np.ndarray:
        """One index search: rows [Q, min(count, k x rerank)], -1 where the index found fewer.
        A memory-mapped Flat gallery has no index: its exact top-k comes from one chunked pass."""
        if self.index is None:
            return _scan_top(q, self.vectors, k)
        return self.index.search(q, min(self.count, k * self.rerank))[1]

    def _scores(self, q: np.ndarray) -> torch.Tensor:
        """Exact scores [Q, count] of every stored vector, from one chunked pass (``gallery_store.chunks``):
        the same arithmetic in memory and memory-mapped, Q x count float32 of memory."""
        full = torch.empty((len(q), self.count), dtype=torch.float32)
        qt = torch.from_numpy(q)
        for start, chunk in chunks(self.vectors):
            full[:, start:start + len(chunk)] = qt @ torch.from_numpy(chunk).T
        return full

    @staticmethod
    def _top(scores: np.ndarray, positions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = np.where(positions >= 0, scores, -np.inf).astype(np.float32)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(positions, order, 1)

    def search(self, query_emb, k: int) -> tuple[np.ndarray, np.ndarray]:
        """query_emb [Q, D] -> (scores [Q, k'], rows [Q, k']) best first, k' = min(k, count).

        Scores are exact inner products with the stored vectors (the index only picks the
        candidates; a memory-mapped gallery reads just those rows); rows are -1 with score -inf
        where an ANN index found fewer than k'.
        """
        q, k = self._queries(query_emb), self._k(k)
        pos = self._candidates(q, k)
        vec = rows_f32(self.vectors, np.maximum(pos, 0))  # [Q, C, D]
        return self._top(np.matmul(vec, q[:, :, None])[..., 0], pos, k)

    def rank_of(self, query_emb, item_positions, return_scores: bool = False):
        """Exact rank of given items for each query: [Q, M] int64, the number of gallery items
        with a strictly higher score (0 = top; ties count in the item's favour).

        ``item_positions``: rows [M] (the same items for every query) or [Q, M]. Costs one exact
        pass over all stored vectors, O(Q x count x D) (~0.4 s for 6 queries x 1e6 x 256 on 2 CPU
        cores), in query blocks of at most 2**24 scores (a memory-mapped gallery is read once per
        block). With ``return_scores`` also the exact scores [Q, M] the ranks were computed from.
        """
        q = self._queries(query_emb)
        pos = np.asarray(item_positions)
        if pos.ndim == 1:
            pos = np.broadcast_to(pos, (len(q), len(pos)))
        if pos.ndim != 2 or pos.shape[0] != len(q) or not np.issubdtype(pos.dtype, np.integer):
            raise ValueError(f"item_positions must be integer rows [M] or [Q={len(q)}, M], got {pos.shape} {pos.dtype}")
        if pos.size and (pos.min() < 0 or pos.max() >= self.count):
            raise ValueError(f"item_positions must lie in [0, {self.count}), got {pos.min()}..{pos.max()}")
        block = max(1, _RANK_BLOCK // self.count)
        scores, ranks = [], []
        for s in range(0, len(q), block):
            full = self._scores(q[s:s + block])
            t = full.gather(1, torch.tensor(pos[s:s + block], dtype=torch.int64))
            scores.append(t)
            ranks.append(_count_higher(full, t))
        ranks_np = torch.cat(ranks).numpy()
        return (ranks_np, torch.cat(scores).numpy()) if return_scores else ranks_np

    def search_with_ranks(self, query_emb, k: int, languages: Sequence[str] | None = None,
                          exact_ranks: bool = True) -> TextSearchResult:
        """The query rows (one per language) in one search, then exact scores and ranks of the
        union of returned items under every language.

        Flat: one exact pass over the stored vectors gives top-k, scores and ranks together.
        ANN: one index search for the candidates, then (with ``exact_ranks``) one exact pass over
        the stored vectors, O(L x count x D): at 1e6 x 256 on 2 cores it turns a ~20 ms IVF-PQ
        search into ~0.4 s (docs/bench_index.md); ``exact_ranks=False`` skips it (item_ranks None).
        The pass holds the [L, count] float32 scores (240 MB for 6 languages x 1e7 items), never
        a float32 copy of the vectors (docs/bench_mmap.md).
        """
        q, k = self._queries(query_emb), self._k(k)
        languages = list(languages) if languages is not None else [str(i) for i in range(len(q))]
        if len(languages) != len(q):
            raise ValueError(f"{len(languages)} languages for {len(q)} query rows")
        full = self._scores(q) if (self._flat or exact_ranks) else None
        if self._flat:
            top = full.topk(k, dim=1)
            scores, positions = top.values.numpy(), top.indices.numpy()
        else:
            cand = self._candidates(q, k)
            if full is not None:
                exact = full.gather(1, torch.from_numpy(np.maximum(cand, 0))).numpy()
            else:
                exact = np.matmul(rows_f32(self.vectors, np.maximum(cand, 0)), q[:, :, None])[..., 0]
            scores, positions = self._top(exact, cand, k)
        items = np.unique(positions[positions >= 0])
        if full is not None:
            t = full[:, torch.from_numpy(items)]
            item_scores, item_ranks = t.numpy(), _count_higher(full, t).numpy()
        else:
            item_scores, item_ranks = q @ rows_f32(self.vectors, items).T, None
        return TextSearchResult(languages, q, scores, positions, items, item_scores, item_ranks)

    def search_texts(self, model, queries: Mapping[str, str], k: int, exact_ranks: bool = True) -> TextSearchResult:
        """{language: text} -> per-language results; ALL texts go through ONE model.encode_texts
        call and ONE search (see ``search_with_ranks`` for the rank computation and its cost)."""
        if not isinstance(queries, Mapping) or not queries:
            raise ValueError("queries must be a non-empty {language: text} mapping")
        bad = [lang for lang, t in queries.items() if not isinstance(t, str)]
        if bad:
            raise TypeError(f"query for {bad[0]!r} is not a string")
        _check_model(model, self.fingerprint, self.embed_dim)
        emb = model.encode_texts(list(queries.values()))
        return self.search_with_ranks(emb, k, languages=list(queries), exact_ranks=exact_ranks)

    @property
    def _flat(self) -> bool:
        return self.index is None or isinstance(faiss.downcast_index(self.index), faiss.IndexFlat)

    # --------------------------------------------------------------- save / load
    def info(self) -> dict:
        return {
            "format_version": 1 if self.vectors_dtype == "float32" else 2,
            "kind": self.kind,
            "count": self.count,
            "embed_dim": self.embed_dim,
            "model_fingerprint": self.fingerprint,
            "index_factory": self.index_factory,
            "search_params": self.search_params,
            "rerank": self.rerank,
            "metric": "inner_product",
            "vectors_dtype": self.vectors_dtype,
            "created_with": {"ccr_demo": __version__, "faiss": faiss.__version__},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **({"build": self.build} if self.build else {}),
        }

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the gallery folder atomically (see the module docstring for its files).

        An existing ``directory`` is replaced only when it is a gallery (nothing in it but
        gallery files); anything else (a folder holding other files, a regular file) is a
        FileExistsError unless ``overwrite=True``.
        """
        directory = Path(directory).absolute()
        problem = replace_problem(directory)
        if problem and not overwrite:
            raise FileExistsError(f"{directory} {problem}: not replacing it (choose another folder, or pass "
                                  "overwrite=True / --overwrite to replace it and lose what it holds)")
        with atomic_directory(directory) as tmp:
            if not self._flat:
                faiss.write_index(self.index, str(tmp / INDEX_NAME))
            _write_vectors(tmp / VECTORS_NAME, self.vectors, self.vectors_dtype)
            _write_items(tmp / ITEMS_NAME, self.items, directory)
            self._save_thumbnails(tmp)
            info = self.info()
            info["sha256"] = {name: sha256(tmp / name) for name in (VECTORS_NAME, ITEMS_NAME)}
            (tmp / INFO_NAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if self.thumbnail_root is not None:
            self.thumbnail_root, self.thumbnail_roots = directory, None
        return directory

    def _save_thumbnails(self, tmp: Path) -> None:
        """Copy the thumbnails into the gallery being written. One an item names that is not
        copied but could be shown is a GalleryError (and the folder being replaced stays as it
        was); one already missing, or leading out of the allowed folders, stays missing."""
        copied: set[str] = set()
        if self.thumbnail_root is not None and (self.thumbnail_root / thumbnails.FOLDER).is_dir():
            copied = thumbnails.copy_folder(self.thumbnail_root / thumbnails.FOLDER, tmp / thumbnails.FOLDER,
                                            self.thumbnail_roots)
        for r in self.items:
            name = r.get(thumbnails.KEY)
            if name is not None and name not in copied and (
                    self.thumbnail_root is None
                    or thumbnails.resolve(name, self.thumbnail_root, self.thumbnail_roots) is not None):
                where = ("no thumbnails folder is attached (set gallery.thumbnail_root to the folder holding "
                         f"{thumbnails.FOLDER}/)" if self.thumbnail_root is None else
                         f"it is not a file in {self.thumbnail_root / thumbnails.FOLDER}")
                raise GalleryError(f"item {r['id']!r} names the thumbnail {name!r} but {where}: not saving a "
                                   "gallery whose thumbnails would be missing")

    @staticmethod
    def read_info(directory: str | Path) -> dict:
        """gallery.json, checked (no model needed; what ``info`` prints)."""
        path = Path(directory) / INFO_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: {directory} is not a saved gallery")
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise GalleryError(f"{path} is not valid JSON: {e}") from None
        keys = {"format_version", "kind", "count", "embed_dim", "model_fingerprint", "index_factory"}
        if not isinstance(info, dict) or not keys <= set(info):
            raise GalleryError(f"{path} is not a gallery description (needs keys {sorted(keys)})")
        for key in ("format_version", "count", "embed_dim"):
            if isinstance(info[key], bool) or not isinstance(info[key], int) or info[key] < 0:
                raise GalleryError(f"{path}: {key} must be a non-negative integer, got {info[key]!r}")
        if info["format_version"] > FORMAT_VERSION:
            raise GalleryError(f"{path} has format_version {info['format_version']}; this ccr_demo reads up to "
                               f"{FORMAT_VERSION}: upgrade ccr_demo")
        if info["kind"] not in KINDS:
            raise GalleryError(f"{path}: kind must be one of {KINDS}, got {info['kind']!r}")
        if not isinstance(info["index_factory"], str):
            raise GalleryError(f"{path}: index_factory must be a string, got {info['index_factory']!r}")
        dtype = info.setdefault("vectors_dtype", "float32")
        if dtype not in ("float32", "float16"):
            raise GalleryError(f"{path}: vectors_dtype must be 'float32' or 'float16', got {dtype!r}")
        return info

    @classmethod
    def load(cls, directory: str | Path, model=None, *,
             image_root: str | Path | Sequence[str | Path] | None = None,
             mmap: bool = False, verify: bool = True) -> "Gallery":
        """Read a saved gallery and check it; with ``model``, refuse it unless it is the model that
        built it (same weights fingerprint and embedding size) and its weights are finite.
        ``model=None`` skips that check: for searching with precomputed embeddings only.

        Checked on load (each a GalleryError naming the file and the problem): every item path
        resolves (symlinks followed) inside the gallery folder or ``image_root`` (one folder or
        several: where the gallery's images may lie); ids are unique; every vector is finite and
        of unit norm; items.jsonl and vectors.npy match the checksums gallery.json records
        (galleries written before checksums were recorded skip that last check).

        ``mmap=True``: for galleries larger than memory. vectors.npy is memory-mapped, never read
        whole; the faiss index is read with ``faiss.IO_FLAG_MMAP`` (IVF: its inverted lists stay in
        the file, as faiss's read-only OnDiskInvertedLists) or ``IO_FLAG_MMAP_IFC`` (other index
        types: their codes stay in the file); items.jsonl is read line by line on demand. The
        checks above stream through the files in chunks (memory stays flat) but still read every
        byte and parse every item (load times: docs/bench_mmap.md). ``verify=False`` skips the two
        whole-file checks of vectors.npy (checksum, unit norms) and of items.jsonl (checksum,
        unique ids); each item's record and path are then still checked when it is read. Use it
        only for galleries you wrote yourself. The gallery is read-only (``add`` refuses).
        """
        directory = Path(directory)
        info = cls.read_info(directory)
        if model is not None:
            _check_model(model, info["model_fingerprint"], info["embed_dim"], str(directory))
        flat = info["index_factory"] == "Flat"
        for name in (VECTORS_NAME, ITEMS_NAME) if flat else (INDEX_NAME, VECTORS_NAME, ITEMS_NAME):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory / name} is missing: the gallery is incomplete, rebuild it")
        try:
            vectors = np.load(directory / VECTORS_NAME, allow_pickle=False, mmap_mode="r" if mmap else None)
        except (ValueError, OSError, EOFError) as e:
            raise GalleryError(f"{directory / VECTORS_NAME} is not a readable .npy array: {e}") from None
        n, d, dtype = info["count"], info["embed_dim"], info["vectors_dtype"]
        bad_vectors = vectors.shape != (n, d) or vectors.dtype != np.dtype(dtype)
        if not mmap and not bad_vectors and dtype != "float32":
            vectors = vectors.astype(np.float32)  # in memory, float16 values are kept upcast
        if flat and mmap:
            index = None
        elif flat:
            index = faiss.IndexFlatIP(int(d))
            if not bad_vectors:
                index.add(vectors)
        else:
            index = _read_index(directory / INDEX_NAME, info["index_factory"], d, mmap)
        roots = [directory] + ([] if image_root is None else
                               [image_root] if isinstance(image_root, (str, Path)) else list(image_root))
        roots = [Path(r).resolve() for r in roots]
        if mmap:
            items = ItemsFile(directory / ITEMS_NAME, _record_checker(directory, roots), validate=verify,
                              error=GalleryError)
        else:
            items = _read_items(directory / ITEMS_NAME, directory, roots)
        index_shape = (n, d) if index is None else (index.ntotal, index.d)
        problems = [f"{what} has {got}" for what, got in (
            (VECTORS_NAME, f"shape {vectors.shape} {vectors.dtype}" if bad_vectors else None),
            (INDEX_NAME, f"{index_shape[0]} vectors of dim {index_shape[1]}" if index_shape != (n, d) else None),
            (ITEMS_NAME, f"{len(items)} items" if len(items) != n else None)) if got]
        if problems:
            raise GalleryError(f"{directory}: {INFO_NAME} says {n} {dtype} items of dim {d}, but "
                               + "; ".join(problems))
        if verify or not mmap:
            sums = info.get("sha256") or {}
            for name in (VECTORS_NAME, ITEMS_NAME):
                if name in sums and sha256(directory / name) != sums[name]:
                    raise GalleryError(f"{directory / name} does not match the sha256 that {INFO_NAME} records: it "
                                       "was edited, reordered or corrupted after the gallery was written; rebuild "
                                       "the gallery")
            check_vectors(vectors, directory / VECTORS_NAME, GalleryError)
        gallery = cls(index, vectors, items, kind=info["kind"], index_factory=info["index_factory"],
                      fingerprint=info["model_fingerprint"], search_params=info.get("search_params", ""),
                      rerank=int(info.get("rerank", 1)), vectors_dtype=dtype,
                      build=info["build"] if isinstance(info.get("build"), dict) else None)
        gallery.thumbnail_root, gallery.thumbnail_roots = directory.resolve(), roots
        return gallery


def _read_index(path: Path, factory: str, dim: int, mmap: bool) -> faiss.Index:
    """faiss.read_index; with ``mmap`` the index data stays in the file: IVF indexes get faiss's
    IO_FLAG_MMAP (inverted lists as read-only OnDiskInvertedLists over the file, as
    ``faiss.contrib.ondisk`` reads shards), others IO_FLAG_MMAP_IFC (flat codes, e.g. HNSW's
    storage, mapped in place). The two cannot be combined (faiss 1.15: the IVF mapping needs a
    plain file reader), so the factory string decides, through an empty index built from it."""
    flags = 0
    if mmap:
        try:
            faiss.extract_index_ivf(faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT))
            flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
        except RuntimeError:  # not an IVF index (or a factory faiss cannot parse: read it and see)
            flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY
    try:
        return faiss.read_index(str(path), flags)
    except RuntimeError as e:
        raise GalleryError(f"{path} is not a readable faiss index: {str(e).strip().splitlines()[-1]}") from None


def _write_vectors(path: Path, vectors: np.ndarray, dtype: str) -> None:
    """vectors.npy in the gallery's dtype, converted chunk by chunk (no full-size copy)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=vectors.shape)
    for start, chunk in chunks(vectors):
        out[start:start + len(chunk)] = chunk
    out.flush()
    del out


GALLERY_FILES = frozenset({INFO_NAME, INDEX_NAME, VECTORS_NAME, ITEMS_NAME, thumbnails.FOLDER})


def replace_problem(path: Path) -> str | None:
    """Why writing a gallery at ``path`` would destroy something (None: nothing there, or a
    gallery folder holding nothing but gallery files)."""
    if not os.path.lexists(path):
        return None
    if path.is_symlink():
        return "is a symbolic link"
    if not path.is_dir():
        return "is a file, not a gallery folder"
    try:
        names = {p.name for p in path.iterdir()}
    except OSError as e:
        return f"cannot be listed ({e.strerror})"
    if not names:
        return None
    if INFO_NAME not in names:
        return f"is a folder that is not a gallery (no {INFO_NAME}; it holds {len(names)} entries)"
    others = sorted(names - GALLERY_FILES)
    thumbs = path / thumbnails.FOLDER
    if thumbnails.FOLDER in names and (thumbs.is_symlink() or not thumbs.is_dir()
                                       or not thumbnails.is_own_folder(thumbs)):
        others.append(f"{thumbnails.FOLDER} (holds what no build wrote)")
    if others:
        more = " ..." if len(others) > 3 else ""
        return f"holds files that are not part of a gallery ({', '.join(others[:3])}{more})"
    return None


def _check_model(model, fingerprint: str | None, dim: int, where: str = "this gallery") -> None:
    """Refuse a model other than the one that built the gallery (raw-vector galleries, with no
    fingerprint, can only check the embedding size), or one whose weights hold NaN/inf.
    The model's fingerprint is computed from its weights (``ccr_demo.model.fingerprint``), never read
    from its config.json. A query encoder (``ccr_demo.model.query_encoder``) gives its source model's,
    computed from that model's weights (checked finite when the encoder was made)."""
    try:
        actual = getattr(model, "source_fingerprint", None)
        if actual is None:  # one scan gives both the fingerprint and the finiteness check
            actual, bad = scan_weights(model)
            if bad:
                check_finite(model)  # raises, naming the tensors
    except ValueError as e:
        raise GalleryError(str(e)) from None
    model_dim = model.config.embed_dim
    same = model_dim == dim and (fingerprint is None or actual == fingerprint)
    if not same:
        raise GalleryError(
            f"{where} was built with model fingerprint {fingerprint} (embed dim {dim}); the given model has "
            f"fingerprint {actual} (embed dim {model_dim}), computed from its weights. Rebuild the gallery with "
            "this model (python -m ccr_demo.gallery build ...) or load the model that built it")


def _write_items(path: Path, items: list[dict], directory: Path) -> None:
    """items.jsonl; paths relative to the gallery folder when the file lies under its parent."""
    with open(path, "w", encoding="utf-8") as f:
        for r in items:
            if "path" in r:
                r = dict(r, path=_relative(r["path"], directory))
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _relative(path: str, directory: Path) -> str:
    try:
        rel = os.path.relpath(path, directory)
    except ValueError:  # another drive (Windows)
        return path
    return path if rel.startswith(os.path.join(os.pardir, os.pardir)) else Path(rel).as_posix()


def _record_checker(directory: Path, roots: Sequence[Path]):
    """check(record, where) -> the record with its path resolved, or GalleryError: an object with a
    string id whose "path" (if any) resolves inside ``roots`` and whose "thumbnail" (if any) is
    a thumbnail name (``ccr_demo.gallery.thumbnails``: checked by its text here, where it leads at use).
    ``where`` (str, or a function giving it, so a million checks format no message) names the
    record in errors."""
    base = directory.resolve()

    def check(r, where) -> dict:
        if callable(where) and (not isinstance(r, dict) or not isinstance(r.get("id"), str) or "path" in r):
            where = where()
        if not isinstance(r, dict) or not isinstance(r.get("id"), str):
            raise GalleryError(f"{where}: expected an object with a string 'id'")
        if "path" in r:
            if not isinstance(r["path"], str) or not r["path"] or "\0" in r["path"]:
                raise GalleryError(f"{where}: 'path' must be a non-empty string, got {r['path']!r}")
            resolved = (base / r["path"]).resolve()
            if not any(resolved.is_relative_to(root) for root in roots):
                raise GalleryError(
                    f"{where}: item path {r['path']!r} resolves to {resolved}, outside "
                    + ("the gallery folder" if len(roots) == 1 else
                       "the gallery folder and the image roots " + ", ".join(str(x) for x in roots[1:]))
                    + ": a gallery's images must lie inside its folder or a declared image root "
                    "(Gallery.load(..., image_root=DIR), `--image-root DIR`, CCR_IMAGE_ROOT in the app)")
            r["path"] = str(resolved)
        if thumbnails.KEY in r:
            try:
                thumbnails.check_name(r[thumbnails.KEY], where)
            except ValueError as e:
                raise GalleryError(str(e)) from None
        return r

    return check


def _read_items(path: Path, directory: Path, roots: Sequence[Path]) -> list[dict]:
    """items.jsonl, checked: objects with unique string ids, paths inside ``roots``."""
    items, seen = [], {}
    check = _record_checker(directory, roots)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise GalleryError(f"{path}:{lineno}: not valid JSON: {e}") from None
            r = check(r, f"{path}:{lineno}")
            if r["id"] in seen:
                raise GalleryError(f"{path}:{lineno}: id {r['id']!r} already appears on line {seen[r['id']]}: "
                                   "ids must be unique; the file is corrupt, rebuild the gallery")
            seen[r["id"]] = lineno
            items.append(r)
    return items


# ----------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ccr_demo.gallery build|info|search``: the command line lives in ``index_cli``."""
    from ccr_demo.gallery.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())

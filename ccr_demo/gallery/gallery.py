"""Gallery: a FAISS index over L2-normalised embeddings, its items, and the model that made them.

Why FAISS: exact inner-product search ("Flat") is right up to ~1e5 items; "HNSW32" and
"IVF{n},PQ{m}" keep queries fast at 1e6 (docs/bench/bench_index.md). Why keep ``vectors.npy``
beside the index: an ANN index only proposes candidates (PQ scores are approximate), while the
stored float32 vectors give the exact score of any item, so every result gets an exact score
and every returned item its exact rank under each query language -- the per-instance
consistency the paper's MRV measures (PAPER.md).

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
pass over the mapped vectors (``ccr_demo.gallery.exact``, ``ccr_demo.gallery.storage``). Such a
gallery is read-only.

The parts live beside this class: the items it is built from (``items``), the FAISS index
(``faiss_index``), exact scoring (``exact``), the folder's files and checks (``storage``),
thumbnails (``thumbnails``); ranks are counted by ``ccr_demo.utils.ranks``.

Command line: ``python -m ccr_demo.gallery build|info|search`` (``ccr_demo.gallery.cli``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

import faiss
import numpy as np
import torch

from ccr_demo import __version__
from ccr_demo.gallery import thumbnails
from ccr_demo.gallery.errors import GalleryError
from ccr_demo.gallery.exact import RANK_BLOCK, exact_scores, scan_top
from ccr_demo.gallery.faiss_index import default_rerank, default_search_params, make_index, read_index
from ccr_demo.gallery.items import collect_items, embed_items, normalised_rows
from ccr_demo.gallery.storage import (
    INDEX_NAME,
    INFO_NAME,
    ITEMS_NAME,
    KINDS,
    VECTORS_NAME,
    ItemsFile,
    check_dtype,
    check_vectors,
    checksums,
    read_info,
    read_items,
    record_checker,
    replace_problem,
    rows_f32,
    verify_checksums,
    write_items,
    write_vectors,
)
from ccr_demo.model.fingerprint import check_finite, scan_weights, weights_fingerprint
from ccr_demo.utils.fileio import atomic_directory
from ccr_demo.utils.paths import resolve_inside, resolved_roots
from ccr_demo.utils.ranks import count_higher


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
        self.thumbnail_root: Path | None = None
        # where a loaded gallery's files (item paths, thumbnails) may lead: its folder and the image
        # roots given to load, resolved. ``image_file`` checks against them at every call.
        self.image_roots: list[Path] | None = None

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
        records, payloads, skip_bad = collect_items(items, kind, metadata)
        vectors, records = embed_items(model, kind, records, payloads, batch_size, progress, skip_bad)
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
        v = normalised_rows(vectors)
        if check_dtype(vectors_dtype) != "float32":
            v = v.astype(vectors_dtype).astype(np.float32)
        items = cls._records(len(v), ids, metadata)
        if rerank is None:
            rerank = default_rerank(index_factory)
        if rerank < 1:
            raise ValueError(f"rerank must be >= 1, got {rerank}")
        index = make_index(v, index_factory, train_size)
        return cls(index, v, items, kind=kind, index_factory=index_factory, fingerprint=fingerprint,
                   search_params=default_search_params(index) if search_params is None else search_params,
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
        records, payloads, skip_bad = collect_items(items, self.kind, metadata, first_id=self.count)
        vectors, records = embed_items(model, self.kind, records, payloads, batch_size, progress, skip_bad)
        return self.add_vectors(vectors, [r.pop("id") for r in records], metadata=records)

    def add_vectors(self, vectors, ids: Sequence[str] | None = None, *,
                    metadata: Sequence[Mapping] | None = None) -> np.ndarray:
        """Append precomputed vectors [N, D] -> their new rows. Ids default to their row numbers."""
        self._check_writable()
        v = normalised_rows(vectors)
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
        """The file to show (or read) for row's image, resolved: its own image file, else its
        thumbnail, else None (the app shows a placeholder). The one place a gallery hands out a
        file to serve.

        Checked where it leads now (symlinks followed), at every call: a folder can change after
        the gallery was loaded (an image replaced by a link to another file), so the check made at
        load is not enough. The item's file must still be the file the gallery recorded (resolved
        when it was loaded, built or added) or lie inside ``image_roots`` (a loaded gallery's folder
        and image roots); a thumbnail must lie inside its gallery folder or those roots."""
        item = self.items[row]
        path = item.get("path")
        if path:
            real = resolve_inside(path, Path.cwd(), [Path(path).absolute(), *(self.image_roots or ())])
            if real is not None and real.is_file():
                return str(real)
        return thumbnails.resolve(item.get(thumbnails.KEY), self.thumbnail_root, self.image_roots)

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
            return scan_top(q, self.vectors, k)
        return self.index.search(q, min(self.count, k * self.rerank))[1]

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
        with a strictly higher score (0 = top; ties count in the item's favour:
        ``ccr_demo.utils.ranks``).

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
        block = max(1, RANK_BLOCK // self.count)
        scores, ranks = [], []
        for s in range(0, len(q), block):
            full = exact_scores(q[s:s + block], self.vectors)
            t = full.gather(1, torch.tensor(pos[s:s + block], dtype=torch.int64))
            scores.append(t.numpy())
            ranks.append(count_higher(full.numpy(), scores[-1]))
        ranks_np = np.concatenate(ranks)
        return (ranks_np, np.concatenate(scores)) if return_scores else ranks_np

    def search_with_ranks(self, query_emb, k: int, languages: Sequence[str] | None = None,
                          exact_ranks: bool = True) -> TextSearchResult:
        """The query rows (one per language) in one search, then exact scores and ranks of the
        union of returned items under every language.

        Flat: one exact pass over the stored vectors gives top-k, scores and ranks together.
        ANN: one index search for the candidates, then (with ``exact_ranks``) one exact pass over
        the stored vectors, O(L x count x D): at 1e6 x 256 on 2 cores it turns a ~20 ms IVF-PQ
        search into ~0.4 s (docs/bench/bench_index.md); ``exact_ranks=False`` skips it (item_ranks None).
        The pass holds the [L, count] float32 scores (240 MB for 6 languages x 1e7 items), never
        a float32 copy of the vectors (docs/bench/bench_mmap.md).
        """
        q, k = self._queries(query_emb), self._k(k)
        languages = list(languages) if languages is not None else [str(i) for i in range(len(q))]
        if len(languages) != len(q):
            raise ValueError(f"{len(languages)} languages for {len(q)} query rows")
        full = exact_scores(q, self.vectors) if (self._flat or exact_ranks) else None
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
            item_scores = t.numpy()
            item_ranks = count_higher(full.numpy(), item_scores)
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
            write_vectors(tmp / VECTORS_NAME, self.vectors, self.vectors_dtype)
            write_items(tmp / ITEMS_NAME, self.items, directory)
            self._save_thumbnails(tmp)
            info = self.info()
            info["sha256"] = checksums(tmp)
            (tmp / INFO_NAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if self.thumbnail_root is not None:
            self.thumbnail_root, self.image_roots = directory, None
        return directory

    def _save_thumbnails(self, tmp: Path) -> None:
        """Copy the thumbnails into the gallery being written. One an item names that is not
        copied but could be shown is a GalleryError (and the folder being replaced stays as it
        was); one already missing, or leading out of the allowed folders, stays missing."""
        copied: set[str] = set()
        if self.thumbnail_root is not None and (self.thumbnail_root / thumbnails.FOLDER).is_dir():
            copied = thumbnails.copy_folder(self.thumbnail_root / thumbnails.FOLDER, tmp / thumbnails.FOLDER,
                                            self.image_roots)
        for r in self.items:
            name = r.get(thumbnails.KEY)
            if name is not None and name not in copied and (
                    self.thumbnail_root is None
                    or thumbnails.resolve(name, self.thumbnail_root, self.image_roots) is not None):
                where = ("no thumbnails folder is attached (set gallery.thumbnail_root to the folder holding "
                         f"{thumbnails.FOLDER}/)" if self.thumbnail_root is None else
                         f"it is not a file in {self.thumbnail_root / thumbnails.FOLDER}")
                raise GalleryError(f"item {r['id']!r} names the thumbnail {name!r} but {where}: not saving a "
                                   "gallery whose thumbnails would be missing")

    @staticmethod
    def read_info(directory: str | Path) -> dict:
        """gallery.json, checked (no model needed; what ``info`` prints): ``storage.read_info``."""
        return read_info(directory)

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
        byte and parse every item (load times: docs/bench/bench_mmap.md). ``verify=False`` skips the two
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
            index = read_index(directory / INDEX_NAME, info["index_factory"], d, mmap)
        roots = [directory] + ([] if image_root is None else
                               [image_root] if isinstance(image_root, (str, Path)) else list(image_root))
        roots = resolved_roots(roots)
        if mmap:
            items = ItemsFile(directory / ITEMS_NAME, record_checker(directory, roots), validate=verify,
                              error=GalleryError)
        else:
            items = read_items(directory / ITEMS_NAME, directory, roots)
        index_shape = (n, d) if index is None else (index.ntotal, index.d)
        problems = [f"{what} has {got}" for what, got in (
            (VECTORS_NAME, f"shape {vectors.shape} {vectors.dtype}" if bad_vectors else None),
            (INDEX_NAME, f"{index_shape[0]} vectors of dim {index_shape[1]}" if index_shape != (n, d) else None),
            (ITEMS_NAME, f"{len(items)} items" if len(items) != n else None)) if got]
        if problems:
            raise GalleryError(f"{directory}: {INFO_NAME} says {n} {dtype} items of dim {d}, but "
                               + "; ".join(problems))
        if verify or not mmap:
            verify_checksums(directory, info)
            check_vectors(vectors, directory / VECTORS_NAME, GalleryError)
        gallery = cls(index, vectors, items, kind=info["kind"], index_factory=info["index_factory"],
                      fingerprint=info["model_fingerprint"], search_params=info.get("search_params", ""),
                      rerank=int(info.get("rerank", 1)), vectors_dtype=dtype,
                      build=info["build"] if isinstance(info.get("build"), dict) else None)
        gallery.thumbnail_root, gallery.image_roots = directory.resolve(), roots
        return gallery


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


"""The FAISS side of a gallery: making, training and reading its index, and the search defaults.

Every index is built with ``faiss.index_factory`` under the inner-product metric over
L2-normalised rows, so any factory string ("Flat", "HNSW32", "IVF{n},PQ{m}", ...) works and a
gallery's gallery.json can name it. An index only proposes candidates: the gallery rescores
them exactly from its stored vectors (``ccr_demo.gallery.exact``), so the defaults here trade
a little candidate recall for speed, and lossy codes fetch more candidates (``default_rerank``).
Anything faiss rejects (a bad factory string, too few vectors to train, an unreadable index
file) becomes an error that says what to do, never a bare faiss RuntimeError.
"""

from __future__ import annotations

import re
from pathlib import Path

import faiss
import numpy as np

from ccr_demo.gallery.errors import GalleryError

# Factories whose codes are lossy: fetch rerank x k candidates, rescore them exactly.
_LOSSY = re.compile(r"PQ|SQ|LSH|RQ")


def default_rerank(factory: str) -> int:
    """Candidates fetched per result and rescored exactly: 4 for lossy codes (PQ/SQ/LSH/RQ in the
    factory string), whose approximate scores may misorder near neighbours; else 1."""
    return 4 if _LOSSY.search(factory.upper()) else 1


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


def default_search_params(index: faiss.Index) -> str:
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
    bench/bench_ann_recall.py, docs/bench/bench_ann_recall.md as of commit 8b1811e)."""
    try:
        inner = faiss.downcast_index(faiss.extract_index_ivf(index))
    except RuntimeError:
        inner = faiss.downcast_index(index)
    if getattr(inner, "do_polysemous_training", False):
        inner.do_polysemous_training = False


def make_index(vectors: np.ndarray, spec: str, train_size: int | None) -> faiss.Index:
    """An index of ``spec`` over ``vectors`` (L2-normalised float32 [N, D]), trained first when the
    factory needs it, on a seeded sample of ``train_size`` rows (default 40 x its IVF lists or
    PQ centroids); ValueError, saying what to use instead, when there are too few rows."""
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


def read_index(path: Path, factory: str, dim: int, mmap: bool) -> faiss.Index:
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

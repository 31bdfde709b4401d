"""Galleries larger than memory: float16 vectors, memory-mapped loads, chunked exact passes."""

import json
import tracemalloc
from pathlib import Path

import faiss
import numpy as np
import pytest
from PIL import Image

import ccr_demo.gallery.storage as store
from ccr_demo.gallery.cli import main
from ccr_demo.gallery.errors import GalleryError
from ccr_demo.gallery.gallery import Gallery
from ccr_demo.gallery.storage import ItemsFile

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:ccr_demo.model.modeling")
LANGS = ["en", "de", "fr", "cs", "zh", "ja"]


def _unit(n, d, seed=0):
    v = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _dyadic(n, rng):
    """4 entries of +-0.5 in 8 dims: unit norm, exact dot products, many ties."""
    v = np.zeros((n, 8), np.float32)
    cols = np.argsort(rng.random((n, 8)), axis=1)[:, :4]
    np.put_along_axis(v, cols, rng.choice([-0.5, 0.5], (n, 4)).astype(np.float32), 1)
    return v


def _brute_ranks(q, vectors, items):
    s = q @ vectors.T
    items = np.broadcast_to(items, (len(q), np.shape(items)[-1]))
    return (s[:, None, :] > np.take_along_axis(s, items, 1)[:, :, None]).sum(-1)


def _same_result(a, b):
    """Two TextSearchResults agree exactly: rows, scores, returned items, their scores and ranks."""
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.item_scores, b.item_scores)
    np.testing.assert_array_equal(a.item_ranks, b.item_ranks)


def test_float16_round_trip(tmp_path):
    v = _unit(500, 32)
    g32 = Gallery.from_vectors(v, [f"v{i}" for i in range(500)])
    g16 = Gallery.from_vectors(v, [f"v{i}" for i in range(500)], vectors_dtype="float16")
    out = g16.save(tmp_path / "g16")
    stored = np.load(out / "vectors.npy")
    assert stored.dtype == np.float16 and (out / "vectors.npy").stat().st_size < 500 * 32 * 2 + 200
    info = json.loads((out / "gallery.json").read_text())
    assert info["vectors_dtype"] == "float16" and info["format_version"] == 2
    assert json.loads((g32.save(tmp_path / "g32") / "gallery.json").read_text())["format_version"] == 1
    # in memory, a float16 gallery holds its stored values upcast: exactly what the file has
    loaded = Gallery.load(out)
    assert loaded.vectors.dtype == np.float32 and loaded.vectors_dtype == "float16"
    np.testing.assert_array_equal(loaded.vectors, stored.astype(np.float32))
    q = _unit(6, 32, seed=1)
    s32, s16 = g32.search_with_ranks(q, 10), loaded.search_with_ranks(q, 10)
    np.testing.assert_allclose(s16.item_scores, q @ v[s16.items].T, atol=2e-3)  # fp16 rounding only
    assert np.mean(s16.positions == s32.positions) > 0.9
    # memory-mapped, the float16 gallery gives exactly the in-memory float16 results
    mapped = Gallery.load(out, mmap=True)
    assert mapped.vectors.dtype == np.float16
    _same_result(mapped.search_with_ranks(q, 10, LANGS), loaded.search_with_ranks(q, 10, LANGS))
    np.testing.assert_array_equal(mapped.rank_of(q, [3, 7, 400]), loaded.rank_of(q, [3, 7, 400]))
    np.testing.assert_array_equal(mapped.search(q, 5)[1], loaded.search(q, 5)[1])
    # saving the mapped gallery elsewhere writes the same file
    again = mapped.save(tmp_path / "again")
    np.testing.assert_array_equal(np.load(again / "vectors.npy"), stored)


def test_mmap_flat_equals_in_memory_flat(tmp_path):
    v = _unit(3000, 32)
    g = Gallery.from_vectors(v, metadata=[{"n": i} for i in range(3000)])
    out = g.save(tmp_path / "g")
    mapped = Gallery.load(out, mmap=True)
    assert mapped.index is None and mapped.mapped and not g.mapped
    q = _unit(6, 32, seed=2)
    _same_result(mapped.search_with_ranks(q, 10, LANGS), g.search_with_ranks(q, 10, LANGS))
    items = np.array([0, 5, 2999])
    np.testing.assert_array_equal(mapped.rank_of(q, items), g.rank_of(q, items))
    s_m, r_m = mapped.search(q, 10)
    s_g, r_g = g.search(q, 10)
    np.testing.assert_array_equal(r_m, r_g)
    np.testing.assert_array_equal(s_m, s_g)  # same rows, rescored with the same arithmetic
    assert mapped.items[5] == {"id": "5", "n": 5} and len(mapped.items) == 3000
    assert mapped.items[-1]["id"] == "2999"


def test_chunked_pass_many_chunks_is_exact(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    v, q = _dyadic(300, rng), _dyadic(7, rng)
    out = Gallery.from_vectors(v).save(tmp_path / "g")
    whole = Gallery.load(out)
    monkeypatch.setattr(store, "SCAN_ROWS", 7)  # 43 chunks, the last one partial
    mapped = Gallery.load(out, mmap=True)
    items = rng.integers(0, 300, 20)
    ranks, scores = mapped.rank_of(q, items, return_scores=True)
    np.testing.assert_array_equal(ranks, _brute_ranks(q, v, items))  # ties are real ties, not counted
    np.testing.assert_array_equal(scores, (q @ v.T)[:, items])
    assert (ranks == 0).any() and len(np.unique(q @ v.T)) < 20
    res = mapped.search_with_ranks(q, 5)
    np.testing.assert_array_equal(res.scores, -np.sort(-(q @ v.T), axis=1)[:, :5])
    np.testing.assert_array_equal(res.item_ranks, _brute_ranks(q, v, res.items))
    top_s, top_r = mapped.search(q, 5)  # the running top-k over chunks finds the best scores
    np.testing.assert_array_equal(top_s, res.scores)
    np.testing.assert_array_equal(np.take_along_axis(q @ v.T, top_r, 1), top_s)
    # random vectors: the many-chunk mapped gallery agrees with the one-chunk in-memory one
    w = _unit(1000, 16, seed=3)
    out = Gallery.from_vectors(w).save(tmp_path / "w")
    qw = _unit(4, 16, seed=4)
    mapped = Gallery.load(out, mmap=True)
    monkeypatch.setattr(store, "SCAN_ROWS", 1 << 16)
    whole = Gallery.load(out)
    monkeypatch.setattr(store, "SCAN_ROWS", 64)
    np.testing.assert_array_equal(mapped.search(qw, 10)[1], whole.search(qw, 10)[1])
    a, b = mapped.search_with_ranks(qw, 10), whole.search_with_ranks(qw, 10)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.item_ranks, _brute_ranks(qw, w, a.items))


@pytest.mark.parametrize("factory", ["IVF16,Flat", "IVF16,SQ8", "HNSW32"])
def test_ann_index_read_with_faiss_mmap(factory, tmp_path):
    faiss.omp_set_num_threads(1)
    v = _unit(2000, 32)
    out = Gallery.from_vectors(v, index_factory=factory).save(tmp_path / "g")
    whole, mapped = Gallery.load(out), Gallery.load(out, mmap=True)
    if factory.startswith("IVF"):  # the inverted lists stay in index.faiss, as faiss's on-disk lists
        invlists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(mapped.index).invlists)
        assert isinstance(invlists, faiss.OnDiskInvertedLists) and invlists.read_only
        assert isinstance(faiss.downcast_InvertedLists(faiss.extract_index_ivf(whole.index).invlists),
                          faiss.ArrayInvertedLists)
    assert mapped.search_params == whole.search_params
    q = _unit(6, 32, seed=5)
    np.testing.assert_array_equal(mapped.search(q, 10)[1], whole.search(q, 10)[1])
    np.testing.assert_array_equal(mapped.search(q, 10)[0], whole.search(q, 10)[0])
    _same_result(mapped.search_with_ranks(q, 10, LANGS), whole.search_with_ranks(q, 10, LANGS))
    a = mapped.search_with_ranks(q, 10, LANGS, exact_ranks=False)
    b = whole.search_with_ranks(q, 10, LANGS, exact_ranks=False)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.item_scores, b.item_scores)
    assert a.item_ranks is None


def test_mmap_load_does_not_materialise_the_vectors(tmp_path, monkeypatch):
    n, d = 2500, 2048
    out = Gallery.from_vectors(_unit(n, d), vectors_dtype="float16").save(tmp_path / "g")
    monkeypatch.setattr(store, "SCAN_ROWS", 100)
    tracemalloc.start()  # numpy reports its allocations to tracemalloc; torch's score rows are not traced
    try:
        g = Gallery.load(out, mmap=True)
        load_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        g.search_with_ranks(_unit(6, d, seed=6), 10)
        g.search(_unit(6, d, seed=6), 10)
        search_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(g.vectors, np.memmap) and g.vectors.dtype == np.float16 and not g.vectors.flags.writeable
    assert Path(g.vectors.filename) == (out / "vectors.npy").resolve()
    assert g.index is None and isinstance(g.items, ItemsFile)
    full_float16 = n * d * 2  # 10 MB: reading the file whole; an in-memory load's float32 copy is twice that
    assert load_peak < full_float16 / 3 and search_peak < full_float16 / 3, (load_peak, search_peak)


def test_mmap_gallery_is_read_only(tmp_path, tiny_model):
    out = Gallery.from_vectors(_unit(50, 32)).save(tmp_path / "g")
    g = Gallery.load(out, mmap=True)
    with pytest.raises(GalleryError, match=r"memory-mapped from .*vectors.npy.*read-only"):
        g.add_vectors(_unit(2, 32, seed=1))
    with pytest.raises(GalleryError, match="read-only"):
        g.add(tiny_model, ["a caption"])
    assert g.count == 50
    # in memory the same gallery grows; a float16 one stores the new rows rounded too
    g16 = Gallery.load(Gallery.from_vectors(_unit(50, 32), vectors_dtype="float16").save(tmp_path / "h"))
    g16.add_vectors(_unit(2, 32, seed=1))
    np.testing.assert_array_equal(g16.vectors[50:], g16.vectors[50:].astype(np.float16).astype(np.float32))


def test_bad_inputs_and_corrupt_files(tmp_path):
    with pytest.raises(ValueError, match=r"vectors_dtype must be one of \('float32', 'float16'\), got 'float64'"):
        Gallery.from_vectors(_unit(5, 8), vectors_dtype="float64")
    out = Gallery.from_vectors(_unit(40, 8), vectors_dtype="float16").save(tmp_path / "g")
    info_path = out / "gallery.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps(dict(info, vectors_dtype="int8")))
    with pytest.raises(GalleryError, match=r"vectors_dtype must be 'float32' or 'float16', got 'int8'"):
        Gallery.load(out, mmap=True)
    info_path.write_text(json.dumps(dict(info, vectors_dtype="float32")))  # says float32, file is float16
    for mmap in (False, True):
        with pytest.raises(GalleryError, match=r"says 40 float32 items of dim 8, but vectors.npy has shape "
                                               r"\(40, 8\) float16"):
            Gallery.load(out, mmap=mmap)
    info_path.write_text(json.dumps(info))
    v = np.load(out / "vectors.npy")
    v[17] = np.nan
    np.save(out / "vectors.npy", v)
    with pytest.raises(GalleryError, match="vectors.npy does not match the sha256"):
        Gallery.load(out, mmap=True)
    del info["sha256"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(GalleryError, match=r"1 row\(s\) hold NaN or inf, e.g. row 17"):
        Gallery.load(out, mmap=True)
    assert Gallery.load(out, mmap=True, verify=False).count == 40  # verify=False: the caller vouches
    (out / "vectors.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(GalleryError, match="vectors.npy is not a readable .npy array"):
        Gallery.load(out, mmap=True)


def test_mmap_items_are_checked(tmp_path):
    out = Gallery.from_vectors(_unit(4, 8), ["a", "b", "c", "d"]).save(tmp_path / "g")
    lines = (out / "items.jsonl").read_text().splitlines()
    info = json.loads((out / "gallery.json").read_text())
    del info["sha256"]
    (out / "gallery.json").write_text(json.dumps(info))
    (out / "items.jsonl").write_text("\n".join([lines[0], lines[1], lines[1], lines[3]]) + "\n")
    with pytest.raises(GalleryError, match=r"id 'b' appears on record 2 and record 3"):
        Gallery.load(out, mmap=True)
    escaped = json.dumps({"id": "c", "path": "../../outside.png"})
    (out / "items.jsonl").write_text("\n".join([lines[0], lines[1], escaped, lines[3]]) + "\n")
    with pytest.raises(GalleryError, match=r"items.jsonl:3: item path '../../outside.png' resolves to .* outside"):
        Gallery.load(out, mmap=True)
    g = Gallery.load(out, mmap=True, verify=False)  # not checked up front, but checked when read
    assert g.items[1]["id"] == "b"
    with pytest.raises(GalleryError, match="outside the gallery folder"):
        g.items[2]
    (out / "items.jsonl").write_text("\n".join([lines[0], "{not json", *lines[2:]]) + "\n")
    with pytest.raises(GalleryError, match=r"items.jsonl:2: not valid JSON"):
        Gallery.load(out, mmap=True)
    # two records on one line parse as two when lines are parsed a block at a time: still refused
    (out / "items.jsonl").write_text("\n".join([lines[0], lines[1] + ", " + lines[2], lines[3]]) + "\n")
    with pytest.raises(GalleryError, match=r"items.jsonl:2: not valid JSON"):
        Gallery.load(out, mmap=True)
    (out / "items.jsonl").write_text("\n".join([lines[0], "", lines[1], lines[2], "", lines[3]]) + "\n")
    for verify in (True, False):  # blank lines are skipped, as the in-memory reader does
        assert [r["id"] for r in Gallery.load(out, mmap=True, verify=verify).items] == ["a", "b", "c", "d"]


def test_galleries_written_before_float16_still_load(tmp_path):
    """A format-1 gallery.json has no "vectors_dtype": it means float32, in memory and mapped."""
    g = Gallery.from_vectors(_unit(30, 8))
    v, out = g.vectors, g.save(tmp_path / "g")
    info = json.loads((out / "gallery.json").read_text())
    del info["vectors_dtype"]
    (out / "gallery.json").write_text(json.dumps(info))
    for mmap in (False, True):
        g = Gallery.load(out, mmap=mmap)
        assert g.vectors_dtype == "float32"
        np.testing.assert_array_equal(np.asarray(g.vectors), v)


def test_cli_float16_build_and_mmap_search(tiny_model, tmp_path, capsys):
    tiny_model.save_pretrained(tmp_path / "model")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(images / f"{i}.png")
    out = tmp_path / "gal"
    assert main(["build", "--model", str(tmp_path / "model"), "--images", str(images), "--out", str(out),
                 "--vectors-dtype", "float16"]) == 0
    assert np.load(out / "vectors.npy").dtype == np.float16
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["vectors_dtype"] == "float16"
    common = ["search", str(out), "--model", str(tmp_path / "model"), "--text", "a red circle", "--lang", "en",
              "--text", "ein roter Kreis", "--lang", "de", "-k", "2", "--json", "--image-root", str(images)]
    assert main(common) == 0
    in_memory = json.loads(capsys.readouterr().out)
    assert main(common + ["--mmap"]) == 0
    assert json.loads(capsys.readouterr().out) == in_memory
    assert main(common + ["--no-verify"]) == 2
    assert "--no-verify applies only with --mmap" in capsys.readouterr().err

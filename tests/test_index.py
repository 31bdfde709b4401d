"""Gallery: build from images/captions, save/load, model check, add, ANN factories, exact ranks, CLI."""

import json
import os

import faiss
import numpy as np
import pytest
import torch
from conftest import tiny_config
from PIL import Image

import ccr_demo.gallery.gallery as index_mod
from ccr_demo.data.errors import DataFormatError
from ccr_demo.gallery.cli import main
from ccr_demo.gallery.errors import GalleryError, GalleryWarning
from ccr_demo.gallery.gallery import Gallery
from ccr_demo.model.modeling import CCRModel

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:ccr_demo.model.modeling")
CAPTIONS = ["a red circle", "ein roter Kreis", "红色的圆", "a blue square", "ein blaues Quadrat",
            "蓝色的正方形", "two green triangles", "zwei grüne Dreiecke", "两个绿色三角形", "an empty scene"]


def _image(seed: int, size=(40, 32)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture
def image_folder(tmp_path):
    """8 images (png/jpg, one in a subfolder), a text file and a hidden file."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    for i in range(8):
        path = root / ("sub" if i == 7 else "") / f"img_{i}.{'jpg' if i % 2 else 'png'}"
        _image(i).save(path)
    (root / "notes.txt").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"\0\1")
    return root


@pytest.fixture
def gallery(tiny_model, image_folder):
    with pytest.warns(GalleryWarning, match=r"skipped 1 file.*notes\.txt"):
        return Gallery.build(tiny_model, image_folder, batch_size=3, progress=False)


def _unit(n, d, seed=0):
    v = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _brute_ranks(q, vectors, items):
    """Reference: count strictly higher scores with a plain numpy score matrix."""
    s = q @ vectors.T
    items = np.broadcast_to(items, (len(q), np.shape(items)[-1]))
    return (s[:, None, :] > np.take_along_axis(s, items, 1)[:, :, None]).sum(-1)


def _assert_ranks_within_ties(ranks, q, vectors, items, eps=1e-5):
    """Ranks equal the reference up to near-ties: a gallery holding the same caption several
    times stores vectors that differ in the last bits (they were encoded in batches padded
    differently), so a candidate within ``eps`` of an item's score may fall either side."""
    s = q @ vectors.T
    items = np.broadcast_to(items, (len(q), np.shape(items)[-1]))
    own = np.take_along_axis(s, items, 1)[:, :, None]
    low, high = (s[:, None, :] > own + eps).sum(-1), (s[:, None, :] > own - eps).sum(-1)
    assert ((low <= ranks) & (ranks <= high)).all(), (ranks, low, high)


def test_build_from_folder_and_search(gallery, tiny_model, image_folder):
    assert gallery.count == 8 and gallery.embed_dim == 32 and gallery.kind == "image"
    assert gallery.ids == sorted(gallery.ids) and "sub/img_7.jpg" in gallery.ids
    assert gallery.fingerprint == tiny_model.fingerprint()
    row = gallery.position("img_3.jpg")
    assert gallery.items[row]["path"] == str((image_folder / "img_3.jpg").resolve())
    # the stored vectors are the model's embeddings; each image finds itself first
    emb = tiny_model.encode_images([Image.open(image_folder / "img_3.jpg")])
    np.testing.assert_allclose(gallery.vectors[row], emb[0].numpy(), atol=1e-5)
    scores, rows = gallery.search(gallery.vectors, 3)
    assert scores.shape == rows.shape == (8, 3) and rows.dtype == np.int64
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()
    # k larger than the gallery returns every item once
    scores, rows = gallery.search(torch.from_numpy(gallery.vectors[:2]), 100)
    assert rows.shape == (2, 8) and sorted(rows[0]) == list(range(8))


def test_build_from_pil_images_mapping_and_text(tiny_model):
    g = Gallery.build(tiny_model, {"a": _image(1), "b": _image(2).convert("RGBA")}, progress=False)
    assert g.ids == ["a", "b"] and "path" not in g.items[0]
    g = Gallery.build(tiny_model, [_image(1), _image(2)], metadata=[{"scene": 1}, {"scene": 2}], progress=False)
    assert g.ids == ["0", "1"] and g.items[1]["scene"] == 2
    meta = [{"id": f"c{i}", "language": "en"} for i in range(len(CAPTIONS))]
    t = Gallery.build(tiny_model, CAPTIONS, kind="text", metadata=meta, batch_size=4, progress=False)
    assert t.kind == "text" and t.items[2] == {"id": "c2", "caption": CAPTIONS[2], "language": "en"}
    np.testing.assert_allclose(t.vectors, tiny_model.encode_texts(CAPTIONS).numpy(), atol=1e-5)


def test_save_load_round_trip(gallery, tiny_model, tmp_path, image_folder):
    out = gallery.save(tmp_path / "gal")
    # A Flat index is the vectors again: it is rebuilt from vectors.npy, not stored twice.
    assert sorted(os.listdir(out)) == ["gallery.json", "items.jsonl", "vectors.npy"]
    info = json.loads((out / "gallery.json").read_text())
    assert info["model_fingerprint"] == tiny_model.fingerprint() and info["embed_dim"] == 32
    assert info["count"] == 8 and info["kind"] == "image" and info["index_factory"] == "Flat"
    assert info["created_with"]["ccr_demo"]
    first = json.loads((out / "items.jsonl").read_text().splitlines()[0])
    assert first["path"].startswith("../images/")  # relative: the images sit beside the gallery
    loaded = Gallery.load(out, tiny_model, image_root=image_folder)
    assert loaded.items == gallery.items and loaded.ids == gallery.ids
    q = _unit(5, 32, seed=3)
    for a, b in zip(gallery.search(q, 4), loaded.search(q, 4)):
        np.testing.assert_array_equal(a, b)
    assert Gallery.read_info(out)["count"] == 8


def test_other_model_is_refused(gallery, tmp_path):
    out = gallery.save(tmp_path / "gal")
    torch.manual_seed(1)
    other = CCRModel(tiny_config())
    with pytest.raises(GalleryError, match=f"{gallery.fingerprint}.*{other.fingerprint()}"):
        Gallery.load(out, other)
    with pytest.raises(GalleryError, match="embed dim 32.*embed dim 16"):
        Gallery.load(out, CCRModel(tiny_config(embed_dim=16)))
    with pytest.raises(GalleryError, match="fingerprint"):
        gallery.search_texts(other, {"en": "a red circle"}, 2)
    with pytest.raises(GalleryError, match="fingerprint"):
        gallery.add(other, [_image(50)], progress=False)


def test_add_without_rebuild(gallery, tiny_model, tmp_path):
    index_before = gallery.index
    rows = gallery.add(tiny_model, {"new": _image(99)}, progress=False)
    assert gallery.index is index_before and index_before.ntotal == 9
    assert rows.tolist() == [8] and gallery.position("new") == 8
    emb = tiny_model.encode_images([_image(99)])
    _, top = gallery.search(emb, 1)
    assert top[0, 0] == 8
    with pytest.raises(ValueError, match="'new' is already in the gallery"):
        gallery.add(tiny_model, {"new": _image(98)}, progress=False)
    # numbered ids continue after the existing rows; the addition survives save/load
    rows = gallery.add(tiny_model, [_image(97)], progress=False)
    assert rows.tolist() == [9] and gallery.ids[9] == "9"
    loaded = Gallery.load(gallery.save(tmp_path / "g"), tiny_model, image_root=tmp_path)
    assert loaded.count == 10 and loaded.search(emb, 1)[1][0, 0] == 8


@pytest.fixture
def one_faiss_thread():
    """faiss's OpenMP k-means spins when the 2 cores are shared: one thread trains faster here."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.mark.parametrize("factory", ["HNSW32", "IVF16,PQ8x4"])
def test_ann_factories(factory, tmp_path, one_faiss_thread):
    v = _unit(2000, 32)
    g = Gallery.from_vectors(v, [f"v{i}" for i in range(2000)], index_factory=factory)
    assert g.search_params == ("efSearch=128" if factory == "HNSW32" else "nprobe=8")
    assert g.rerank == (1 if factory == "HNSW32" else 4)
    q = v[:100]
    scores, rows = g.search(q, 10)
    assert (rows[:, 0] == np.arange(100)).mean() >= 0.95
    # scores are exact inner products with the stored vectors, whatever the index's codes
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", q, v[rows]), atol=1e-5)
    exact = Gallery.from_vectors(v).search(q, 10)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, exact)])
    assert recall >= (0.9 if factory == "HNSW32" else 0.3)
    new = _unit(3, 32, seed=7)
    assert g.add_vectors(new, ["n0", "n1", "n2"]).tolist() == [2000, 2001, 2002]
    assert g.search(new, 1)[1][:, 0].tolist() == [2000, 2001, 2002]
    loaded = Gallery.load(g.save(tmp_path / "ann"))
    assert loaded.search_params == g.search_params and loaded.rerank == g.rerank
    np.testing.assert_array_equal(loaded.search(q, 10)[1], g.search(q, 10)[1])


def test_ivf_pq_needs_enough_training_vectors():  # checked before faiss trains anything
    with pytest.raises(ValueError, match=r"needs at least 256 vectors.*has 100"):
        Gallery.from_vectors(_unit(100, 32), index_factory="IVF16,PQ8")
    with pytest.raises(ValueError, match=r"at least 64 vectors to train \(64 IVF lists\).*has 50"):
        Gallery.from_vectors(_unit(50, 32), index_factory="IVF64,Flat")
    with pytest.raises(ValueError, match="not a valid faiss factory"):
        Gallery.from_vectors(_unit(10, 32), index_factory="NoSuchIndex")
    with pytest.raises(ValueError, match="do not apply"):
        Gallery.from_vectors(_unit(10, 32), search_params="nprobe=4")


def test_rank_of_exact_with_ties(monkeypatch):
    """Dyadic vectors make every score exact, so ties are real ties and must not count."""
    rng = np.random.default_rng(0)

    def dyadic(n):  # 4 entries of +-0.5 in 8 dims: unit norm, exact dot products, many duplicates
        v = np.zeros((n, 8), np.float32)
        cols = np.argsort(rng.random((n, 8)), axis=1)[:, :4]
        np.put_along_axis(v, cols, rng.choice([-0.5, 0.5], (n, 4)).astype(np.float32), 1)
        return v

    v, q = dyadic(300), dyadic(7)
    g = Gallery.from_vectors(v)
    items = rng.integers(0, 300, 20)
    ranks, scores = g.rank_of(q, items, return_scores=True)
    np.testing.assert_array_equal(ranks, _brute_ranks(q, v, items))
    np.testing.assert_array_equal(scores, (q @ v.T)[:, items])
    assert (ranks == 0).any() and len(np.unique(q @ v.T)) < 20  # ties everywhere
    per_query = rng.integers(0, 300, (7, 5))
    np.testing.assert_array_equal(g.rank_of(q, per_query), _brute_ranks(q, v, per_query))
    monkeypatch.setattr(index_mod, "RANK_BLOCK", 600)  # 2 queries per block: same answer
    np.testing.assert_array_equal(g.rank_of(q, items), _brute_ranks(q, v, items))
    with pytest.raises(ValueError, match=r"lie in \[0, 300\)"):
        g.rank_of(q, [300])
    with pytest.raises(ValueError, match="integer rows"):
        g.rank_of(q, np.zeros((3, 2), np.int64))


def test_search_texts_one_encode_call_and_exact_ranks(tiny_model, monkeypatch):
    meta = [{"id": f"c{i}"} for i in range(len(CAPTIONS))]
    flat = Gallery.build(tiny_model, CAPTIONS * 3, kind="text", progress=False,
                         metadata=[{"id": f"c{i}"} for i in range(3 * len(CAPTIONS))])
    hnsw = Gallery.build(tiny_model, CAPTIONS, kind="text", index_factory="HNSW32", metadata=meta, progress=False)
    calls = []
    real = tiny_model.encode_texts

    def spy(texts, *args, **kwargs):
        calls.append(list(texts))
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(tiny_model, "encode_texts", spy)
    queries = {"en": "a red circle", "de": "ein roter Kreis", "zh": "红色的圆", "fr": "un cercle rouge"}
    for g in (flat, hnsw):
        calls.clear()
        res = g.search_texts(tiny_model, queries, 4)
        assert calls == [list(queries.values())]
        assert res.languages == list(queries) and res.scores.shape == res.positions.shape == (4, 4)
        q = real(list(queries.values())).numpy()
        np.testing.assert_allclose(res.query_emb, q, atol=1e-6)
        assert set(res.items) == set(res.positions.ravel()) and list(res.items) == sorted(res.items)
        _assert_ranks_within_ties(res.item_ranks, q, g.vectors, res.items)
        np.testing.assert_allclose(res.item_scores, q @ g.vectors[res.items].T, atol=1e-5)
        for lang in queries:  # the same items as a plain search, each ranked by its own score
            scores, rows = res[lang]
            ref_scores, ref_rows = g.search(q[list(queries).index(lang)][None], 4)
            np.testing.assert_allclose(scores, ref_scores[0], atol=1e-5)
            col = np.searchsorted(res.items, rows)
            assert (res.item_ranks[res.languages.index(lang), col] <= np.arange(4)).all()
    # exact text appears in the gallery: its own caption comes first
    top = flat.search_texts(tiny_model, {"en": "a red circle"}, 1).positions[0, 0]
    assert flat.items[top]["caption"] == "a red circle"
    assert hnsw.search_texts(tiny_model, queries, 3, exact_ranks=False).item_ranks is None


def test_save_is_atomic(gallery, tiny_model, tmp_path, monkeypatch):
    out = gallery.save(tmp_path / "gal")
    gallery.add(tiny_model, {"extra": _image(123)}, progress=False)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(index_mod, "write_items", boom)  # after index.faiss and vectors.npy are written
    with pytest.raises(OSError, match="disk full"):
        gallery.save(out)
    assert Gallery.load(out, tiny_model, image_root=tmp_path).count == 8
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []


def test_bad_inputs(tiny_model, gallery, tmp_path, image_folder):
    with pytest.raises(ValueError, match="no items"):
        Gallery.build(tiny_model, [], progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no items"):
        Gallery.build(tiny_model, tmp_path / "empty", progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="no readable images"), pytest.warns(GalleryWarning):
        Gallery.build(tiny_model, tmp_path / "junk", progress=False)
    with pytest.raises(DataFormatError, match="notes.txt"):  # an explicitly listed file must be an image
        Gallery.build(tiny_model, [image_folder / "img_0.png", image_folder / "notes.txt"], progress=False)
    with pytest.raises(FileNotFoundError):
        Gallery.build(tiny_model, tmp_path / "nowhere", progress=False)
    with pytest.raises(ValueError, match="kind"):
        Gallery.build(tiny_model, CAPTIONS, kind="audio", progress=False)
    with pytest.raises(TypeError, match="item 1"):
        Gallery.build(tiny_model, ["ok", 3], kind="text", progress=False)
    with pytest.raises(ValueError, match="appears twice"):
        Gallery.build(tiny_model, CAPTIONS[:2], kind="text", metadata=[{"id": "x"}, {"id": "x"}], progress=False)
    with pytest.raises(ValueError, match="metadata has 1 entries for 2"):
        Gallery.build(tiny_model, CAPTIONS[:2], kind="text", metadata=[{}], progress=False)
    with pytest.raises(TypeError, match="not JSON"):
        Gallery.build(tiny_model, CAPTIONS[:1], kind="text", metadata=[{"x": object()}], progress=False)
    q = gallery.vectors[:2]
    with pytest.raises(ValueError, match="dim 16 but the gallery's embeddings have dim 32"):
        gallery.search(np.zeros((1, 16), np.float32), 3)
    with pytest.raises(ValueError, match=r"q\[None\]"):
        gallery.search(q[0], 3)
    with pytest.raises(ValueError, match="k must be >= 1"):
        gallery.search(q, 0)
    with pytest.raises(TypeError, match="k must be an integer"):
        gallery.search(q, 2.5)
    with pytest.raises(ValueError, match="NaN"):
        gallery.search(np.full((1, 32), np.nan, np.float32), 1)
    with pytest.raises(ValueError, match="non-empty"):
        gallery.search_texts(tiny_model, {}, 3)
    with pytest.raises(ValueError, match="all-zero"):
        Gallery.from_vectors(np.zeros((2, 4), np.float32))


def test_corrupt_or_missing_files_are_named(gallery, tiny_model, tmp_path):
    hnsw = Gallery.from_vectors(gallery.vectors, gallery.ids, index_factory="HNSW32").save(tmp_path / "hnsw")
    (hnsw / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(GalleryError, match="index.faiss"):
        Gallery.load(hnsw)
    (hnsw / "index.faiss").unlink()
    with pytest.raises(FileNotFoundError, match="index.faiss"):
        Gallery.load(hnsw)
    out = gallery.save(tmp_path / "gal")
    (out / "vectors.npy").unlink()
    with pytest.raises(FileNotFoundError, match="vectors.npy"):
        Gallery.load(out, tiny_model)
    out = gallery.save(tmp_path / "gal")
    (out / "items.jsonl").write_text("\n".join((out / "items.jsonl").read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(GalleryError, match="items.jsonl has 7 items"):
        Gallery.load(out, tiny_model, image_root=tmp_path)
    (out / "items.jsonl").write_text("{not json\n")
    with pytest.raises(GalleryError, match=r"items.jsonl:1"):
        Gallery.load(out, tiny_model, image_root=tmp_path)
    (out / "gallery.json").write_text("{")
    with pytest.raises(GalleryError, match="gallery.json is not valid JSON"):
        Gallery.load(out, tiny_model, image_root=tmp_path)
    with pytest.raises(FileNotFoundError, match="gallery.json is missing"):
        Gallery.load(tmp_path, tiny_model)


def _iglue(root, image_folder):
    """A 3-instance parallel test set in IGLUE layout (en 2 captions each, de 1)."""
    for lang, caps in (("en", [["a red one", "red"], ["a blue one", "blue"], ["green", "a green one"]]),
                       ("de", [["ein rotes"], ["ein blaues"], ["ein grünes"]])):
        (root / "annotations" / lang).mkdir(parents=True)
        rows = [{"id": f"i{n}", "img_path": f"img_{n * 2}.png", "sentences": c} for n, c in enumerate(caps)]
        (root / "annotations" / lang / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "images").symlink_to(image_folder)
    return root


def test_cli_build_info_search(tiny_model, image_folder, tmp_path, capsys):
    tiny_model.save_pretrained(tmp_path / "model")
    model = str(tmp_path / "model")
    with pytest.warns(GalleryWarning):
        assert main(["build", "--model", model, "--images", str(image_folder), "--out", str(tmp_path / "g")]) == 0
    assert "Gallery(8 images" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "g")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["count"] == 8 and set(info["file_bytes"]) == {"vectors.npy", "items.jsonl"}
    assert main(["search", str(tmp_path / "g"), "--model", model, "--text", "a red circle", "-k", "3",
                 "--image-root", str(image_folder)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[en] a red circle") and len(out.strip().splitlines()) == 4

    ig = _iglue(tmp_path / "xflickr", image_folder)
    assert main(["build", "--model", model, "--iglue", str(ig), "--out", str(tmp_path / "x"), "--captions"]) == 0
    capsys.readouterr()
    images = Gallery.load(tmp_path / "x", image_root=image_folder)
    captions = Gallery.load(tmp_path / "x-captions")
    assert images.ids == ["i0", "i1", "i2"] and captions.count == 9
    assert captions.items[0] == {"id": "en/i0/0", "caption": "a red one", "image_id": "i0", "language": "en"}
    assert captions.items[-1] == {"id": "de/i2/0", "caption": "ein grünes", "image_id": "i2", "language": "de"}
    assert main(["search", str(tmp_path / "x-captions"), "--model", model, "--text", "red", "--lang", "en",
                 "--text", "rot", "--lang", "de", "-k", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["en"]) == len(res["de"]) == 2 and all(set(r) == {"en", "de"} for r in res["ranks"].values())
    # errors are one clear line and exit status 2
    assert main(["search", str(tmp_path / "x"), "--model", model, "--text", "a", "--text", "b"]) == 2
    assert "one --lang per --text" in capsys.readouterr().err
    assert main(["build", "--model", model, "--images", str(image_folder), "--out", str(tmp_path / "y"),
                 "--captions"]) == 2
    assert "--captions needs --iglue" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "nowhere")]) == 2


# --------------------------------------------------------------------------- issue 11 regressions


def test_item_paths_must_stay_inside_the_gallery_or_a_declared_root(tmp_path):
    """Issue 11 item 2: one absolute item path ("/x.png", the file need not exist) made the app
    serve the whole disk. Paths outside the gallery folder (or a declared image root) are refused."""
    (tmp_path / "imgs").mkdir()
    _image(1).save(tmp_path / "imgs" / "a.png")
    g = Gallery.from_vectors(_unit(2, 8), ["a", "b"], metadata=[{"path": str(tmp_path / "imgs" / "a.png")}, {}])
    out = g.save(tmp_path / "g")
    with pytest.raises(GalleryError, match=r"items.jsonl:1: item path '../imgs/a.png'.*outside the gallery folder"):
        Gallery.load(out)
    assert Gallery.load(out, image_root=tmp_path / "imgs").items[0]["path"] == str(tmp_path / "imgs" / "a.png")
    inside = Gallery.from_vectors(_unit(1, 8), ["in"], metadata=[{"path": str(tmp_path / "g2" / "in.png")}])
    inside = inside.save(tmp_path / "g2")
    assert Gallery.load(inside).items[0]["path"] == str((tmp_path / "g2" / "in.png").resolve())  # its own folder
    for bad in ("/x.png", "/etc/passwd", "../../../../../../etc/passwd", "sub/../../x.png"):
        lines = (out / "items.jsonl").read_text().splitlines()
        (out / "items.jsonl").write_text(json.dumps({"id": "a", "path": bad}) + "\n" + lines[1] + "\n")
        info = json.loads((out / "gallery.json").read_text())
        info.pop("sha256", None)  # a hand-made gallery.json carries no checksums
        (out / "gallery.json").write_text(json.dumps(info))
        with pytest.raises(GalleryError, match="outside the gallery folder"):
            Gallery.load(out, image_root=tmp_path / "imgs")
    (out / "link").symlink_to("/etc")  # a symlink out of the folder is followed, then refused
    (out / "items.jsonl").write_text(json.dumps({"id": "a", "path": "link/passwd"}) + "\n" + lines[1] + "\n")
    with pytest.raises(GalleryError, match="resolves to /etc/passwd"):
        Gallery.load(out)


def test_weights_fingerprint_is_computed_not_read_from_config(tiny_model, tmp_path):
    """Issue 11 item 9: changed weights under the original config.json passed the gallery check."""
    from safetensors.torch import load_file, save_file

    from ccr_demo.model.fingerprint import weights_fingerprint

    tiny_model.save_pretrained(tmp_path / "m")
    model = CCRModel.from_pretrained(tmp_path / "m")
    g = Gallery.build(model, CAPTIONS[:4], kind="text", progress=False)
    assert g.fingerprint == weights_fingerprint(model) == tiny_model.fingerprint()  # same formula as before
    out = g.save(tmp_path / "g")
    assert Gallery.load(out, model).count == 4
    state = load_file(tmp_path / "m" / "model.safetensors")
    name = next(k for k in state if k.startswith("text_projection"))
    state[name] = state[name] + 0.5
    save_file(state, tmp_path / "m" / "model.safetensors", metadata={"format": "pt"})
    changed = CCRModel.from_pretrained(tmp_path / "m")  # config.json still says the old fingerprint
    assert weights_fingerprint(changed) != g.fingerprint
    with pytest.raises(GalleryError, match="computed from its weights"):
        Gallery.load(out, changed)
    with pytest.raises(GalleryError, match="fingerprint"):
        g.search_texts(changed, {"en": "a red circle"}, 2)
    # cached, and recomputed after an in-place change of the weights
    fp = weights_fingerprint(model)
    assert weights_fingerprint(model) == fp
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert weights_fingerprint(model) != fp


def test_gallery_is_validated_on_load(tiny_model, tmp_path):
    """Issue 11 item 10: a NaN row ranked first with score nan, NaN weights loaded silently,
    swapped or duplicate items.jsonl lines were accepted."""
    g = Gallery.build(tiny_model, CAPTIONS[:5], kind="text", progress=False)
    out = g.save(tmp_path / "g")
    lines = (out / "items.jsonl").read_text().splitlines()
    (out / "items.jsonl").write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")  # swapped
    with pytest.raises(GalleryError, match="items.jsonl does not match the sha256"):
        Gallery.load(out, tiny_model)
    (out / "items.jsonl").write_text("\n".join([lines[0], lines[0], *lines[2:]]) + "\n")  # duplicated
    with pytest.raises(GalleryError, match=r"items.jsonl:2: id '0' already appears on line 1"):
        Gallery.load(out, tiny_model)
    (out / "items.jsonl").write_text("\n".join(lines) + "\n")
    v = np.load(out / "vectors.npy")
    v[3] = np.nan
    np.save(out / "vectors.npy", v)
    with pytest.raises(GalleryError, match="vectors.npy does not match the sha256"):
        Gallery.load(out, tiny_model)
    info = json.loads((out / "gallery.json").read_text())
    del info["sha256"]  # without checksums (older galleries) the rows themselves are checked
    (out / "gallery.json").write_text(json.dumps(info))
    with pytest.raises(GalleryError, match="1 row.*NaN or inf, e.g. row 3"):
        Gallery.load(out, tiny_model)
    v[3] = 2 * v[2]
    np.save(out / "vectors.npy", v)
    with pytest.raises(GalleryError, match="not unit vectors, e.g. row 3"):
        Gallery.load(out, tiny_model)
    g.save(out)
    with torch.no_grad():
        next(p for p in tiny_model.parameters() if p.is_floating_point()).fill_(float("nan"))
    with pytest.raises(GalleryError, match="NaN or inf weights"):
        Gallery.load(out, tiny_model)


def test_cli_build_never_destroys_what_it_was_not_asked_to(tiny_model, image_folder, tmp_path, capsys):
    """Issue 11 item 5: `build --out PATH` replaced whatever was at PATH (an unrelated folder, the
    input images themselves, a regular file) and exited 0, leaving `.afile.old.<pid>` behind."""
    tiny_model.save_pretrained(tmp_path / "model")
    model = str(tmp_path / "model")
    images_before = sorted(p.name for p in image_folder.rglob("*"))
    unrelated = tmp_path / "docs"
    unrelated.mkdir()
    (unrelated / "thesis.tex").write_text("years of work")
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    cases = [(unrelated, "not a gallery"), (image_folder, "is the --images input"),
             (tmp_path, "holds the --images input"), (afile, "is a file"),
             (tmp_path / "model", "is the --model input")]
    for out, why in cases:
        assert main(["build", "--model", model, "--images", str(image_folder), "--out", str(out)]) == 2
        assert why in capsys.readouterr().err
    for out in (image_folder, tmp_path):  # inputs stay protected even with --overwrite
        assert main(["build", "--model", model, "--images", str(image_folder), "--out", str(out),
                     "--overwrite"]) == 2
    assert (unrelated / "thesis.tex").read_text() == "years of work" and afile.read_text() == "keep me"
    assert sorted(p.name for p in image_folder.rglob("*")) == images_before
    # a gallery this tool wrote is replaced; --overwrite replaces a file without debris
    with pytest.warns(GalleryWarning):
        assert main(["build", "--model", model, "--images", str(image_folder), "--out", str(tmp_path / "g")]) == 0
        assert main(["build", "--model", model, "--images", str(image_folder), "--out", str(tmp_path / "g")]) == 0
        assert main(["build", "--model", model, "--images", str(image_folder), "--out", str(afile),
                     "--overwrite"]) == 0
    assert afile.is_dir() and (afile / "gallery.json").is_file()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []
    with pytest.raises(FileExistsError, match="not a gallery"):  # the library refuses too
        Gallery.from_vectors(_unit(2, 8)).save(unrelated)


def test_index_cli_is_its_own_module():
    """Style guide: the CLI lives apart from the Gallery class; `python -m ccr_demo.gallery` still works."""
    import subprocess
    import sys

    import ccr_demo.gallery.cli as cli

    assert "argparse" not in open(index_mod.__file__).read() and cli.main is not None
    out = subprocess.run([sys.executable, "-m", "ccr_demo.gallery", "build", "-h"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(os.path.dirname(os.path.dirname(cli.__file__)))})
    assert out.returncode == 0 and "--overwrite" in out.stdout


def test_build_record_round_trips(tmp_path):
    """How a gallery was built (processes, shards, throughput) is kept in gallery.json."""
    g = Gallery.from_vectors(np.random.default_rng(0).normal(size=(5, 8)))
    g.build = {"processes": 2, "shards": 4, "images_per_second": 12.5}
    g.save(tmp_path / "g")
    assert Gallery.read_info(tmp_path / "g")["build"] == g.build
    assert Gallery.load(tmp_path / "g").build == g.build
    plain = Gallery.from_vectors(np.random.default_rng(1).normal(size=(5, 8)))
    plain.save(tmp_path / "p")
    assert "build" not in Gallery.read_info(tmp_path / "p") and Gallery.load(tmp_path / "p").build is None


@pytest.mark.parametrize("factory", ["IVF16,PQ8", "PQ8"])
def test_pq_factories_skip_polysemous_training(factory):
    """Searches never use polysemous codes; training them only slowed IVF-PQ builds down."""
    g = Gallery.from_vectors(_unit(2000, 32), index_factory=factory)
    try:
        inner = faiss.downcast_index(faiss.extract_index_ivf(g.index))
    except RuntimeError:
        inner = faiss.downcast_index(g.index)
    assert inner.do_polysemous_training is False and g.index.is_trained

"""The sharded gallery build (ccr_demo.gallery.build) and its streamed sources (ccr_demo.gallery.sources)."""

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ccr_demo.data.errors import DataFormatError
from ccr_demo.gallery.build import build_sharded
from ccr_demo.gallery.cli import main as cli_main
from ccr_demo.gallery.errors import GalleryWarning
from ccr_demo.gallery.gallery import Gallery
from ccr_demo.gallery.sources import (
    CcrkPartSource,
    FolderSource,
    ImageSource,
    SourceItem,
    TestSetSource,
    WitImageSource,
)

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 20


def _image(i: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8))


def _png_base64(i: int) -> str:
    buf = io.BytesIO()
    _image(i).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


@pytest.fixture
def one_thread():
    """Identical bytes need identical arithmetic: one thread, as the launched processes (OMP_NUM_THREADS=1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def model_dir(tiny_model_dir):
    return tiny_model_dir


@pytest.fixture
def model(tiny_saved_model):
    return tiny_saved_model


@pytest.fixture
def images(tmp_path):
    """20 images and a text file (skipped, with a warning, like Gallery.build's folders)."""
    root = tmp_path / "images"
    root.mkdir()
    for i in range(N_IMAGES):
        _image(i).save(root / f"img_{i:02d}.png")
    (root / "zz_notes.txt").write_text("not an image")
    return root


def _build(model, source, out, **kw):
    kw.setdefault("batch_size", 4)
    kw.setdefault("progress", False)
    return build_sharded(model, source, out, **kw)


@pytest.fixture
def two_threads():
    """What a plain one-process build gets on a 2-core machine, where torchrun gives each process 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_two_processes_give_the_gallery_of_one(model, model_dir, images, tmp_path, two_threads):
    """torchrun with 2 CPU processes (gloo, OMP_NUM_THREADS=1) against one process with 2 threads:
    byte-identical vectors and items (the build fixes its threads, issue 23); each process decoded
    only its chunks."""
    with pytest.warns(GalleryWarning, match="skipped 1 file"):
        _build(model, FolderSource(images), tmp_path / "g1", workers=0)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "ccr_demo.gallery", "build", "--model", str(model_dir), "--images", str(images),
                          "--out", str(tmp_path / "g2"), "--batch-size", "4", "--workers", "2"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("vectors.npy", "items.jsonl"):
        assert (tmp_path / "g1" / name).read_bytes() == (tmp_path / "g2" / name).read_bytes(), name
    build = Gallery.read_info(tmp_path / "g2")["build"]
    assert build["processes"] == 2 and build["chunks"] == 6 and build["images"] == N_IMAGES
    # 21 files in chunks of 4: process 0 owns chunks 0, 2, 4 (12 files), process 1 chunks 1, 3, 5 (4 + 4 + 1)
    assert [(p["rank"], p["chunks_encoded"], p["images_decoded"]) for p in build["per_process"]] == [(0, 3, 12),
                                                                                                       (1, 3, 9)]
    assert build["model_fingerprint"] == Gallery.read_info(tmp_path / "g1")["model_fingerprint"]
    assert not (tmp_path / "g2.parts").exists()


def test_a_killed_build_resumes_from_its_finished_chunks(model, images, tmp_path, one_thread, monkeypatch):
    with pytest.warns(GalleryWarning):
        clean = _build(model, FolderSource(images), tmp_path / "clean")
    calls = {"n": 0}
    encode = model.encode_images

    def dies_on_the_third_chunk(imgs, batch_size=32):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return encode(imgs, batch_size=batch_size)

    monkeypatch.setattr(model, "encode_images", dies_on_the_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        _build(model, FolderSource(images), tmp_path / "g", workers=2)
    work = tmp_path / "g.parts"
    assert sorted(p.name for p in work.glob("chunk-*.npy")) == ["chunk-0000000.npy", "chunk-0000001.npy"]
    assert not (tmp_path / "g").exists()

    # another build's inputs or batch size: refused, the work folder kept
    with pytest.raises(ValueError, match="work folder of another build.*batch_size: 4 there, 5 now"):
        _build(model, FolderSource(images), tmp_path / "g", batch_size=5)
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="work folder of another build.*inputs"):
        _build(model, FolderSource(tmp_path / "other"), tmp_path / "g")
    monkeypatch.setattr(model, "encode_images", encode)
    with pytest.warns(GalleryWarning):
        resumed = _build(model, FolderSource(images), tmp_path / "g")
    assert resumed.build["chunks_reused"] == 2 and resumed.build["images_encoded"] == N_IMAGES - 8
    assert resumed.build["per_process"][0]["images_decoded"] == N_IMAGES + 1 - 8
    assert np.array_equal(resumed.vectors, clean.vectors) and resumed.items == clean.items
    assert (tmp_path / "g" / "vectors.npy").read_bytes() == (tmp_path / "clean" / "vectors.npy").read_bytes()
    assert not work.exists()


def test_a_folder_that_is_not_a_work_folder_is_refused(model, images, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match="not a gallery build work folder"):
        _build(model, FolderSource(images), tmp_path / "g", work_dir=mine)
    assert (mine / "thesis.tex").read_text() == "years of work"
    # and the command line keeps the work folder off its inputs and its output
    for work, why in ((images, "is the --images input"), (tmp_path / "g" / "w", "lies inside the --out folder")):
        assert cli_main(["build", "--model", str(tmp_path / "model"), "--images", str(images), "--out",
                         str(tmp_path / "g"), "--work-dir", str(work)]) == 2
        assert why in capsys.readouterr().err


class _CountingSource(ImageSource):
    """20 in-memory images; counts how many were decoded."""

    def __init__(self):
        self.decoded = 0

    def _load(self, i):
        self.decoded += 1
        return _image(i)

    def __iter__(self):
        for i in range(N_IMAGES):
            yield SourceItem(f"item{i}", {}, lambda i=i: self._load(i))

    def describe(self):
        return {"format": "counting"}


@pytest.mark.parametrize("workers, most", [(0, 4), (2, 8)])
def test_sources_are_decoded_lazily(model, tmp_path, monkeypatch, workers, most):
    """When the first chunk is encoded, at most one chunk (two with decode threads) has been decoded."""
    source, seen = _CountingSource(), []
    encode = model.encode_images
    monkeypatch.setattr(model, "encode_images", lambda imgs, batch_size=32: (seen.append(source.decoded),
                                                                             encode(imgs, batch_size))[1])
    g = _build(model, source, tmp_path / "g", workers=workers)
    assert 4 <= seen[0] <= most and len(seen) == 5 and source.decoded == N_IMAGES
    assert g.ids == [f"item{i}" for i in range(N_IMAGES)]


def _reference(model, n, batch_size=4):
    """What Gallery.build makes of the same images in the same batches."""
    return Gallery.build(model, [_image(i) for i in range(n)], batch_size=batch_size, progress=False).vectors


def test_ccrk_part_files_with_base64_and_path_images(model, tmp_path, one_thread):
    parts = tmp_path / "ccrk"
    parts.mkdir()
    _image(5).save(parts / "five.png")
    rows = [{"caption": {"en": f"scene {i}"}, key: _png_base64(i)} for i, key in
            zip(range(5), ("image", "binary", "image_base64", "image", "binary"))]
    rows.append({"caption": {"en": "scene 5"}, "image_path": "five.png"})
    (parts / "part_0.data").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    (parts / "part_1.data").write_text("".join(json.dumps(r) + "\n" for r in rows[4:]))
    g = _build(model, CcrkPartSource(parts), tmp_path / "g")
    assert g.ids == ["part_0.data:1", "part_0.data:2", "part_0.data:3", "part_0.data:4", "part_1.data:1",
                     "part_1.data:2"]
    assert g.items[-1]["path"] == str(parts / "five.png") and "path" not in g.items[0]
    assert np.array_equal(g.vectors, _reference(model, 6))
    assert g.build["inputs"]["format"] == "ccrk"
    # an undecodable image in an explicit source is an error naming the file and line
    (parts / "part_1.data").write_text(json.dumps({"caption": {"en": "x"}, "image": "bm90IGFuIGltYWdl"}) + "\n")
    with pytest.raises(DataFormatError, match=r"part_1\.data, line 1.*not an image"):
        _build(model, CcrkPartSource(parts), tmp_path / "bad", work_dir=tmp_path / "bad.parts")


def test_wit_image_file_url_tab_base64(model, tmp_path, one_thread):
    wit = tmp_path / "wit"
    wit.mkdir()
    urls = [f"https://upload.wikimedia.org/img_{i}.jpg" for i in range(6)]
    (wit / "a.tsv").write_text("".join(f"{u}\t{_png_base64(i)}\n" for i, u in enumerate(urls[:3])))
    (wit / "b.tsv").write_text("".join(f"{u}\t{_png_base64(i + 3)}\r\n" for i, u in enumerate(urls[3:])))
    g = _build(model, WitImageSource(wit), tmp_path / "g")
    assert g.ids == urls and np.array_equal(g.vectors, _reference(model, 6))
    (wit / "b.tsv").write_text(f"{urls[3]}\t{_png_base64(3)}\nno tab on this line\n")
    with pytest.raises(DataFormatError, match=r"b\.tsv, line 2: expected 'url<TAB>base64'"):
        _build(model, WitImageSource(wit), tmp_path / "bad", work_dir=tmp_path / "bad.parts")


def test_iglue_and_ccrk_from_the_command_line(model, model_dir, tmp_path, one_thread, capsys):
    ig = tmp_path / "xflickr"
    (ig / "images").mkdir(parents=True)
    for lang in ("en", "de"):
        (ig / "annotations" / lang).mkdir(parents=True)
        rows = [{"id": f"i{n}", "img_path": f"{n}.png", "sentences": [f"{lang} caption {n}"]} for n in range(5)]
        (ig / "annotations" / lang / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for n in range(5):
        _image(n).save(ig / "images" / f"{n}.png")
    assert cli_main(["build", "--model", str(model_dir), "--iglue", str(ig), "--out", str(tmp_path / "x"),
                     "--batch-size", "2", "--captions"]) == 0
    images = Gallery.load(tmp_path / "x", model, image_root=ig)
    assert images.ids == [f"i{n}" for n in range(5)] and images.build["inputs"]["format"] == "iglue"
    assert np.array_equal(images.vectors, _reference(model, 5, batch_size=2))
    assert Gallery.load(tmp_path / "x-captions").count == 10
    assert isinstance(TestSetSource.from_iglue(ig).count(), int)

    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "part_0.data").write_text("".join(json.dumps({"caption": {"en": str(i)}, "image": _png_base64(i)}) + "\n"
                                               for i in range(3)))
    assert cli_main(["build", "--model", str(model_dir), "--ccrk", str(parts), "--out", str(tmp_path / "c"),
                     "--batch-size", "2"]) == 0
    assert Gallery.load(tmp_path / "c", model).count == 3
    assert "Gallery(3 images" in capsys.readouterr().out


def test_only_the_builders_own_files_are_removed_after_the_build(tmp_path):
    """A work folder that gained a file the build did not write keeps it (and itself), with a warning."""
    from ccr_demo.gallery.build import MANIFEST_NAME, _chunk_paths, _remove_work_dir

    work = tmp_path / "w"
    work.mkdir()
    for c in range(2):
        for p in _chunk_paths(work, c):
            p.write_text("x")
    (work / MANIFEST_NAME).write_text("{}")
    (work / "process-0.json").write_text("{}")
    (work / "notes.txt").write_text("the user's")
    with pytest.warns(GalleryWarning, match="left in place"):
        _remove_work_dir(work, 2)
    assert sorted(p.name for p in work.iterdir()) == ["notes.txt"]
    (work / "notes.txt").unlink()
    for c in range(2):
        for p in _chunk_paths(work, c):
            p.write_text("x")
    _remove_work_dir(work, 2)
    assert not work.exists()

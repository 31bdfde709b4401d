"""Thumbnails for images that come as base64 text (WIT, CCRK rows): written by the gallery build
into the gallery folder, kept when a gallery is saved again, checked on load (inside the
gallery folder only), and shown by the app and read by re-ranking instead of placeholders."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from ccr_demo.gallery import thumbnails
from ccr_demo.gallery.build import build_sharded
from ccr_demo.gallery.cli import main as cli_main
from ccr_demo.gallery.errors import GalleryError
from ccr_demo.gallery.gallery import Gallery
from ccr_demo.gallery.sources import CcrkPartSource, WitImageSource


def _image(i: int, size=(60, 40)) -> Image.Image:
    """A smooth image (JPEG keeps it close), different per i."""
    x = np.linspace(0, 1, size[0])[None, :, None]
    y = np.linspace(0, 1, size[1])[:, None, None]
    rgb = np.concatenate([x * 255 * np.ones_like(y), y * 255 * np.ones_like(x), (i * 40 % 256) * np.ones_like(x * y)],
                         axis=2)
    return Image.fromarray(rgb.astype(np.uint8))


def _b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


@pytest.fixture
def wit(tmp_path):
    folder = tmp_path / "wit"
    folder.mkdir()
    urls = [f"https://upload.wikimedia.org/img_{i}.jpg" for i in range(5)]
    (folder / "images.tsv").write_text("".join(f"{u}\t{_b64(_image(i))}\n" for i, u in enumerate(urls)))
    return folder


def _build(model, source, out, **kw):
    return build_sharded(model, source, out, batch_size=2, progress=False, **kw)


def test_a_wit_gallery_holds_a_thumbnail_of_every_image(tiny_saved_model, wit, tmp_path):
    out = tmp_path / "g"
    g = _build(tiny_saved_model, WitImageSource(wit), out, thumbnail_size=32)
    assert g.build["thumbnails"] == 5 and g.build["thumbnail_size"] == 32
    assert not (tmp_path / "g.parts").exists()  # the work folder (and its thumbnails) is gone
    loaded = Gallery.load(out, tiny_saved_model)
    for row in range(5):
        name = loaded.items[row]["thumbnail"]
        assert name == thumbnails.name_for(row // 2, row % 2)
        shown = loaded.image_file(row)
        assert shown == str((out / name).resolve()) and g.image_file(row) == shown
        with Image.open(shown) as im:
            assert im.format == "JPEG" and im.size == (32, 21)  # longer side 32, aspect kept
            small = np.asarray(_image(row).resize(im.size, Image.Resampling.LANCZOS), np.float32)
            assert np.abs(np.asarray(im.convert("RGB"), np.float32) - small).mean() < 6
    # never enlarged; 0 writes none
    big = _build(tiny_saved_model, WitImageSource(wit), tmp_path / "big", thumbnail_size=1000)
    with Image.open(big.image_file(0)) as im:
        assert im.size == (60, 40)
    none = _build(tiny_saved_model, WitImageSource(wit), tmp_path / "none", thumbnail_size=0)
    assert none.image_file(0) is None and not (tmp_path / "none" / "thumbnails").exists()
    assert "thumbnail" not in none.items[0]


def test_images_with_a_file_get_no_thumbnail(tiny_saved_model, tmp_path):
    parts = tmp_path / "ccrk"
    parts.mkdir()
    _image(9).save(parts / "nine.png")
    rows = [{"caption": {"en": "a"}, "image": _b64(_image(0))}, {"caption": {"en": "b"}, "image_path": "nine.png"}]
    (parts / "part_0.data").write_text("".join(json.dumps(r) + "\n" for r in rows))
    g = _build(tiny_saved_model, CcrkPartSource(parts), tmp_path / "g")
    assert g.build["thumbnails"] == 1
    assert g.build["thumbnail_size"] == thumbnails.default_size(tiny_saved_model.config.image_size)
    assert "thumbnail" in g.items[0] and "thumbnail" not in g.items[1]
    assert g.image_file(1) == str(parts / "nine.png")
    assert [p.name for p in (tmp_path / "g" / "thumbnails").rglob("*.jpg")] == ["0000.jpg"]


def test_thumbnails_travel_with_the_gallery(tiny_saved_model, wit, tmp_path):
    _build(tiny_saved_model, WitImageSource(wit), tmp_path / "a", thumbnail_size=24)
    a = Gallery.load(tmp_path / "a", tiny_saved_model)
    a.save(tmp_path / "b")
    shutil.rmtree(tmp_path / "a")  # the copy does not depend on the original
    b = Gallery.load(tmp_path / "b", tiny_saved_model)
    assert all(b.image_file(r) and b.image_file(r).startswith(str((tmp_path / "b").resolve())) for r in range(5))
    b.save(tmp_path / "b")  # saved over itself: the thumbnails survive the swap
    assert all(Gallery.load(tmp_path / "b", tiny_saved_model).image_file(r) for r in range(5))


def test_a_save_that_would_lose_thumbnails_is_refused(tiny_saved_model, wit, tmp_path):
    """Re-indexing a gallery's items without its thumbnails folder, then saving over the
    gallery, would have deleted thumbnails/: it is an error, and the gallery stays as it was."""
    _build(tiny_saved_model, WitImageSource(wit), tmp_path / "g", thumbnail_size=24)
    g = Gallery.load(tmp_path / "g", tiny_saved_model)
    hnsw = Gallery.from_vectors(g.vectors, g.ids, metadata=g.items, index_factory="HNSW32",
                                fingerprint=g.fingerprint)
    with pytest.raises(GalleryError, match="names the thumbnail 'thumbnails/0000000/0000.jpg' but no thumbnails "
                                           "folder is attached"):
        hnsw.save(tmp_path / "g")
    assert all(Gallery.load(tmp_path / "g", tiny_saved_model).image_file(r) for r in range(5))
    hnsw.thumbnail_root = tmp_path / "g"  # attached: saved with them
    hnsw.save(tmp_path / "g")
    again = Gallery.load(tmp_path / "g", tiny_saved_model)
    assert again.index_factory == "HNSW32" and all(again.image_file(r) for r in range(5))


def test_a_users_thumbnails_folder_is_not_replaced_without_overwrite(tiny_saved_model, wit, tmp_path):
    g = _build(tiny_saved_model, WitImageSource(wit), tmp_path / "g", thumbnail_size=24)
    (tmp_path / "g" / "thumbnails" / "notes.txt").write_text("the user's")
    with pytest.raises(FileExistsError, match="thumbnails"):
        g.save(tmp_path / "g")
    assert (tmp_path / "g" / "thumbnails" / "notes.txt").read_text() == "the user's"


def test_a_resumed_build_with_another_thumbnail_size_is_refused(tiny_saved_model, wit, tmp_path, monkeypatch):
    from ccr_demo.gallery import build as gallery_build

    real = gallery_build._write_chunk
    calls = []

    def die_after_first(*args):
        real(*args)
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(gallery_build, "_write_chunk", die_after_first)
    with pytest.raises(KeyboardInterrupt):
        _build(tiny_saved_model, WitImageSource(wit), tmp_path / "g", thumbnail_size=24)
    monkeypatch.setattr(gallery_build, "_write_chunk", real)
    first_chunk = tmp_path / "g.parts" / "thumbnails" / "0000000"
    assert sorted(p.name for p in first_chunk.iterdir()) == ["0000.jpg", "0001.jpg"]
    with pytest.raises(ValueError, match="thumbnail_size: 24 there, 32 now"):
        _build(tiny_saved_model, WitImageSource(wit), tmp_path / "g", thumbnail_size=32)
    # a thumbnail left empty (the machine crashed before it reached the disk): the chunk is encoded again
    (first_chunk / "0001.jpg").write_bytes(b"")
    g = _build(tiny_saved_model, WitImageSource(wit), tmp_path / "g", thumbnail_size=24)
    assert g.build["chunks_reused"] == 0 and all(Image.open(g.image_file(r)).size == (24, 16) for r in range(5))


def test_a_work_folder_from_before_thumbnails_resumes_a_folder_build(tiny_saved_model, tmp_path, monkeypatch):
    """Folder images need no thumbnails: a work folder whose manifest predates them still resumes."""
    from ccr_demo.gallery import build as gallery_build
    from ccr_demo.gallery.sources import FolderSource

    images = tmp_path / "images"
    images.mkdir()
    for i in range(5):
        _image(i).save(images / f"{i}.png")
    real = gallery_build._write_chunk

    def die_after_first(*args):
        real(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(gallery_build, "_write_chunk", die_after_first)
    with pytest.raises(KeyboardInterrupt):
        _build(tiny_saved_model, FolderSource(images), tmp_path / "g")
    monkeypatch.setattr(gallery_build, "_write_chunk", real)
    manifest = tmp_path / "g.parts" / "manifest.json"
    old = json.loads(manifest.read_text())
    assert old.pop("thumbnail_size") == 0
    manifest.write_text(json.dumps(old))
    g = _build(tiny_saved_model, FolderSource(images), tmp_path / "g")
    assert g.build["chunks_reused"] == 1 and g.build["thumbnails"] == 0


def test_a_work_folder_inside_the_gallery_folder_is_refused(tiny_saved_model, wit, tmp_path):
    with pytest.raises(ValueError, match="overlap"):
        _build(tiny_saved_model, WitImageSource(wit), tmp_path / "g", work_dir=tmp_path / "g" / "parts")


def _tamper(folder, row: int, **changes):
    """Rewrite one item of a saved gallery (and drop the checksums, as an attacker would)."""
    lines = (folder / "items.jsonl").read_text().splitlines()
    lines[row] = json.dumps({**json.loads(lines[row]), **changes})
    (folder / "items.jsonl").write_text("\n".join(lines) + "\n")
    info = json.loads((folder / "gallery.json").read_text())
    info.pop("sha256", None)
    (folder / "gallery.json").write_text(json.dumps(info))


@pytest.mark.parametrize("mmap,verify", [(False, True), (True, True), (True, False)])
def test_a_thumbnail_outside_the_gallery_folder_is_refused(tiny_saved_model, wit, tmp_path, mmap, verify):
    _build(tiny_saved_model, WitImageSource(wit), tmp_path / "g", thumbnail_size=24)
    secret = tmp_path / "secret.jpg"
    _image(0).save(secret)
    for n, bad in enumerate(("../secret.jpg", str(secret), "thumbnails/../../secret.jpg", "thumbnails/x.jpg",
                             "thumbnails/0000000/../../../secret.jpg", "", 7)):
        folder = tmp_path / f"bad{n}"
        shutil.copytree(tmp_path / "g", folder)
        _tamper(folder, 1, thumbnail=bad)
        with pytest.raises(GalleryError, match=r"items\.jsonl:(record )?2: 'thumbnail' must name a file"):
            Gallery.load(folder, tiny_saved_model, mmap=mmap, verify=verify).items[1]  # mmap: checked when read
    # a link inside the folder that leads out of it: never shown (the app gets a placeholder)
    folder = tmp_path / "link"
    shutil.copytree(tmp_path / "g", folder)
    os.symlink(secret, folder / "thumbnails" / "0000000" / "evil.jpg")
    _tamper(folder, 0, thumbnail="thumbnails/0000000/evil.jpg")
    g = Gallery.load(folder, tiny_saved_model, mmap=mmap, verify=verify)
    assert g.image_file(0) is None and g.image_file(1) is not None
    # ... nor when the link is swapped in after the gallery was loaded
    (folder / "thumbnails" / "0000000" / "0001.jpg").unlink()
    os.symlink(secret, folder / "thumbnails" / "0000000" / "0001.jpg")
    assert g.image_file(1) is None
    g.save(tmp_path / "resaved")  # and a re-save leaves the links out
    assert not (tmp_path / "resaved" / "thumbnails" / "0000000" / "0001.jpg").exists()
    assert Gallery.load(tmp_path / "resaved", tiny_saved_model).image_file(1) is None


def test_the_command_line_writes_thumbnails_and_the_app_shows_them(tiny_model_dir, wit, tmp_path, capsys,
                                                                   monkeypatch):
    from ccr_demo.ui import callbacks as cb
    from ccr_demo.ui.loading import load_app_state

    out = tmp_path / "g"
    assert cli_main(["build", "--model", str(tiny_model_dir), "--wit", str(wit), "--out", str(out),
                     "--thumbnails", "48", "--batch-size", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"5 thumbnails (48 px) for images with no file of their own, in {out / 'thumbnails'}" in printed
    for var in ("CCR_MODEL", "CCR_GALLERY", "CCR_TESTSET", "CCR_CAPTIONS", "CCR_MODELS"):
        monkeypatch.delenv(var, raising=False)
    state = load_app_state(tiny_model_dir, out, tmp_path / "no-test-set", warm_up=False, caption_cache=False)
    assert state.gallery is not None, state.problems
    res = cb.search(state, {"en": "a picture", "de": "ein Bild"}, 3)
    assert res.ok
    for lang in ("en", "de"):
        for (image, _), row in zip(res.panes[lang], res.pane_rows[lang]):
            assert isinstance(image, str) and image == state.gallery.image_file(row)
            assert image.startswith(str(out.resolve() / "thumbnails"))
    assert cli_main(["build", "--model", str(tiny_model_dir), "--wit", str(wit), "--out", str(tmp_path / "h"),
                     "--thumbnails", "-1"]) == 2
    assert "thumbnail_size must be >= 0" in capsys.readouterr().err


def test_a_hub_snapshot_whose_thumbnails_are_cache_links(tiny_saved_model, wit, tmp_path):
    """A Hub snapshot's files are links into the repo cache's blobs/: with the repo declared as
    an image root (as the app does for Hub galleries) the thumbnails load, show and re-save."""
    _build(tiny_saved_model, WitImageSource(wit), tmp_path / "built", thumbnail_size=24)
    repo = tmp_path / "datasets--someone--gal"
    snap, blobs = repo / "snapshots" / "abc123", repo / "blobs"
    blobs.mkdir(parents=True)
    for f in sorted(p for p in (tmp_path / "built").rglob("*") if p.is_file()):
        link = snap / f.relative_to(tmp_path / "built")
        link.parent.mkdir(parents=True, exist_ok=True)
        blob = blobs / f"{len(list(blobs.iterdir())):04d}"
        shutil.move(str(f), blob)
        os.symlink(blob, link)
    bare = Gallery.load(snap, tiny_saved_model)  # without the repo declared, the links lead outside
    assert all(bare.image_file(r) is None for r in range(5))
    g = Gallery.load(snap, tiny_saved_model, image_root=repo)
    assert all(g.image_file(r).startswith(str(blobs.resolve())) for r in range(5))
    g.save(tmp_path / "copy")
    copy = Gallery.load(tmp_path / "copy", tiny_saved_model)
    for r in range(5):
        saved = tmp_path / "copy" / copy.items[r]["thumbnail"]
        assert saved.is_file() and not saved.is_symlink() and copy.image_file(r) == str(saved.resolve())

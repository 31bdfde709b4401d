"""Readers for the real CCR formats: tiny fixtures written per test, plus the real xFlickr&CO text."""

from __future__ import annotations

import base64
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import XFLICKRCO
from PIL import Image, ImageFile

from ccr_demo.data.errors import DataFormatError, DataFormatWarning
from ccr_demo.data.images import load_image
from ccr_demo.data.readers.ccrk_json import read_ccrk_json
from ccr_demo.data.readers.ccrk_pretrain import read_ccrk_pretrain
from ccr_demo.data.readers.iglue import read_iglue_jsonl
from ccr_demo.data.readers.wit import read_wit_images, read_wit_jsonl
from ccr_demo.data.testset import ParallelTestSet


def png_bytes(color=(255, 0, 0), size=(4, 3), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _strict_pillow(monkeypatch):
    """Truncated files must be errors whatever another test or library set globally."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)


# --------------------------------------------------------------------------- CCRK pretraining


def make_pretrain(tmp_path: Path, n_parts=2, rows_per_part=3) -> Path:
    root = tmp_path / "train"
    (root / "images").mkdir(parents=True)
    k = 0
    for p in range(n_parts):
        rows = []
        for _ in range(rows_per_part):
            (root / "images" / f"{k}.png").write_bytes(png_bytes((k, 0, 0)))
            rows.append({"caption": {"en": f"red {k}", "de": f"rot {k}", "zh": f"红 {k}"},
                         "image_path": f"images/{k}.png", "scene": {"k": k}, "noise": {"de": {"swap": 1}}})
            k += 1
        write_jsonl(root / f"part_{p}.data", rows)
    return root


def test_pretrain_path_images(tmp_path):
    root = make_pretrain(tmp_path)
    recs = read_ccrk_pretrain(root, ["en", "de"])
    assert len(recs) == 6
    assert recs[4].captions["de"] == "rot 4" and recs[4].line == 2 and recs[4].file.endswith("part_1.data")
    assert recs[4].scene == {"k": 4} and recs[4].noise == {"de": {"swap": 1}}
    im = recs[4].load_image()
    assert im.mode == "RGB" and im.getpixel((0, 0)) == (4, 0, 0)


def test_pretrain_part_order_is_natural(tmp_path):
    for p in (10, 2):
        write_jsonl(tmp_path / f"part_{p}.data", [{"caption": {"en": f"p{p}"}, "image_path": "x.png"}])
    assert [r.captions["en"] for r in read_ccrk_pretrain(tmp_path)] == ["p2", "p10"]


def test_pretrain_image_root_and_absolute_paths(tmp_path):
    imgs = tmp_path / "elsewhere"
    imgs.mkdir()
    (imgs / "a.png").write_bytes(png_bytes((1, 2, 3)))
    part = write_jsonl(tmp_path / "data" / "part_0.data", [
        {"caption": {"en": "a"}, "image_path": "a.png"},
        {"caption": {"en": "b"}, "image_path": str(imgs / "a.png")},
    ])
    recs = read_ccrk_pretrain(part.parent, image_root=imgs, check_images=True)
    assert [r.load_image().getpixel((0, 0)) for r in recs] == [(1, 2, 3), (1, 2, 3)]


@pytest.mark.parametrize("key", ["image", "binary", "image_base64"])
def test_pretrain_base64_images(tmp_path, key):
    b64 = base64.b64encode(png_bytes((9, 8, 7))).decode()
    part = write_jsonl(tmp_path / "part_0.data", [
        {"caption": {"en": "x", "fr": "y"}, key: b64},
        {"caption": {"en": "z", "fr": "w"}, key: "data:image/png;base64," + b64},
    ])
    recs = read_ccrk_pretrain(part.parent, ["fr"])
    assert [r.image_key for r in recs] == [key, key] and recs[0].image_path is None
    assert recs[1].load_image().getpixel((0, 0)) == (9, 8, 7)


def test_pretrain_bad_base64_names_line(tmp_path):
    write_jsonl(tmp_path / "part_0.data", [{"caption": {"en": "x"}, "image": "bm90IGFuIGltYWdl"}])
    rec = read_ccrk_pretrain(tmp_path)[0]
    with pytest.raises(DataFormatError, match=r"part_0\.data, line 1 \(base64 'image'\).*not an image"):
        rec.load_image()


@pytest.mark.parametrize("line, pattern", [
    ('{"caption": {"en": "a"}, "image_path": "a.png"', r"line 2: malformed JSON"),
    ('{"image_path": "a.png"}', r"line 2: missing required key 'caption'"),
    ('{"caption": {"en": "a"}}', r"line 2: missing image"),
    ('{"caption": {"de": "a"}, "image_path": "a.png"}', r"line 2: caption lacks language 'en'"),
    ('{"caption": "a plain string", "image_path": "a.png"}', r"line 2: 'caption' must be"),
    ('[1, 2]', r"line 2: expected a JSON object"),
])
def test_pretrain_bad_rows_name_file_and_line(tmp_path, line, pattern):
    good = json.dumps({"caption": {"en": "ok"}, "image_path": "a.png"})
    write_jsonl(tmp_path / "part_0.data", [good, line, good])
    with pytest.raises(DataFormatError, match=r"part_0\.data, " + pattern):
        read_ccrk_pretrain(tmp_path, ["en"])


def test_pretrain_empty_file_and_missing_folder(tmp_path):
    (tmp_path / "part_0.data").write_text("\n\n")
    with pytest.raises(DataFormatError, match=r"part_0\.data: file is empty"):
        read_ccrk_pretrain(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=r"empty: no part_\*\.data files"):
        read_ccrk_pretrain(tmp_path / "empty")
    with pytest.raises(DataFormatError, match="no such file or folder"):
        read_ccrk_pretrain(tmp_path / "missing")


def test_pretrain_missing_image_when_checked_or_loaded(tmp_path):
    write_jsonl(tmp_path / "part_0.data", [{"caption": {"en": "a"}, "image_path": "gone.png"}])
    rec = read_ccrk_pretrain(tmp_path)[0]  # unchecked: reading text only is fine
    with pytest.raises(DataFormatError, match=r"gone\.png \(from .*part_0\.data, line 1\): image file not found"):
        rec.load_image()
    with pytest.raises(DataFormatError, match=r"part_0\.data, line 1: image file not found: .*gone\.png"):
        read_ccrk_pretrain(tmp_path, check_images=True)


def test_pretrain_non_image_and_truncated_png_name_the_file(tmp_path):
    (tmp_path / "notes.png").write_text("not a png")
    (tmp_path / "cut.png").write_bytes(png_bytes(size=(64, 64))[:60])
    write_jsonl(tmp_path / "part_0.data", [{"caption": {"en": "a"}, "image_path": "notes.png"},
                                           {"caption": {"en": "b"}, "image_path": "cut.png"}])
    a, b = read_ccrk_pretrain(tmp_path)
    with pytest.raises(DataFormatError, match=r"notes\.png \(from .*line 1\): not an image file"):
        a.load_image()
    with pytest.raises(DataFormatError, match=r"cut\.png \(from .*line 2\): cannot decode image \(truncated"):
        b.load_image()


def test_pretrain_skip_bad_warns_once_with_count(tmp_path):
    good = {"caption": {"en": "ok", "de": "gut"}, "image_path": "a.png"}
    write_jsonl(tmp_path / "part_0.data", [good, "{oops", {"caption": {"en": "x"}, "image_path": "a.png"}, good])
    write_jsonl(tmp_path / "part_1.data", [{"image_path": "a.png"}, good])
    with pytest.warns(DataFormatWarning) as rec:
        recs = read_ccrk_pretrain(tmp_path, ["en", "de"], skip_bad=True)
    assert len(recs) == 3
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert msg.startswith("skipped 3 bad rows in ") and "part_0.data, line 2: malformed JSON" in msg


# --------------------------------------------------------------------------- images


def test_load_image_converts_modes_safely():
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (10, 20, 30, 255))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    im = load_image(buf.getvalue())
    assert im.getpixel((0, 0)) == (255, 255, 255) and im.getpixel((1, 0)) == (10, 20, 30)  # transparent -> white

    pal = Image.new("P", (2, 1), 0)
    pal.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 0
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)
    im = load_image(buf.getvalue())
    assert im.getpixel((0, 0)) == (255, 255, 255) and im.getpixel((1, 0)) == (200, 100, 50)

    g16 = Image.fromarray(np.array([[0, 65535]], dtype=np.uint16))  # 16-bit grey: scaled, not clipped
    buf = io.BytesIO()
    g16.save(buf, "PNG")
    im = load_image(buf.getvalue())
    assert im.getpixel((0, 0)) == (0, 0, 0) and im.getpixel((1, 0)) == (255, 255, 255)

    for mode, color in [("L", 7), ("LA", (7, 255)), ("1", 1), ("CMYK", (0, 0, 0, 0)), ("I", 32896), ("F", 0.5)]:
        buf = io.BytesIO()
        fmt = "TIFF" if mode in ("CMYK", "I", "F") else "PNG"
        Image.new(mode, (3, 2), color).save(buf, fmt)
        im = load_image(buf.getvalue())
        assert im.mode == "RGB" and im.size == (3, 2), mode
    assert load_image(buf.getvalue()).getpixel((0, 0)) == (128, 128, 128)  # F in [0, 1] -> 8 bit


def test_load_image_decompression_bomb_guard(tmp_path, monkeypatch):
    p = tmp_path / "big.png"
    p.write_bytes(png_bytes(size=(20, 20)))
    with pytest.raises(DataFormatError, match=r"big\.png: image is 20x20 = 400 pixels, over the limit of 100"):
        load_image(p, max_pixels=100)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150)  # Pillow's own error (> 2x) is converted too
    with pytest.raises(DataFormatError, match=r"big\.png: .*decompression"):
        load_image(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # Pillow would only warn: our guard raises
    with pytest.raises(DataFormatError, match="over the limit of 300"):
        load_image(p)
    assert load_image(p, max_pixels=400).size == (20, 20)


def test_load_image_errors_name_the_source(tmp_path):
    with pytest.raises(DataFormatError, match=r"nope\.jpg: image file not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(DataFormatError, match=r"row 3: not an image file"):
        load_image(b"hello", name="row 3")


# --------------------------------------------------------------------------- IGLUE xFlickr&CO


def make_iglue(tmp_path: Path, drop_de: str | None = None) -> Path:
    rows = [
        {"id": 391895, "img_path": "COCO_val2014_000000391895.jpg", "sentences": ["a man", "a guy"], "scene": 0},
        {"id": "1007129816", "img_path": "1007129816.jpg", "sentences": ["a dog"], "scene": 1,
         "noise": {"en": {"kind": "swap"}}},
        {"id": "42", "img_path": "42.jpg", "sentences": ["a cat"], "scene": 2},
    ]
    de = [
        {"id": "42", "img_path": "42.jpg", "sentences": ["eine Katze"], "scene": 2},
        {"id": 1007129816, "img_path": "1007129816.jpg", "sentences": ["ein Hund"], "scene": 1, "noise": True},
        {"id": "391895", "img_path": "COCO_val2014_000000391895.jpg", "sentences": ["ein Mann"], "scene": 0},
    ]
    de = [r for r in de if str(r["id"]) != drop_de]
    write_jsonl(tmp_path / "ds" / "annotations" / "en" / "test.jsonl", rows)
    write_jsonl(tmp_path / "ds" / "annotations" / "de" / "test.jsonl", de)
    return tmp_path / "ds"


def test_iglue_aligns_by_id_across_languages(tmp_path):
    ds = make_iglue(tmp_path)
    ts = ParallelTestSet.from_iglue(ds, ["en", "de"])
    assert ts.languages == ["en", "de"] and len(ts) == 3
    assert ts.image_ids == ["391895", "1007129816", "42"]
    assert ts.image_paths[2] == str(ds / "images" / "42.jpg")
    assert ts.captions["en"] == ["a man", "a guy", "a dog", "a cat"]
    assert ts.captions["de"] == ["ein Mann", "ein Hund", "eine Katze"]  # reordered to en's order
    assert ts.text_to_image["en"].tolist() == [0, 0, 1, 2] and ts.text_to_image["en"].dtype == np.int64
    assert ts.image_to_texts["en"] == [[0, 1], [2], [3]]
    assert ts.first_text["en"].tolist() == [0, 2, 3] and ts.first_text["de"].tolist() == [0, 1, 2]
    assert ts.noisy["en"].tolist() == [False, False, True, False] and ts.noisy["de"].tolist() == [False, True, False]
    assert ts.scenes == [0, 1, 2]
    # the annotations folder itself works too; languages default to the folders present, in K order
    assert ParallelTestSet.from_iglue(ds / "annotations").languages == ["en", "de"]


def test_iglue_subset_and_slicing(tmp_path):
    ts = ParallelTestSet.from_iglue(make_iglue(tmp_path), ["en", "de"])
    sub = ts.subset(2)
    assert len(sub) == 2 and sub.captions["en"] == ["a man", "a guy", "a dog"] and sub.scenes == [0, 1]
    picked = ts[[2, 0]]
    assert picked.image_ids == ["42", "391895"] and picked.image_to_texts["en"] == [[0], [1, 2]]
    assert picked.text_to_image["en"].tolist() == [0, 1, 1] and picked.noisy["de"].tolist() == [False, False]
    assert ts[::2].image_ids == ["391895", "42"]
    assert ts.with_languages(["de"]).captions == {"de": ["ein Mann", "ein Hund", "eine Katze"]}
    assert len(ts[:0]) == 0 and ts[:0].first_text["en"].shape == (0,)


def test_iglue_missing_id_is_an_error_naming_language_and_id(tmp_path):
    ds = make_iglue(tmp_path, drop_de="1007129816")
    with pytest.raises(DataFormatError, match=r"language 'de' has no instance with id '1007129816'.*intersect=True"):
        ParallelTestSet.from_iglue(ds, ["en", "de"])
    with pytest.warns(DataFormatWarning, match="kept the 2 ids common"):
        ts = ParallelTestSet.from_iglue(ds, ["en", "de"], intersect=True)
    assert ts.image_ids == ["391895", "42"] and ts.captions["de"] == ["ein Mann", "eine Katze"]


def test_iglue_image_roots_and_checks(tmp_path):
    ds = make_iglue(tmp_path)
    ts = ParallelTestSet.from_iglue(ds, ["en"], image_root={"coco": "/c", "flickr30k": "/f"})
    assert ts.image_paths == ["/c/COCO_val2014_000000391895.jpg", "/f/1007129816.jpg", "/f/42.jpg"]
    (ds / "images").mkdir()
    for name in ("COCO_val2014_000000391895.jpg", "42.jpg"):
        Image.new("RGB", (5, 5), (0, 200, 0)).save(ds / "images" / name, "JPEG")
    with pytest.raises(DataFormatError, match=r"en/test\.jsonl, line 2: image file not found: .*1007129816\.jpg"):
        ParallelTestSet.from_iglue(ds, ["en", "de"], check_images=True)
    with pytest.warns(DataFormatWarning, match="skipped 1 bad row"):
        ts = ParallelTestSet.from_iglue(ds, ["en", "de"], check_images=True, skip_bad=True)
    assert ts.image_ids == ["391895", "42"] and ts.missing_images() == []
    assert ts.load_image(1).getpixel((2, 2))[1] > 150


@pytest.mark.parametrize("row, pattern", [
    ('{"id": 1, "img_path": "1.jpg"}', r"line 2: missing required key 'sentences'"),
    ('{"id": 1, "img_path": "1.jpg", "sentences": "one"}', r"line 2: 'sentences' must be"),
    ('{"id": null, "img_path": "1.jpg", "sentences": ["x"]}', r"line 2: 'id' must be"),
    ('{"id": "0", "img_path": "0.jpg", "sentences": ["x"]}', r"line 2: duplicate id '0' \(first on line 1\)"),
    ('{"id": 1, "img_path": "1.jpg", "sentences": ["x"]', r"line 2: malformed JSON"),
])
def test_iglue_bad_rows(tmp_path, row, pattern):
    p = write_jsonl(tmp_path / "en" / "test.jsonl", ['{"id": 0, "img_path": "0.jpg", "sentences": ["a"]}', row])
    with pytest.raises(DataFormatError, match=r"test\.jsonl, " + pattern):
        read_iglue_jsonl(p)


def test_iglue_empty_file_and_mismatched_images(tmp_path):
    (tmp_path / "a" / "annotations" / "en").mkdir(parents=True)
    (tmp_path / "a" / "annotations" / "en" / "test.jsonl").write_text("")
    with pytest.raises(DataFormatError, match=r"en/test\.jsonl: file is empty"):
        ParallelTestSet.from_iglue(tmp_path / "a")
    ds = make_iglue(tmp_path)
    p = ds / "annotations" / "de" / "test.jsonl"
    p.write_text(p.read_text().replace('"42.jpg"', '"43.jpg"'))
    with pytest.raises(DataFormatError, match=r"id '42' has image .*42\.jpg.*en/test\.jsonl, line 3.*43\.jpg"):
        ParallelTestSet.from_iglue(ds, ["en", "de"])


def test_real_xflickrco_annotations():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ts = ParallelTestSet.from_iglue(XFLICKRCO)
    # one de and one id caption are empty in the release: kept (the set stays parallel), warned about
    caught = [w for w in caught if issubclass(w.category, DataFormatWarning)]
    assert sorted(str(w.message).split("/annotations/")[1][:2] for w in caught) == ["de", "id"]
    assert ts.languages == ["en", "de", "zh", "ja", "id", "es", "ru", "tr"]  # ccr_demo.LANGUAGES order
    assert len(ts) == 2000 and all(len(ts.captions[lang]) == 2000 for lang in ts.languages)
    assert all(isinstance(i, str) for i in ts.image_ids) and len(set(ts.image_ids)) == 2000
    assert ts.image_ids[0] == "1007129816" and ts.image_ids[1000] == "391895"  # Flickr str, COCO int
    assert ts.captions["en"][0] == "The man with pierced ears is wearing glasses and an orange hat."
    assert ts.captions["zh"][0] == "一个戴着橙色线帽的白人"
    assert ts.image_paths[1000].endswith("images/COCO_val2014_000000391895.jpg")
    for lang in ("ja", "zh"):  # every caption sits at its own id, whatever the file order
        lines = (XFLICKRCO / "annotations" / lang / "test.jsonl").read_text(encoding="utf-8").splitlines()
        raw = {str(r["id"]): r["sentences"][0] for r in map(json.loads, lines)}
        assert [raw[i] for i in ts.image_ids] == ts.captions[lang]
    assert ts.text_to_image["en"].tolist() == list(range(2000)) and ts.noisy is None and ts.scenes is None


# --------------------------------------------------------------------------- WIT


def make_wit(tmp_path: Path):
    rows = [
        {"image_idx": 3, "image_url": "http://u/a.jpg", "caption_reference_description": "A tower", "language": "en",
         "wit_ix": "wit-test_0"},
        {"image_idx": 4, "image_url": "http://u/b.jpg", "caption_reference_description": "", "language": "en"},
        {"image_idx": 5, "image_url": "http://u/c.jpg", "caption_reference_description": "A map", "language": "en"},
        {"image_idx": 5, "image_url": "http://u/c.jpg", "caption_reference_description": "The map", "language": "en"},
    ]
    ann = write_jsonl(tmp_path / "annotations" / "test_en.jsonl", rows)
    imgs = tmp_path / "images"
    imgs.mkdir()
    (imgs / "part0.csv").write_text(
        "".join(f"{u}\t{base64.b64encode(png_bytes(c)).decode()}\n"
                for u, c in [("http://u/a.jpg", (1, 1, 1)), ("http://u/zzz.jpg", (0, 0, 0)),
                             ("http://u/c.jpg", (3, 3, 3))]))
    return ann, imgs


def test_wit_rows_images_and_test_set(tmp_path):
    ann, imgs = make_wit(tmp_path)
    rows = read_wit_jsonl(ann)
    assert [r.caption for r in rows] == ["A tower", "A map", "The map"]  # empty caption dropped, like CCLM
    assert set(read_wit_images(imgs, {"http://u/a.jpg"})) == {"http://u/a.jpg"}
    ts = ParallelTestSet.from_wit({"en": ann}, imgs)
    assert ts.image_ids == ["http://u/a.jpg", "http://u/c.jpg"] and ts.image_to_texts["en"] == [[0], [1, 2]]
    assert ts.load_image(1).getpixel((0, 0)) == (3, 3, 3)
    assert ParallelTestSet.from_wit({"en": ann}).image_data is None  # text-only


def test_wit_merged_image_content_and_errors(tmp_path):
    ann, imgs = make_wit(tmp_path)
    b64 = base64.b64encode(png_bytes((5, 6, 7))).decode()
    merged = write_jsonl(tmp_path / "merged.jsonl", [
        {"image_url": "u1", "caption_reference_description": "x", "image_content": b64}])
    assert ParallelTestSet.from_wit({"en": merged}).load_image(0).getpixel((0, 0)) == (5, 6, 7)
    (imgs / "part0.csv").write_text(f"http://u/a.jpg\t{b64}\nno tab here\n")
    with pytest.raises(DataFormatError, match=r"part0\.csv, line 2: expected 'url<TAB>base64'"):
        read_wit_images(imgs)
    (imgs / "part0.csv").write_text(f"http://u/a.jpg\t{b64}\n")
    with pytest.raises(DataFormatError, match=r"test_en\.jsonl, line 3: no image for url 'http://u/c\.jpg'"):
        ParallelTestSet.from_wit({"en": ann}, imgs)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"image_url": "u1", "caption": "wrong key"}])
    with pytest.raises(DataFormatError, match=r"bad\.jsonl, line 1: missing required key 'caption_reference_desc"):
        read_wit_jsonl(bad)
    with pytest.raises(DataFormatError, match="not parallel"):  # WIT languages have different images
        ParallelTestSet.from_wit({"en": ann, "xx": merged})


# --------------------------------------------------------------------------- CCRK retrieval JSON


def test_ccrk_json_eval_and_train_forms(tmp_path):
    en = tmp_path / "test_en.json"
    en.write_text(json.dumps([{"image": "flickr/1.jpg", "caption": ["a dog", "dog"], "image_id": 1},
                              {"image": "flickr/2.jpg", "caption": ["a cat"], "image_id": "2"}]))
    de = tmp_path / "test_de.json"
    de.write_text(json.dumps([{"image": "flickr/2.jpg", "caption": ["eine Katze"], "image_id": 2},
                              {"image": "flickr/1.jpg", "caption": ["ein Hund"], "image_id": "1"}]))
    ts = ParallelTestSet.from_ccrk_json({"en": en, "de": de}, image_root="/imgs")
    assert ts.image_ids == ["1", "2"] and ts.captions["de"] == ["ein Hund", "eine Katze"]
    assert ts.image_paths == ["/imgs/flickr/1.jpg", "/imgs/flickr/2.jpg"] and ts.first_text["en"].tolist() == [0, 2]
    train = tmp_path / "train.json"
    train.write_text(json.dumps([{"caption": "a", "image": "1.jpg", "image_id": 1},
                                 {"caption": "b", "image": "2.jpg", "image_id": 2},
                                 {"caption": "c", "image": "1.jpg", "image_id": 1}]))
    assert [(e.image_id, e.captions) for e in read_ccrk_json(train)] == [("1", ["a", "c"]), ("2", ["b"])]


def test_ccrk_json_errors(tmp_path):
    p = tmp_path / "t.json"
    p.write_text('[\n {"image": "1.jpg", "caption": ["a"], "image_id": 1},\n {"image": "2.jpg" "caption": []}\n]')
    with pytest.raises(DataFormatError, match=r"t\.json, line 3: malformed JSON"):
        read_ccrk_json(p)
    p.write_text(json.dumps([{"image": "1.jpg", "caption": ["a"], "image_id": 1},
                             {"image": "2.jpg", "caption": ["b"]}]))
    with pytest.raises(DataFormatError, match=r"t\.json, item 1: missing required key 'image_id'"):
        read_ccrk_json(p)
    with pytest.warns(DataFormatWarning, match=r"skipped 1 bad row in .*t\.json \(first: .*item 1"):
        assert len(read_ccrk_json(p, skip_bad=True)) == 1
    p.write_text("")
    with pytest.raises(DataFormatError, match=r"t\.json: file is empty"):
        read_ccrk_json(p)

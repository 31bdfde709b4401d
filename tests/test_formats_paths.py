"""Dataset rows may not point outside the dataset root (issue 11 item 4): absolute paths
elsewhere and ``..`` out of the root are bad rows in CCRK pretraining, IGLUE and CCRK-JSON
files, even with check_images=True and an existing target, unless ``allow_outside_root=True``."""

import json
import warnings
from pathlib import Path

import pytest
from PIL import Image

from ccr_demo.data.errors import DataFormatError
from ccr_demo.data.readers.ccrk_pretrain import read_ccrk_pretrain
from ccr_demo.data.testset import ParallelTestSet

# paths that escape the root; each target exists, so check_images alone does not stop them
ESCAPES = ["{outside}", "../outside.png", "images/../../outside.png", "./images/sub/./../../../outside.png"]
# the same, relative to an image root one level down (ds/images)
ESCAPES_IMAGES = ["{outside}", "../../outside.png", "sub/../../../outside.png", "./sub/./../../../outside.png"]


@pytest.fixture
def layout(tmp_path):
    """tmp/outside.png (a file a dataset must not reach) and tmp/ds/ (the dataset root)."""
    Image.new("RGB", (4, 4)).save(tmp_path / "outside.png")
    ds = tmp_path / "ds"
    (ds / "images" / "sub").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(ds / "images" / "ok.png")
    Image.new("RGB", (4, 4)).save(ds / "images" / "sub" / "ok2.png")
    return tmp_path, ds


def _escape(path, tmp_path):
    return path.format(outside=str(tmp_path / "outside.png"))


def _write_pretrain(ds, image_path):
    rows = [{"caption": {"en": "a", "de": "b"}, "image_path": "images/ok.png"},
            {"caption": {"en": "c", "de": "d"}, "image_path": image_path}]
    (ds / "part_0.data").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


@pytest.mark.parametrize("escape", ESCAPES)
def test_ccrk_pretrain_rows_stay_inside_the_root(layout, escape):
    tmp_path, ds = layout
    bad = _escape(escape, tmp_path)
    _write_pretrain(ds, bad)
    with pytest.raises(DataFormatError, match=r"part_0\.data, line 2: image path .* is outside the dataset root"):
        read_ccrk_pretrain(ds, ["en", "de"], check_images=True)
    with pytest.warns(UserWarning, match="skipped 1 bad row"):
        recs = read_ccrk_pretrain(ds, ["en", "de"], check_images=True, skip_bad=True)
    assert [Path(r.image_path).name for r in recs] == ["ok.png"]
    recs = read_ccrk_pretrain(ds, ["en", "de"], check_images=True, allow_outside_root=True)
    assert Path(recs[1].image_path).resolve() == (tmp_path / "outside.png").resolve()


def test_paths_inside_the_root_still_read(layout):
    _, ds = layout
    _write_pretrain(ds, "images/sub/../sub/ok2.png")
    recs = read_ccrk_pretrain(ds, ["en", "de"], check_images=True)
    assert len(recs) == 2


def _write_iglue(ds, img_path):
    for lang in ("en", "de"):
        d = ds / "annotations" / lang
        d.mkdir(parents=True, exist_ok=True)
        rows = [{"id": 1, "img_path": "ok.png", "sentences": [f"{lang} one"]},
                {"id": 2, "img_path": img_path, "sentences": [f"{lang} two"]}]
        (d / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


@pytest.mark.parametrize("escape", ESCAPES_IMAGES)
def test_iglue_rows_stay_inside_the_image_root(layout, escape):
    tmp_path, ds = layout
    bad = _escape(escape, tmp_path)
    _write_iglue(ds, bad)
    assert (ds / "images" / bad).resolve() == (tmp_path / "outside.png").resolve()
    with pytest.raises(DataFormatError, match=r"test\.jsonl, line 2: image path"):
        ParallelTestSet.from_iglue(ds, check_images=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = ParallelTestSet.from_iglue(ds, check_images=True, skip_bad=True)
    assert ts.image_ids == ["1"]
    ts = ParallelTestSet.from_iglue(ds, check_images=True, allow_outside_root=True)
    assert len(ts.image_ids) == 2


@pytest.mark.parametrize("escape", ["{outside}", "../../outside.png"])
def test_ccrk_json_items_stay_inside_the_root(layout, escape):
    tmp_path, ds = layout
    bad = _escape(escape, tmp_path)
    files = {}
    for lang in ("en", "de"):
        f = ds / "images" / f"test_{lang}.json"
        f.write_text(json.dumps([{"image": "ok.png", "caption": [f"{lang} one"], "image_id": 1},
                                 {"image": bad, "caption": [f"{lang} two"], "image_id": 2}]))
        files[lang] = f
    assert (ds / "images" / bad).resolve() == (tmp_path / "outside.png").resolve()
    with pytest.raises(DataFormatError, match=r"test_en\.json, item 1: image path"):
        ParallelTestSet.from_ccrk_json(files, check_images=True)
    ts = ParallelTestSet.from_ccrk_json(files, check_images=True, allow_outside_root=True)
    assert len(ts.image_ids) == 2

"""Torch datasets: 1-to-K and 1-to-1 items, reproducible language draws, collate, readable errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from torch.utils.data import DataLoader

from ccr_demo.data.errors import DataFormatError, DataFormatWarning
from ccr_demo.data.image_batches import EvalImageDataset, collate_images
from ccr_demo.data.readers.ccrk_pretrain import PretrainRecord
from ccr_demo.data.testset import ParallelTestSet
from ccr_demo.training.datasets import MultilingualPretrainDataset, collate_pretrain

LANGS = {"zh": "红", "en": "red", "de": "rot", "fr": "rouge"}


@pytest.fixture(autouse=True)
def _strict_pillow(monkeypatch):
    """Truncated files must be errors whatever another test or library set globally."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)


def make_pretrain(root: Path, n=8, size=(6, 5)) -> Path:
    (root / "images").mkdir(parents=True)
    rows = []
    for k in range(n):
        Image.new("RGB", size, (k, 0, 0)).save(root / "images" / f"{k}.png")
        rows.append({"caption": {lang: f"{w} {k}" for lang, w in LANGS.items()}, "image_path": f"images/{k}.png"})
    (root / "part_0.data").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return root


def fake_records(n: int) -> list[PretrainRecord]:
    """Text-only records: enough to test language draws without touching images."""
    return [PretrainRecord({lang: f"{lang}{k}" for lang in LANGS}, "mem", k + 1, image_path="/nonexistent.png")
            for k in range(n)]


def test_one_to_k_yields_k_captions_in_fixed_order(tmp_path):
    ds = MultilingualPretrainDataset(make_pretrain(tmp_path), ["de", "zh", "en"])
    image, texts, index = ds[3]
    assert texts == ["rot 3", "红 3", "red 3"] and index == 3
    assert image.shape == (3, 5, 6) and image.dtype == torch.float32 and abs(image[0, 0, 0].item() - 3 / 255) < 1e-6
    # default order: the first row's languages in the paper's K order (ccr_demo.LANGUAGES)
    assert MultilingualPretrainDataset(tmp_path).languages == ["en", "de", "fr", "zh"]


def test_one_to_one_is_uniform_and_reproducible():
    n, langs = 4000, ["en", "de", "fr", "zh"]
    ds = MultilingualPretrainDataset(fake_records(n), langs, mode="one_to_one", seed=7)
    choice = ds.language_choice(np.arange(n))
    counts = np.bincount(choice, minlength=4)
    assert abs(counts - n / 4).max() < 5 * np.sqrt(n / 4)  # ~uniform (5 sigma)
    assert ds.texts(5) == [f"{langs[choice[5]]}5"]
    same = MultilingualPretrainDataset(fake_records(n), langs, mode="one_to_one", seed=7)
    assert (same.language_choice(np.arange(n)) == choice).all()  # reproducible
    ds.set_epoch(1)
    epoch1 = ds.language_choice(np.arange(n))
    assert (epoch1 == ds.language_choice(np.arange(n), epoch=1)).all()
    assert 0.6 < (epoch1 != choice).mean() < 0.9  # a fresh draw per epoch (3/4 differ)
    other = MultilingualPretrainDataset(fake_records(n), langs, mode="one_to_one", seed=8)
    assert 0.6 < (other.language_choice(np.arange(n)) != choice).mean() < 0.9


def test_missing_language_fails_at_construction_or_is_skipped(tmp_path):
    root = make_pretrain(tmp_path, n=4)
    lines = (root / "part_0.data").read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[2])
    del row["caption"]["fr"]
    lines[2] = json.dumps(row)
    (root / "part_0.data").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"part_0\.data, line 3: caption lacks language 'fr'"):
        MultilingualPretrainDataset(root, ["en", "fr"])
    with pytest.warns(DataFormatWarning, match="skipped 1 bad row"):
        ds = MultilingualPretrainDataset(root, ["en", "fr"], skip_bad=True)
    assert len(ds) == 3 and MultilingualPretrainDataset(root, ["en", "de"]).__len__() == 4
    with pytest.raises(DataFormatError, match=r"mem, line 1: caption lacks language 'ja'"):
        MultilingualPretrainDataset(fake_records(3), ["en", "ja"])


def test_collate_shapes_through_a_dataloader(tmp_path):
    ds = MultilingualPretrainDataset(make_pretrain(tmp_path), ["en", "de", "fr"])
    images, texts, indices = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_pretrain)))
    assert images.shape == (4, 3, 5, 6) and len(texts) == 4 and all(len(t) == 3 for t in texts)
    assert texts[2] == ["red 2", "rot 2", "rouge 2"]
    assert indices.tolist() == [0, 1, 2, 3] and indices.dtype == torch.int64
    pil = MultilingualPretrainDataset(tmp_path, ["en"], transform=lambda im: im)  # a model's own preprocessing
    images, _, _ = collate_pretrain([pil[0], pil[1]])
    assert isinstance(images, list) and isinstance(images[0], Image.Image)


def test_set_epoch_reaches_persistent_workers(tmp_path):
    ds = MultilingualPretrainDataset(make_pretrain(tmp_path, n=8), mode="one_to_one", seed=3)
    loader = DataLoader(ds, batch_size=8, num_workers=2, persistent_workers=True, collate_fn=collate_pretrain)
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        _, texts, _ = next(iter(loader))
        assert texts == [ds.texts(i) for i in range(8)]
    assert ds.language_choice(np.arange(8), 0).tolist() != ds.language_choice(np.arange(8), 1).tolist()


def test_corrupt_image_error_names_file_and_line_even_from_a_worker(tmp_path):
    root = make_pretrain(tmp_path, n=4)
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    (root / "images" / "2.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # truncated in IDAT
    ds = MultilingualPretrainDataset(root)
    with pytest.raises(DataFormatError, match=r"2\.png \(from .*part_0\.data, line 3\): cannot decode image"):
        ds[2]
    with pytest.raises(DataFormatError, match=r"part_0\.data, line 3"):
        list(DataLoader(ds, batch_size=2, num_workers=1, collate_fn=collate_pretrain))
    ds.transform = lambda im: 1 / 0
    with pytest.raises(DataFormatError, match=r"part_0\.data, line 1: transform failed: ZeroDivisionError"):
        ds[0]


def test_mixed_sizes_need_a_resizing_transform():
    a, b = torch.zeros(3, 4, 4), torch.zeros(3, 5, 4)
    with pytest.raises(DataFormatError, match="resizing transform"):
        collate_pretrain([(a, ["x"], 0), (b, ["y"], 1)])


def test_eval_image_dataset_over_a_parallel_test_set(tmp_path):
    ann = tmp_path / "ds" / "annotations"
    for lang in ("en", "de"):
        (ann / lang).mkdir(parents=True)
        (ann / lang / "test.jsonl").write_text(
            "".join(json.dumps({"id": k, "img_path": f"{k}.png", "sentences": [f"{lang} {k}"]}) + "\n"
                    for k in range(5)))
    (tmp_path / "ds" / "images").mkdir()
    for k in range(5):
        buf = io.BytesIO()
        Image.new("LA", (7, 7), (k * 10, 255)).save(buf, "PNG")
        (tmp_path / "ds" / "images" / f"{k}.png").write_bytes(buf.getvalue())
    ts = ParallelTestSet.from_iglue(tmp_path / "ds")
    ds = EvalImageDataset(ts)
    images, indices = next(iter(DataLoader(ds, batch_size=5, collate_fn=collate_images)))
    assert images.shape == (5, 3, 7, 7) and indices.tolist() == [0, 1, 2, 3, 4]
    assert torch.allclose(images[3, :, 0, 0], torch.full((3,), 30 / 255))
    (tmp_path / "ds" / "images" / "4.png").unlink()
    with pytest.raises(DataFormatError, match=r"images/4\.png: image file not found"):
        EvalImageDataset(ts.subset(5))[4]

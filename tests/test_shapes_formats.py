"""The generated shapes world read back through the readers used for the real datasets."""

import json

import numpy as np

from ccr_demo import LANGUAGES
from ccr_demo.data.readers.ccrk_pretrain import read_ccrk_pretrain
from ccr_demo.data.shapes import generate_dataset
from ccr_demo.data.testset import ParallelTestSet
from ccr_demo.training.datasets import MultilingualPretrainDataset


def test_generated_dataset_reads_back_through_the_real_readers(tmp_path):
    out = generate_dataset(tmp_path / "d", n_train=30, n_val=6, n_test=12, n_test_compositional=8, image_size=48,
                           seed=5, noise={"de": 0.5}, workers=1, progress=False)
    records = read_ccrk_pretrain(out / "train", LANGUAGES, check_images=True)
    assert len(records) == 30 and all(set(r.captions) == set(LANGUAGES) for r in records)
    assert any(r.noise and "de" in r.noise for r in records)  # recorded translation noise
    image = records[0].load_image()
    assert image.mode == "RGB" and image.size == (48, 48)

    test = ParallelTestSet.from_iglue(out / "test", check_images=True)
    assert len(test) == 12 and test.languages == list(LANGUAGES)
    assert np.array_equal(test.text_to_image["zh"], np.arange(12))  # one caption per instance
    rows = [json.loads(line) for line in (out / "test" / "annotations" / "ja" / "test.jsonl").open(encoding="utf-8")]
    assert test.captions["ja"] == [r["sentences"][0] for r in rows]
    assert test.load_image(3).size == (48, 48)
    assert len(ParallelTestSet.from_iglue(out / "test_compositional")) == 8

    ds = MultilingualPretrainDataset(out / "train", ["en", "ru", "ja"])
    _, texts, index = ds[4]
    assert texts == [records[4].captions[lang] for lang in ("en", "ru", "ja")] and index == 4

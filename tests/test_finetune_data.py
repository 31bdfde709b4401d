"""The official real-data recipe (pre_caption, training-only augmentation), one-language
retrieval training data, and the zero-shot fine-tuning entry point."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import XFLICKRCO
from PIL import Image

from ccr_demo.data.errors import DataFormatError
from ccr_demo.data.readers.caption_pairs import read_caption_pairs
from ccr_demo.data.testset import ParallelTestSet
from ccr_demo.model.processing import ImageProcessor, TrainTransform, pre_caption
from ccr_demo.training.config import DataConfig, ExperimentConfig
from ccr_demo.training.configs import load_config
from ccr_demo.training.datasets import (
    CaptionCleaner,
    CaptionPairDataset,
    build_train_dataset,
    check_data_config,
    clean_test_set,
    eval_languages,
    load_eval_set,
)
from ccr_demo.utils.config import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- pre_caption
@pytest.mark.parametrize("raw, max_words, expected", [
    ("A man, in a \"red\" shirt; rides (a) bike!!", 30, "a man in a red shirt rides a bike"),
    ("Two dogs: one's   black ~ the other white.", 30, "two dogs ones black the other white"),
    ("A T-shirt/jeans <person> at 5*3 #tag?", 30, "a t shirt jeans person at 53 tag"),
    ("  one two\tthree\nfour five  ", 3, "one two three"),
    ("Ein Mann fährt Fahrrad.", 30, "ein mann fährt fahrrad"),
    ("Un homme à vélo, près d'une rivière.", 30, "un homme à vélo près dune rivière"),
    ("ČERVENÝ TROJÚHELNÍK.", 30, "červený trojúhelník"),
    # CJK: no spaces, so the caption is one "word" and max_words never cuts it; full-width
    # punctuation is kept (the official character class is ASCII), ASCII punctuation dropped.
    ("一个男人在骑自行车。", 2, "一个男人在骑自行车。"),
    ("自転車に乗っている男性、犬と一緒に!", 1, "自転車に乗っている男性、犬と一緒に"),
    ("一只狗 和 一只猫. A dog", 3, "一只狗 和 一只猫"),
])
def test_pre_caption_matches_the_official_rule(raw, max_words, expected):
    assert pre_caption(raw, max_words) == expected


def test_pre_caption_empty_result():
    with pytest.raises(ValueError, match="leaves nothing"):
        pre_caption("...!?", 30)
    assert pre_caption("...!?", 30, allow_empty=True) == ""
    assert CaptionCleaner(30)(" ... ") == "..."  # a dataset keeps it rather than crash mid-epoch
    with pytest.raises(TypeError):
        pre_caption(None, 30)


# ----------------------------------------------------------------------------- augmentation
def _photo(w=96, h=64):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def test_augmentation_is_off_by_default():
    d = DataConfig()
    assert (d.crop_scale, d.hflip, d.randaugment, d.clean_captions, d.train_format) == \
        ([], False, {}, False, "ccrk_pretrain")
    proc = ImageProcessor(image_size=32)
    t = TrainTransform(proc, d.crop_scale, d.hflip, d.randaugment)
    assert not t.active
    im = _photo()
    assert torch.equal(t(im), proc(im))  # exactly the eval preprocessing


def test_train_transform_randomises_and_keeps_the_eval_processor():
    proc = ImageProcessor(image_size=32)
    before = proc.to_dict()
    t = TrainTransform(proc, [0.2, 1.0], True, {"num_ops": 2, "magnitude": 7})
    assert t.active
    im = _photo()
    torch.manual_seed(0)
    outs = [t(im) for _ in range(4)]
    assert all(o.shape == (3, 32, 32) and o.dtype == torch.float32 for o in outs)
    assert not all(torch.equal(outs[0], o) for o in outs[1:])  # random
    assert proc.to_dict() == before and torch.equal(proc(im), proc(im))  # eval path untouched
    flip = TrainTransform(proc, hflip=True)
    torch.manual_seed(1)
    flipped = {tuple(flip(im).flatten()[:8].tolist()) for _ in range(12)}
    assert len(flipped) == 2  # flipped or not, nothing else changes


@pytest.mark.parametrize("data, match", [
    ({"crop_scale": [0.5]}, "crop_scale"),
    ({"crop_scale": [0.8, 0.2]}, "crop_scale"),
    ({"randaugment": {"n": 2}}, "unknown key"),
    ({"randaugment": {"num_ops": 0}}, "num_ops"),
    ({"train_format": "csv"}, "train_format"),
    ({"max_words": 0}, "max_words"),
    ({"train_format": "iglue", "languages": ["en", "de"]}, "one language"),
])
def test_data_config_checks_name_the_setting(data, match):
    cfg = from_dict(ExperimentConfig, {"data": data})
    with pytest.raises(ConfigError, match=match):
        check_data_config(cfg)


def _shapes(tmp_path):
    from ccr_demo.data.shapes import generate_dataset

    return generate_dataset(tmp_path / "shapes", n_train=8, n_val=0, n_test=4, n_test_compositional=0,
                            image_size=32, seed=0, workers=1, progress=False, queries_per_scene=1,
                            n_test_queries=0)


@pytest.mark.parametrize("setting", ["data.hflip=true", "data.crop_scale=[0.5, 1.0]",
                                     "data.randaugment={num_ops: 2, magnitude: 7}"])
def test_spatial_and_colour_augmentation_is_refused_for_the_shapes_world(tmp_path, setting):
    data = _shapes(tmp_path)
    from ccr_demo.utils.config import apply_overrides

    cfg = apply_overrides(ExperimentConfig(), [f"data.train={data / 'train'}", "data.languages=[en]", setting])
    with pytest.raises(ConfigError, match="shapes world.*left / right"):
        build_train_dataset(cfg, ImageProcessor(image_size=32))


def test_training_augmentation_is_a_function_of_seed_epoch_and_index(tmp_path):
    """Same item, epoch and seed: the same augmented image in any worker and after a resume;
    the global RNG (dropout) is left alone."""
    path = _write_ccrk_train(tmp_path)
    cfg = from_dict(ExperimentConfig, {"data": {"train": str(path), "train_format": "ccrk_json", "languages": ["en"],
                                                "crop_scale": [0.2, 1.0], "hflip": True,
                                                "randaugment": {"num_ops": 2, "magnitude": 9}}})
    ds = build_train_dataset(cfg, ImageProcessor(image_size=16))
    state = torch.random.get_rng_state()
    a = ds[0][0]
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(build_train_dataset(cfg, ImageProcessor(image_size=16))[0][0], a)
    ds.set_epoch(1)
    assert not torch.equal(ds[0][0], a)


def test_shapes_world_trains_on_english_only_with_clean_captions(tmp_path):
    data = _shapes(tmp_path)
    from ccr_demo.utils.config import apply_overrides

    cfg = apply_overrides(ExperimentConfig(), [f"data.train={data / 'train'}", "data.languages=[en]",
                                               "data.clean_captions=true", "data.full_caption_prob=1.0"])
    ds = build_train_dataset(cfg, ImageProcessor(image_size=32))
    image, texts, index = ds[0]
    assert image.shape == (3, 32, 32) and len(texts) == 1
    raw = ds.records[0].captions["en"]
    assert texts == [pre_caption(raw, 30)] and texts[0] != raw  # lowercased, full stop dropped
    assert all(t == pre_caption(t, 30) for t in ds.all_texts())


# ----------------------------------------------------------------------------- readers
def test_iglue_training_pairs_from_the_real_file():
    recs = read_caption_pairs(XFLICKRCO / "annotations" / "en" / "test.jsonl", "en", "iglue",
                              image_root="/data/flickr30k")
    assert len(recs) == 2000 and all(set(r.captions) == {"en"} for r in recs)
    first = json.loads((XFLICKRCO / "annotations" / "en" / "test.jsonl").open().readline())
    assert recs[0].captions["en"] == first["sentences"][0]
    assert recs[0].image_path == f"/data/flickr30k/{first['img_path']}" and recs[0].where.endswith("line 1")


def test_eval_set_in_other_languages_than_training_real_file():
    """The zero-shot protocol: train on [en], evaluate on all 8 languages of xFlickr&CO."""
    cfg = from_dict(ExperimentConfig, {"data": {"languages": ["en"], "eval_max_instances": 50,
                                                "eval_languages": ["en", "de", "ja", "zh"]}})
    assert eval_languages(cfg) == ["en", "de", "ja", "zh"]
    ts = load_eval_set(cfg, XFLICKRCO)
    assert ts.languages == ["en", "de", "ja", "zh"] and len(ts) == 50
    cfg.data.clean_captions = True
    clean = load_eval_set(cfg, XFLICKRCO)
    assert clean.image_ids == ts.image_ids
    assert clean.captions["en"][0] == pre_caption(ts.captions["en"][0], 30)
    assert clean.captions["zh"][0] == pre_caption(ts.captions["zh"][0], 30)


def _write_ccrk_train(tmp_path):
    (tmp_path / "img").mkdir()
    for seed, name in enumerate(("a.jpg", "b.jpg")):
        pixels = np.random.default_rng(seed).integers(0, 255, (30, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "img" / name)
    items = [{"caption": "A red square.", "image": "img/a.jpg", "image_id": 1},
             {"caption": "Something red!", "image": "img/a.jpg", "image_id": 1},
             {"caption": "A blue square.", "image": "img/b.jpg", "image_id": "2"}]
    path = tmp_path / "en.train.json"
    path.write_text(json.dumps(items))
    return path


def test_ccrk_json_training_pairs_and_same_image_false_negatives(tmp_path):
    path = _write_ccrk_train(tmp_path)
    recs = read_caption_pairs(path, "en", "ccrk_json")
    assert [r.captions["en"] for r in recs] == ["A red square.", "Something red!", "A blue square."]
    assert recs[2].where == f"{path}, item 2"
    cfg = from_dict(ExperimentConfig, {"data": {"train": str(path), "train_format": "ccrk_json",
                                                "languages": ["en"], "clean_captions": True}})
    ds = build_train_dataset(cfg, ImageProcessor(image_size=16))
    assert isinstance(ds, CaptionPairDataset) and len(ds) == 3
    image, texts, _ = ds[1]
    assert image.shape == (3, 16, 16) and texts == ["something red"]
    fn = ds.false_negatives([0, 1, 2])
    assert fn.tolist() == [[False, True, False], [True, False, False], [False, False, False]]


def test_caption_pair_reader_errors(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps([{"caption": "x", "image": "../../etc/passwd", "image_id": 1}]))
    with pytest.raises(DataFormatError, match="outside the dataset root"):
        read_caption_pairs(path, "en", "ccrk_json")
    with pytest.raises(ValueError, match="format must be one of"):
        read_caption_pairs(path, "en", "csv")
    jsonl = tmp_path / "train_ann.jsonl"
    jsonl.write_text(json.dumps({"id": 1, "img_path": "a.jpg"}) + "\n")
    with pytest.raises(DataFormatError, match="line 1: missing required key 'sentences'"):
        read_caption_pairs(jsonl, "en", "iglue")


def test_clean_test_set_keeps_parallel_structure():
    ts = ParallelTestSet(["1", "2"], ["a.jpg", "b.jpg"], {"en": [["A dog.", "Dog!"], ["A cat."]],
                                                         "zh": [["一只狗。"], [""]]})
    clean = clean_test_set(ts, 30)
    assert clean.instance_captions("en") == [["a dog", "dog"], ["a cat"]]
    assert clean.instance_captions("zh") == [["一只狗。"], [""]]  # an empty one stays (parallel)
    assert clean.image_to_texts == ts.image_to_texts


# ----------------------------------------------------------------------------- configs, entry point
def test_finetune_configs_load_and_describe_the_protocol():
    for name in ("finetune_shapes", "finetune_384"):
        cfg = load_config(name)
        check_data_config(cfg)
        assert cfg.languages == ["en"] and len(eval_languages(cfg)) >= 8 and cfg.train.init_from
    shapes = load_config("finetune_shapes")
    assert not (shapes.data.hflip or shapes.data.crop_scale or shapes.data.randaugment)
    big = load_config("finetune_384")
    assert big.model.image_size == 384 and big.data.train_format == "iglue"
    assert (big.data.crop_scale, big.data.hflip, big.data.clean_captions) == ([0.5, 1.0], True, True)


def test_finetune_refuses_what_it_cannot_do(tmp_path):
    from ccr_demo.training.finetune import check_finetune_config

    with pytest.raises(ConfigError, match="one language"):
        check_finetune_config(from_dict(ExperimentConfig, {"data": {"train": "d", "languages": ["en", "de"]}}))
    with pytest.raises(ConfigError, match="not a saved model folder"):
        check_finetune_config(from_dict(ExperimentConfig, {"data": {"train": "d", "languages": ["en"]},
                                                           "train": {"init_from": str(tmp_path)}}))


@pytest.mark.slow
def test_finetune_on_english_evaluates_every_language(tmp_path):
    """Tiny zero-shot run through ccr-finetune's function: train on en (K=1), then the
    saved model is evaluated on en, de and zh; zero_shot.json records it."""
    from ccr_demo.model.modeling import CCRModel
    from ccr_demo.training.finetune import ZERO_SHOT_REPORT, finetune

    data = tmp_path / "d"
    cfg = from_dict(ExperimentConfig, {
        "model": {"image_tower": "test_vit", "image_kwargs": {"img_size": 32}, "image_size": 32,
                  "text_tower": "random:bert", "embed_dim": 32, "text_max_length": 40,
                  "text_kwargs": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                  "intermediate_size": 64},
                  "languages": ["en", "de", "zh"]},
        "data": {"train": str(data / "train"), "eval": [str(data / "test")], "languages": ["en"],
                 "eval_languages": ["en", "de", "zh"], "full_caption_prob": 1.0,
                 "generate": {"out": str(data), "n_train": 32, "n_val": 0, "n_test": 8, "n_test_compositional": 0,
                              "image_size": 32, "seed": 1, "workers": 1, "progress": False}},
        "train": {"batch_size": 8, "max_steps": 2, "log_with": "none", "output_dir": str(tmp_path / "out"),
                  "init_from": str(tmp_path / "pretrained")},
    })
    CCRModel(cfg.model).save_pretrained(tmp_path / "pretrained")  # fine-tuning starts from a saved model
    summary = finetune(cfg, progress=False)
    [report] = summary["zero_shot"]
    assert report["trained_on"] == ["en"] and report["zero_shot_languages"] == ["de", "zh"]
    saved = json.loads((tmp_path / "out" / ZERO_SHOT_REPORT).read_text())
    assert saved[0]["zero_shot_languages"] == ["de", "zh"]
    assert saved[0]["languages"] == ["en", "de", "zh"] and set(saved[0]["t2i"]) == {"en", "de", "zh"}
    assert saved[0]["mrv"]["t2i"] >= 0 and saved[0]["n_instances"] == 8

"""YAML <-> dataclass: unknown keys and wrong types are errors that name the key."""

import pytest

from ccr_demo.model.configuration import ModelConfig
from ccr_demo.utils.config import ConfigError, apply_overrides, from_dict, load_yaml


def test_round_trip_and_overrides(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("embed_dim: 128\nlanguages: [en, de]\ntext_kwargs: {hidden_size: 32}\n")
    cfg = load_yaml(ModelConfig, p, ["embed_dim=64", "text_pooling=cls", "languages=en,zh"])
    assert cfg.embed_dim == 64 and cfg.text_pooling == "cls" and cfg.languages == ["en", "zh"]
    assert cfg.text_kwargs == {"hidden_size": 32}


@pytest.mark.parametrize("data,msg", [
    ({"embed_dimm": 3}, "unknown key.*embed_dimm"),
    ({"embed_dim": "big"}, "embed_dim: expected int"),
    ({"embed_dim": 2.5}, "embed_dim: expected an integer"),
    ({"image_pretrained": "maybe"}, "image_pretrained: expected true/false"),
    ({"text_pooling": "max"}, "text_pooling"),
    ({"init_temperature": 0.9}, "temperatures"),
])
def test_bad_values_name_the_key(data, msg):
    with pytest.raises(ConfigError, match=msg):
        from_dict(ModelConfig, data)


def test_string_fields_keep_yaml_booleans_as_typed(tmp_path):
    from ccr_demo.training.config import ExperimentConfig

    cfg = apply_overrides(ExperimentConfig(), ["train.mixed_precision=no", "train.output_dir=yes"])
    assert cfg.train.mixed_precision == "no" and cfg.train.output_dir == "yes"
    p = tmp_path / "c.yaml"
    p.write_text("train: {mixed_precision: no}\n")
    with pytest.raises(ConfigError, match="quote the value"):
        load_yaml(ExperimentConfig, p)


def test_bad_override_and_files(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        apply_overrides(ModelConfig(), ["nope=1"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(ModelConfig(), ["embed_dim"])
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(ModelConfig, tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(ModelConfig, tmp_path / "bad.yaml")


def test_a_training_config_is_a_shipped_name_or_a_path(tmp_path, monkeypatch):
    from ccr_demo.training.configs import SHIPPED, load_config, resolve_config, shipped_configs

    assert {"default", "tiny", "paper", "finetune_shapes"} <= set(shipped_configs())
    assert shipped_configs("ablation") == ["ablation/full", "ablation/quick"]
    assert resolve_config("tiny") == SHIPPED / "tiny.yaml"
    assert resolve_config("ablation/quick") == SHIPPED / "ablation" / "quick.yaml"
    assert load_config("tiny", ["train.lr=0.5"]).train.lr == 0.5
    monkeypatch.chdir(tmp_path)  # a path is relative to the working directory
    (tmp_path / "mine.yaml").write_text("train: {lr: 0.25}\n")
    assert load_config("mine.yaml").train.lr == 0.25
    with pytest.raises(ConfigError, match="no shipped config of that name.*default, .*tiny"):
        resolve_config("tiniest")
    with pytest.raises(ConfigError, match="config file not found: nowhere.yaml"):
        resolve_config("nowhere.yaml")
    with pytest.raises(ConfigError, match="no shipped config"):
        resolve_config("../config")  # a name never leaves the shipped folder

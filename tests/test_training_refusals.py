"""Configs that passed validation and then died with a traceback (issue 23 item 6): each is now
refused up front by ccr-pretrain / ccr-finetune with one line naming the key, exit status 2, and
no training, caching or data generation started."""

import math
import subprocess
import sys
from pathlib import Path

import pytest

from ccr_demo.training import cli
from ccr_demo.training.config import DataConfig, ExperimentConfig, TrainConfig
from ccr_demo.utils.config import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if a run gets as far as training (ccr-pretrain's and ccr-finetune's loop)."""
    from ccr_demo.training import loop

    def refuse(*args, **kwargs):
        raise AssertionError("the run started although its config is invalid")

    monkeypatch.setattr(cli, "train", refuse)
    monkeypatch.setattr(loop, "train", refuse)


def _refused(capsys, rc: int, kind: str = "config") -> str:
    """The one line the command printed: exit 2, '<kind> error: ...', no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert "Traceback" not in err and lines, err
    assert lines[-1].startswith(f"{kind} error: "), err
    return lines[-1]


@pytest.mark.parametrize("override, key", [
    ("model.languages=[]", "model.languages"),
    ("model.languages=[en, 5]", "model.languages[1]"),
    ("data.languages=[en, null]", "data.languages[1]"),
    ("data.languages=[en, '']", "data.languages"),
    ("data.eval_languages=[de, 7]", "data.eval_languages[1]"),
    ("train.lr=.nan", "train.lr"),
    ("train.lr=nan", "train.lr"),
    ("train.lr_new=.nan", "train.lr_new"),
    ("train.lr_mult=.inf", "train.lr_mult"),
    ("train.weight_decay=.nan", "train.weight_decay"),
    ("train.weight_decay=-0.1", "train.weight_decay"),
    ("train.grad_clip=.inf", "train.grad_clip"),
    ("data.full_caption_prob=.nan", "data.full_caption_prob"),
    ("data.full_caption_prob=1.5", "data.full_caption_prob"),
    ("train.epochs=1.0e+30", "train.epochs"),
    ("train.epochs=1.0e+9", "train.epochs"),
    ("train.seed=-1", "train.seed"),
    ("train.losses={itc: .nan}", "train.losses.itc"),
])
def test_pretrain_refuses_a_bad_value_naming_its_key(override, key, no_training, capsys):
    line = _refused(capsys, cli.pretrain(["--config", "tiny", override]))
    assert key in line, line


def test_a_yaml_file_is_checked_alike(tmp_path, no_training, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("model: {languages: []}\ntrain: {lr: .nan}\n")
    assert "model.languages" in _refused(capsys, cli.pretrain(["--config", str(path)]))


@pytest.mark.parametrize("config, key", [
    (ExperimentConfig(train=TrainConfig(lr=math.nan)), "train.lr"),
    (ExperimentConfig(train=TrainConfig(lr_new=math.inf)), "train.lr_new"),
    (ExperimentConfig(train=TrainConfig(grad_clip=math.nan)), "train.grad_clip"),
    (ExperimentConfig(data=DataConfig(full_caption_prob=math.nan)), "data.full_caption_prob"),
    (ExperimentConfig(data=DataConfig(languages=["en", None])), "data.languages"),
])
def test_a_config_built_in_python_is_checked_when_validated(config, key):
    """The trainer validates what it is given: NaN cannot slip past a comparison there either."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config.validate()


def test_sensible_values_still_pass():
    cfg = from_dict(ExperimentConfig, {"train": {"lr": 1e-3, "lr_new": 0, "weight_decay": 0, "grad_clip": 0,
                                                 "epochs": 60, "losses": {"itc": 1}},
                                       "data": {"full_caption_prob": 1, "eval_languages": ["en", "de"],
                                                "crop_scale": [0.5, 1]}})
    assert cfg.train.grad_clip == 0 and cfg.data.crop_scale == [0.5, 1.0]


def test_pretrain_without_training_data_is_refused_before_anything_runs(capsys):
    line = _refused(capsys, cli.pretrain(["--config", "tiny", "data.train=", "data.generate={}"]))
    assert "data.train is empty" in line


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from ccr_demo.data.shapes import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("refusals") / "shapes", n_train=8, n_val=0, n_test=4,
                            n_test_compositional=0, image_size=32, seed=0, workers=1, progress=False,
                            queries_per_scene=0, n_test_queries=0)


@pytest.mark.parametrize("overrides, kind, words", [
    (["data.train={missing}"], "config", ["data.train", "no such file or folder"]),
    (["data.eval_languages=[en, xx]"], "config", ["data.eval", "xx"]),
    (["model.languages=[en, xx]"], "data", ["part_00000.data", "xx"]),
])
def test_pretrain_refuses_data_it_cannot_read_in_one_line(shapes, tmp_path, overrides, kind, words, capsys):
    """Problems that only the data shows (a training folder that is not there, a language the
    test set or the training captions lack): one line, exit 2, before any training step."""
    base = ["--config", "tiny", f"data.train={shapes / 'train'}", f"data.eval=[{shapes / 'test'}]",
            "data.eval_queries=[]", "data.generate={}", "train.log_with=none", f"train.output_dir={tmp_path / 'out'}"]
    line = _refused(capsys, cli.pretrain(base + [o.format(missing=tmp_path / "nope") for o in overrides]), kind)
    assert all(w in line for w in words), line
    assert not (tmp_path / "out" / "model").exists()


@pytest.mark.parametrize("overrides, words", [
    (["train.init_from="], ["train.init_from is empty"]),
    (["train.init_from={missing}"], ["train.init_from", "not a saved model folder"]),
    (["model.embed_dim=128"], ["train.init_from", "embed_dim"]),
    (["data.eval_languages=[en, xx]"], ["data.eval", "xx", "data.eval_languages"]),
    (["data.train="], ["data.train is empty"]),
])
def test_finetune_refuses_before_generating_or_caching(overrides, words, tmp_path, monkeypatch, no_training, capsys):
    """finetune_shapes starts from assets/model and evaluates on assets/shapes_test: what is wrong
    with either is found from their files alone, before 2000 scenes are drawn or 17k captions encoded."""
    monkeypatch.chdir(ROOT)
    generated = tmp_path / "generated"
    args = ["--config", "finetune_shapes", f"data.generate.out={generated}", f"train.output_dir={tmp_path / 'out'}"]
    line = _refused(capsys, cli.finetune(args + [o.format(missing=tmp_path / "nope") for o in overrides]))
    assert all(w in line for w in words), line
    assert not generated.exists()


@pytest.mark.slow  # a Python per script, importing torch: ~10-20 s on 2 cores
@pytest.mark.parametrize("script, args", [
    ("train/pretrain.py", ["--config", "tiny", "train.lr=.nan"]),
    ("train/finetune.py", ["--config", "finetune_shapes", "train.init_from="]),
])
def test_the_scripts_refuse_in_one_line_with_exit_2(script, args):
    proc = subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("config error: ") and "Traceback" not in proc.stderr

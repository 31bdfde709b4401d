"""train/pretrain.py as users call it (issue 11 item 18): no --config trains the default recipe."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from ccr_demo.training.config import ExperimentConfig
from ccr_demo.utils.config import load_yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pretrain(monkeypatch):
    spec = importlib.util.spec_from_file_location("pretrain_script", ROOT / "train" / "pretrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = []
    monkeypatch.setattr(module, "train", lambda cfg, resume=False: calls.append((cfg, resume)) or {})
    module.calls = calls
    return module


def test_no_config_trains_the_default_recipe_and_says_so(pretrain, capsys):
    assert pretrain.main([]) == 0
    (cfg, resume), = pretrain.calls
    assert cfg == load_yaml(ExperimentConfig, ROOT / "train" / "configs" / "default.yaml")
    assert not resume
    assert "train/configs/default.yaml" in capsys.readouterr().err
    # overrides and --resume still apply on top of the default
    assert pretrain.main(["--resume", "train.lr=0.5"]) == 0
    cfg, resume = pretrain.calls[-1]
    assert resume and cfg.train.lr == 0.5 and cfg.model.embed_dim == 256


def test_help_lists_the_shipped_configs():
    proc = subprocess.run([sys.executable, "train/pretrain.py", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    shipped = sorted((ROOT / "train" / "configs").glob("*.yaml"))
    assert len(shipped) >= 2
    for path in shipped:
        assert f"train/configs/{path.name}" in proc.stdout
    assert "default: train/configs/default.yaml" in " ".join(proc.stdout.split())


def test_a_resume_error_is_one_line_and_exit_2(pretrain, monkeypatch, capsys):
    from ccr_demo.training.checkpoints import CheckpointError

    def broken(cfg, resume=False):
        raise CheckpointError("runs/x/checkpoints/step_2/rng_state_0.safetensors is not a valid RNG state")

    monkeypatch.setattr(pretrain, "train", broken)
    assert pretrain.main(["--config", str(ROOT / "train" / "configs" / "tiny.yaml"), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("resume error: ") and "rng_state_0.safetensors" in err[-1]

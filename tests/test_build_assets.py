"""train/build_assets.py: the steps that make assets/, in order, resumable, tuned on validation
only, and an install that swaps items without losing the old ones before the new are in place."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("build_assets", ROOT / "train" / "build_assets.py")
build = importlib.util.module_from_spec(spec)
sys.modules["build_assets"] = build  # a dataclass looks its module up by name
spec.loader.exec_module(build)


def test_the_steps_run_in_order_and_choose_nothing_on_the_test_split(tmp_path):
    steps = build.steps(tmp_path)
    names = [s.name for s in steps]
    assert names.index("default (1-to-K)") < names.index("fusion stage (CCRK)") \
        < names.index("re-rank weight on validation")
    assert names.index("write the weight") < names.index("evaluate CCRK")  # the test report uses the chosen weight
    calibrate = steps[names.index("re-rank weight on validation")].command
    assert calibrate[calibrate.index("--data") + 1].endswith("/val")
    assert calibrate[calibrate.index("--queries") + 1].endswith("/val_queries")
    baseline = " ".join(steps[names.index("baseline (1-to-1)")].command)
    assert "train.loss=one_to_one" in baseline and "--config default" in baseline
    # the configs' data make the validation split the calibration reads
    from ccr_demo.training.configs import load_config

    for name in ("default", "default-ccrk"):
        generate = load_config(name).data.generate
        assert generate["n_val"] > 0 and generate["n_val_queries"] > 0
        assert generate["out"] == str(build.DATA)


def test_a_done_step_is_skipped_and_dry_run_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ran = []
    monkeypatch.setattr(build.subprocess, "run", lambda cmd, check: ran.append(cmd))
    assert build.main(["--dry-run"]) == 0 and not ran
    assert capsys.readouterr().out.count("[to do]") == len(build.steps())
    first = build.steps()[0].done_when
    first.parent.mkdir(parents=True)
    first.write_text("{}")
    build.main([])
    assert len(ran) == len(build.steps()) - 1 and ran[0] == build.steps()[1].command


def test_install_swaps_each_item_and_refuses_what_is_not_built(tmp_path):
    assets, made = tmp_path / "assets", tmp_path / "made"
    (assets / "model").mkdir(parents=True)
    (assets / "model" / "old.txt").write_text("old")
    (assets / "keep.txt").write_text("not ours")
    (made / "model").mkdir(parents=True)
    (made / "model" / "new.txt").write_text("new")
    (made / "report.json").write_text("{}")
    with pytest.raises(SystemExit, match="not built yet"):
        build.install(assets, {"model": made / "model", "gallery": made / "missing"})
    assert (assets / "model" / "old.txt").is_file()  # refused before touching anything
    build.install(assets, {"model": made / "model", "eval_report.json": made / "report.json"})
    assert sorted(p.name for p in (assets / "model").iterdir()) == ["new.txt"]
    assert (assets / "eval_report.json").read_text() == "{}" and (assets / "keep.txt").read_text() == "not ours"
    assert not list(assets.glob(".*"))  # no staging leftovers


def test_install_then_recalibrates_the_no_match_thresholds(tmp_path, monkeypatch):
    ran = []
    monkeypatch.chdir(tmp_path)
    for step in build.steps():
        step.done_when.parent.mkdir(parents=True, exist_ok=True)
        step.done_when.write_text("{}")
    monkeypatch.setattr(build, "install", lambda assets, items: ran.append(("install", assets)))
    monkeypatch.setattr(build.subprocess, "run", lambda cmd, check: ran.append(("run", cmd)))
    build.main(["--install", "--assets", "a"])
    assert ran[0] == ("install", Path("a")) and ran[1] == ("run", build.NO_MATCH + ["a"])

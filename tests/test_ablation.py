"""The ablation command: its plans, resuming where it stopped, and the quick plan end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ccr_demo.eval import metrics
from ccr_demo.training.ablation import plan as ablation_plan
from ccr_demo.training.ablation import report as ablation_report
from ccr_demo.training.ablation import run as ablation
from ccr_demo.utils.config import ConfigError, to_dict

ROOT = Path(__file__).resolve().parents[1]


def test_plans_name_every_run_and_check_every_config():
    for name in ("quick", "full"):
        plan = ablation_plan.load_plan(name)
        runs = ablation_plan.plan_runs(plan)
        names = [r.name for r in runs]
        assert len(names) == len(set(names))
        methods = [r for r in runs if r.part == "methods"]
        timed = [reg for reg, r in plan["regimes"].items() if r.get("equal_time_steps")]
        assert timed == ["scratch"]  # the regime where a 1-to-K step costs ~2x a 1-to-1 step
        assert len(methods) == len(plan["seeds"]) * (len(plan["regimes"]) * len(plan["methods"]) + len(timed))
        assert len(plan["seeds"]) >= 3
        # seeds outermost (a stopped ablation has every part at its first seeds), parts in order within a seed
        order = [(r.seed, ["methods", "noise", "caption_num"].index(r.part)) for r in runs]
        assert order == sorted(order) and runs[-1].seed == plan["seeds"][-1]
        for spec in runs:
            cfg = ablation_plan.run_config(spec, Path("/tmp/out"))
            assert cfg.train.adam_betas == [0.9, 0.98] and cfg.train.temperature_clamp == "step"  # official
            assert cfg.train.eval_keep_ranks and cfg.train.seed == spec.seed
            assert cfg.languages == plan["languages"]
        base = {(r.regime, r.seed): ablation_plan.run_config(r, Path("/tmp/o")) for r in methods if r.method == "one_to_one"}
        for r in methods:
            cfg = ablation_plan.run_config(r, Path("/tmp/o"))
            one = base[(r.regime, r.seed)]
            # identical settings but the loss; the pairs-matched baseline trains K times the epochs,
            # the wall-clock-matched one the regime's equal_time_steps times
            factor = {"one_to_one_pairs": len(cfg.languages),
                      "one_to_one_time": plan["regimes"][r.regime].get("equal_time_steps")}.get(r.method, 1)
            assert cfg.train.epochs == one.train.epochs * factor
            if r.method == "one_to_one_time":
                assert cfg.train.loss == "one_to_one" and r.label == "1-to-1, equal wall clock (2x steps)"
            # every other setting equal: only the loss keys, the epochs, the output folder and the card's name differ
            differ = {"train.loss", "train.loss_mode", "train.caption_num", "train.pivot_language", "train.epochs",
                      "train.max_steps", "train.output_dir", "train.model_name"}
            mine, theirs = _flat(to_dict(cfg)), _flat(to_dict(one))
            assert {k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k)} <= differ, r.name


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def test_bad_plans_are_named():
    with pytest.raises(ConfigError, match="not found .*quick"):
        ablation_plan.load_plan("nope")


def test_a_run_is_locked_while_its_driver_lives(tmp_path):
    folder = tmp_path / "run"
    held = ablation.claim(folder)
    assert held is not None and (folder / ".ablation.lock").read_text() == str(os.getpid())
    assert ablation.claim(folder) is None  # another driver (another lock on the file) cannot take it
    held.release()
    again = ablation.claim(folder)
    assert again is not None
    again.release()
    # a driver that dies holding the lock (killed: no cleanup runs) leaves nothing to take over
    code = (f"import os, sys, time; sys.path.insert(0, {str(ROOT)!r}); "
            "from ccr_demo.training.ablation import run as ablation; "
            f"lock = ablation.claim(__import__('pathlib').Path({str(folder)!r})); print(lock is not None, flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "True"
        assert ablation.claim(folder) is None  # held by the live process
    finally:
        proc.kill()
        proc.wait()
    taken = ablation.claim(folder)
    assert taken is not None
    taken.release()


@pytest.mark.slow
def test_quick_ablation_runs_end_to_end_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the plan's data goes to ./runs/data
    out, report = tmp_path / "abl", tmp_path / "docs" / "ablation.md"
    args = ["--plan", "quick", "--out", str(out), "--report", str(report)]
    assert ablation.main(args + ["--max-runs", "2"]) == 0
    first = json.loads((out / "results.json").read_text())
    assert len(first["results"]) == 2 and "Not finished: " in report.read_text()
    # a run killed mid-way: a checkpoint, no summary; the next call resumes it
    from ccr_demo.training.loop import train

    spec = ablation_plan.plan_runs(ablation_plan.load_plan("quick"))[2]
    train(ablation_plan.run_config(spec, out), stop_after_steps=6)  # past its first epoch checkpoint (4 steps)
    assert not (out / spec.name / "summary.json").exists()
    capsys.readouterr()
    assert ablation.main(args) == 0
    assert f"{spec.name}: resuming" in capsys.readouterr().out
    data = json.loads((out / "results.json").read_text())
    assert not data["missing"] and len(data["results"]) == len(ablation_plan.plan_runs(ablation_plan.load_plan("quick")))
    text = report.read_text()
    assert "Not finished" not in text
    for label in ("1-to-K", "1-to-K balanced", "1-to-1", "1-to-1, K x pairs", "English pivot", "1-to-K, k=2",
                  "1-to-1, equal wall clock (2x steps)"):
        assert f"| {label} | 3 |" in text
    for png in ("methods-scratch-recall.png", "methods-scratch-mrv.png", "noise-scratch-mrv.png",
                "mrv-recall-scratch.png"):
        assert (report.parent / "ablation" / png).stat().st_size > 1000
    # the figures are the runs' own: MRV over the seen languages recomputed from a run's kept ranks
    r = data["results"][0]
    ranks = json.loads((out / "methods/scratch/one_to_k/seed0/eval_report.json").read_text())["reports"][0]["ranks"]
    for d in ("t2i", "i2t"):
        seen = np.stack([ranks[d][lang] for lang in ["en", "de", "fr", "zh", "ja", "ru"]], axis=1)
        assert r[f"mrv_{d}_seen"] == pytest.approx(metrics.mean_rank_variance(seen))
    assert "| MRV TR seen |" in text and "![mrv-recall-scratch]" in text
    paired = text.split("Paired by seed: 1-to-K against each other method", 1)[1].split("\n\n")[1].splitlines()[2:]
    assert [row.split(" | ")[:2] for row in paired] == [  # the first regime's methods, each paired at 3 seeds
        [f"| {label}", "3"] for label in ("1-to-K balanced", "1-to-1", "1-to-1, K x pairs", "English pivot",
                                          "1-to-1, equal wall clock (2x steps)")]
    assert "| method | runs | MRV ÷ curve | range |" in text
    # per-language R@1 / R@5 / R@10, from the runs' own reports
    runs = [x for x in data["results"] if (x["part"], x["regime"], x["method"]) == ("methods", "scratch", "one_to_k")]
    en = [json.loads((out / f"methods/scratch/one_to_k/seed{x['seed']}/summary.json").read_text())["eval"][0]["t2i"]["en"]
          for x in runs]
    cell = " / ".join(f"{np.mean([e[k] for e in en]):.1f}" for k in ("1", "5", "10"))
    assert "Per-language R@1 / R@5 / R@10" in text and f"| 1-to-K | 3 | {cell} | " in text
    by = {(x["method"], x["seed"]): x for x in data["results"] if x["part"] == "methods"}
    assert by[("one_to_k", 0)]["pairs_seen"] == 6 * by[("one_to_one", 0)]["pairs_seen"]
    assert by[("one_to_one_pairs", 0)]["pairs_seen"] == by[("one_to_k", 0)]["pairs_seen"]
    assert by[("pivot", 0)]["pairs_seen"] == by[("one_to_one", 0)]["pairs_seen"]  # English caption-image only
    assert by[("one_to_one_pairs", 0)]["steps"] == 6 * by[("one_to_one", 0)]["steps"]
    assert by[("one_to_one_time", 0)]["steps"] == 2 * by[("one_to_one", 0)]["steps"]


def _result(method: str, seed: int, r1: float, mrv: float) -> dict:
    return {"method": method, "label": method, "seed": seed, "ir_r1_seen": r1, "mrv_t2i_seen": mrv}


def test_paired_differences_pair_runs_by_seed():
    rows = [("1-to-K", [_result("one_to_k", s, r1, m) for s, r1, m in ((0, 50, 1.0), (1, 40, 2.0), (2, 45, 1.5))]),
            # seed 2 of the baseline missing: only seeds 0 and 1 pair; it beats 1-to-K at seed 1
            ("1-to-1", [_result("one_to_one", s, r1, m) for s, r1, m in ((1, 42, 1.5), (0, 30, 4.0))])]
    (row,) = ablation_report.paired_rows(rows)
    # differences 50-30 = 20 and 40-42 = -2: mean 9.0, population std 11.0; MRV 3.0 and -0.5
    assert row == ["1-to-1", "2", "9.0 ± 11.0", "1 of 2", "1.250 ± 1.750", "1 of 2"]
    assert ablation_report.paired_rows(rows[1:]) == []  # no 1-to-K runs: nothing to pair with


def test_the_recall_curve_and_each_methods_distance_from_it():
    def run(method, r1, mrv, part="methods"):
        return {"method": method, "label": method, "part": part, "ir_r1_seen": r1, "mrv_t2i_seen": mrv}

    on = [run("one_to_k", x, float(np.exp(2.0 - 0.05 * x))) for x in (20, 40, 60)]
    off = [run("one_to_one", 30, 2 * float(np.exp(2.0 - 0.05 * 30)))]  # twice the curve: pulls the fit
    pivot = [run("pivot", 30, 3 * float(np.exp(2.0 - 0.05 * 30)))]  # not in the fit
    b, a = ablation_report.recall_curve(on + pivot)  # 3 runs: a straight line, highest power first
    assert (a, b) == (pytest.approx(2.0), pytest.approx(-0.05))  # the pivot does not move the fit
    rows = {r[0]: r for r in ablation_report.off_curve_rows(on + pivot)}
    assert rows["one_to_k"][1:] == ["3", "1.00", "1.00-1.00"] and rows["pivot"][2] == "3.00"
    rows = {r[0]: r for r in ablation_report.off_curve_rows(on + off)}
    assert float(rows["one_to_one"][2]) > 1.2 and float(rows["one_to_k"][2]) < 1.0
    assert ablation_report.off_curve_rows(on[:2] + pivot) == []  # two runs make no curve
    bent = [run("one_to_k", x, float(np.exp(1.0 + 0.01 * x + 0.001 * x * x))) for x in (10, 20, 30, 40, 50, 60)]
    assert ablation_report.recall_curve(bent) == pytest.approx([0.001, 0.01, 1.0])  # from 6 runs: quadratic
    assert ablation_report.curve_text(np.array([0.001, 0.01, 1.0])).startswith("log(MRV IR seen) = 0.001 x^2 +0.01 x +1")


def test_a_run_of_another_plan_is_not_mixed_into_the_table(tmp_path):
    from ccr_demo.utils.config import save_json

    spec = ablation_plan.plan_runs(ablation_plan.load_plan("quick"))[0]
    cfg = ablation_plan.run_config(spec, tmp_path)
    (tmp_path / spec.name).mkdir(parents=True)
    save_json(cfg, tmp_path / spec.name / "config.yaml.json")
    ablation_plan.check_unchanged(spec, tmp_path)  # the same config: fine
    cfg.train.epochs += 1
    save_json(cfg, tmp_path / spec.name / "config.yaml.json")
    with pytest.raises(ConfigError, match="another config than the plan"):
        ablation_plan.check_unchanged(spec, tmp_path)

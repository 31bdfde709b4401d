"""train/binding_levers.py: every lever is a valid config on the same budget, and the table is
written from the runs' own summaries."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("binding_levers", ROOT / "train" / "binding_levers.py")
levers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(levers)


def test_every_lever_is_the_default_recipe_on_one_budget_with_its_own_change(tmp_path):
    configs = {name: levers.lever_config(name, tmp_path) for name in levers.LEVERS}
    base = configs["baseline"]
    for name, cfg in configs.items():
        assert cfg.train.max_steps == base.train.max_steps == levers.BUDGET["steps"]
        assert cfg.data.eval[0].endswith("/val") and cfg.data.eval_queries[0].endswith("/val_queries")
        assert cfg.train.output_dir == str(tmp_path / name)
    assert configs["attn-pool"].model.image_pool == "attn" and base.model.image_pool == "avg"
    assert configs["twins"].data.generate["twins"] == 0.5 and "twins" not in base.data.generate
    negatives = configs["hard-negatives"]
    assert negatives.train.hard_negatives == 1 == negatives.data.generate["hard_negatives"]
    assert len({c.data.train for c in configs.values()}) == 4  # one world per data option set


def test_the_table_comes_from_the_runs_summaries(tmp_path):
    report = {"languages": ["en", "de"], "t2i": {"en": {"1": 90.0}, "de": {"1": 80.0}},
              "mrv": {"t2i": 0.25, "i2t": 0.5},
              "queries": {"p@5_by_granularity": {"colour_shape": 0.9, "count_shape": 0.4, "count_colour_shape": 0.6},
                          "mean": {"p@5": 0.7}, "consistency": {"top5_overlap": 0.55}}}
    run = tmp_path / "450-steps" / "twins"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"eval": [report], "train_seconds": 600}))
    text = levers.write_report(tmp_path, tmp_path / "binding.md", tmp_path / "kept.json")
    row = next(line for line in text.splitlines() if line.startswith("| `twins`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "0.90" and cells[6] == "0.50"  # colour + shape; count = mean of its two kinds
    assert cells[-5:] == ["0.700", "0.550", "85.0 (80.0-90.0)", "0.250", "10.0"]
    assert "`baseline`" not in text.split("What each lever changes")[0]  # no run, no row
    assert "## 450 optimizer steps" in text
    assert (tmp_path / "binding.md").read_text() == text


def test_finished_runs_are_kept_and_the_table_survives_without_the_run_folders(tmp_path):
    report = {"languages": ["en"], "t2i": {"en": {"1": 70.0, "5": 99.0}}, "mrv": {"t2i": 0.5, "i2t": 0.4},
              "queries": {"p@5_by_granularity": {"shape_position": 0.75}, "mean": {"p@5": 0.6, "p@1": 0.7},
                          "consistency": {"top5_overlap": 0.5}}}
    kept = tmp_path / "kept.json"
    levers.record(kept, 1500, "hn+coords", {"eval": [report], "train_seconds": 120, "steps": 1500, "other": 1})
    levers.record(kept, 1500, "baseline", {"eval": [report], "train_seconds": 60, "steps": 1500})
    data = json.loads(kept.read_text())
    assert set(data["1500"]) == {"hn+coords", "baseline"} and "other" not in data["1500"]["hn+coords"]
    # a row measured before results were kept: its cells by column name, missing columns "-"
    data["450"] = {"twins": {"cells": {"shape + position": "0.13", "P@5 mean": "0.181"}}}
    kept.write_text(json.dumps(data))
    text = levers.write_report(tmp_path / "no-runs", tmp_path / "binding.md", kept)
    coords = next(line for line in text.splitlines() if line.startswith("| `hn+coords`"))
    assert "| 0.75 |" in coords and coords.endswith("| 70.0 (70.0-70.0) | 0.500 | 2.0 |")
    twins_row = next(line for line in text.splitlines() if line.startswith("| `twins`"))
    twins = [c.strip() for c in twins_row.strip("|").split("|")]
    assert twins[levers.HEADER.index("shape + position")] == "0.13" and twins[levers.HEADER.index("count")] == "-"
    assert text.index("## 450 optimizer steps") < text.index("## 1500 optimizer steps")

"""python -m ccr_demo.eval.calibrate: the re-rank weight is chosen from a validation report's
tables, refused on a test split, and written into the model without changing its fingerprint."""

from __future__ import annotations

import json

import pytest

from ccr_demo.eval import calibrate
from ccr_demo.model.modeling import CCRModel

TINY = dict(image_tower="resnet10t", image_size=64, text_tower="random:bert", embed_dim=32, languages=["en"],
            text_kwargs={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 64}, fusion={"layers": 1, "heads": 2})


def _report(name, captions, queries):
    return {"dataset": name, "rerank": {"itc_weight_table": captions},
            "queries": {"rerank": {"itc_weight_table": queries}}}


def test_the_weight_with_the_best_mean_of_both_tables_is_written_and_the_fingerprint_stays(tmp_path, capsys):
    model = CCRModel(TINY)
    model.save_pretrained(tmp_path / "m")
    before = CCRModel.from_pretrained(tmp_path / "m").fingerprint()
    report = _report("runs/data/w/val/annotations/*/test.jsonl", {"0.0": 0.5, "4.0": 0.9, "8.0": 0.9},
                     {"0.0": 0.6, "4.0": 0.7, "8.0": 0.9})
    (tmp_path / "val.json").write_text(json.dumps({"reports": [report]}))
    assert calibrate.main(["--model", str(tmp_path / "m"), "--report", str(tmp_path / "val.json"), "--write"]) == 0
    assert "8 | 0.9000  <- chosen" in capsys.readouterr().out
    again = CCRModel.from_pretrained(tmp_path / "m")
    assert again.config.fusion.rerank_itc_weight == 8.0 and again.fingerprint() == before
    assert calibrate.best_weight({0.0: 0.7, 2.0: 0.7, 1.0: 0.6}) == 0.0  # ties: the smaller w


def test_a_test_split_a_dual_encoder_and_a_report_without_tables_are_refused(tmp_path, capsys):
    report = _report("runs/data/shapes-queries/test/annotations/*/test.jsonl", {"0.0": 1.0}, {"0.0": 1.0})
    (tmp_path / "test.json").write_text(json.dumps(report))
    assert calibrate.main(["--model", str(tmp_path), "--report", str(tmp_path / "test.json")]) == 2
    assert "test split" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--rerank-k"):
        calibrate.weight_table({"dataset": "val"})
    CCRModel({**TINY, "fusion": {"layers": 0}}).save_pretrained(tmp_path / "dual")
    with pytest.raises(ValueError, match="dual encoder"):
        calibrate.write_weight(tmp_path / "dual", 2.0)

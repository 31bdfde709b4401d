"""Evaluation reports: numbers equal the metrics on the same scores; the CLI reads any IGLUE-layout set."""

import json

import numpy as np
import pytest

from ccr_demo import metrics
from ccr_demo.data.formats import ParallelTestSet
from ccr_demo.evaluate import encode_test_set, evaluate, main


@pytest.fixture(scope="module")
def shapes_test(tmp_path_factory):
    from ccr_demo.data.shapes import generate_dataset

    out = tmp_path_factory.mktemp("eval") / "d"
    generate_dataset(out, n_train=0, n_val=0, n_test=20, n_test_compositional=0, image_size=32, seed=2,
                     languages=("en", "de", "zh"), workers=1, progress=False)
    return out / "test"


def test_report_matches_metrics_on_the_same_embeddings(tiny_model, shapes_test):
    ts = ParallelTestSet.from_iglue(shapes_test)
    report = evaluate(tiny_model, ts, progress=False, keep_ranks=True)
    img, txt = encode_test_set(tiny_model, ts, ts.languages, progress=False)
    t2i = np.stack([metrics.t2i_ranks(txt[lang].numpy() @ img.numpy().T, ts.text_to_image[lang])[ts.first_text[lang]]
                    for lang in ts.languages], axis=1)
    assert report["mrv"]["t2i"] == pytest.approx(metrics.mean_rank_variance(t2i))
    assert report["mrv_var"]["t2i"] == pytest.approx(metrics.mean_rank_variance(t2i, kind="var"))
    assert report["t2i"]["en"]["1"] == pytest.approx(metrics.recall_at_k(t2i[:, 0], (1,))[1])
    assert report["ranks"]["t2i"]["zh"] == t2i[:, 2].tolist()
    assert report["n_instances"] == 20 and report["languages"] == ["en", "de", "zh"]
    assert set(report["mean_recall"]) == {"en", "de", "zh", "all"}


def test_cli_prints_a_table_and_writes_json(tiny_model, shapes_test, tmp_path, capsys):
    tiny_model.save_pretrained(tmp_path / "m")
    rc = main(["--model", str(tmp_path / "m"), "--data", str(shapes_test), "--languages", "en,zh",
               "--max-instances", "8", "--out", str(tmp_path / "r.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| en |" in out and "| zh |" in out and "MRV" in out and "| de |" not in out
    assert json.loads((tmp_path / "r.json").read_text())["n_instances"] == 8


def test_cli_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main(["--model", str(tmp_path), "--data", str(tmp_path / "nope")]) == 2
    assert "error:" in capsys.readouterr().err


def test_missing_language_is_named(tiny_model, shapes_test):
    ts = ParallelTestSet.from_iglue(shapes_test)
    with pytest.raises(ValueError, match=r"no captions in \['fr'\]"):
        evaluate(tiny_model, ts, languages=["en", "fr"], progress=False)

"""``python -m ccr_demo.eval`` refuses a model with NaN / inf weights before it encodes anything
(issue 23 item 9), with the check a gallery build makes (``ccr_demo.model.fingerprint.check_finite``)."""

from pathlib import Path

import torch

from ccr_demo.eval import evaluate as evaluate_module
from ccr_demo.model.modeling import CCRModel

ROOT = Path(__file__).resolve().parents[1]


def test_nan_weights_are_refused_before_the_test_set_is_encoded(tiny_model, tmp_path, monkeypatch, capsys):
    with torch.no_grad():
        next(tiny_model.parameters()).view(-1)[0] = float("nan")
    tiny_model.save_pretrained(tmp_path / "model")
    encoded = []
    monkeypatch.setattr(CCRModel, "encode_images", lambda self, *a, **k: encoded.append("images"))
    monkeypatch.setattr(CCRModel, "encode_texts", lambda self, *a, **k: encoded.append("texts"))
    rc = evaluate_module.main(["--model", str(tmp_path / "model"), "--data", str(ROOT / "assets" / "shapes_test"),
                               "--max-instances", "8", "--queries", "none", "--cached-text-features"])
    err = capsys.readouterr().err
    assert rc == 2 and not encoded, (rc, encoded, err)
    assert err.strip().splitlines()[-1].startswith("error: the model ")
    assert "NaN or inf weights" in err and "Traceback" not in err

"""Issue 22: a visitor's first minute, without a browser.

- the page is built from what needs no torch (``loading.plan_app_state``), and says it is loading;
- the load line names models and galleries by name and size; where they came from is shown
  relative to the app's folder; no absolute server path anywhere (``utils.paths``);
- what a model's files say before it is loaded (``model_info``): its saved evaluation, its
  calibrated "no good match" threshold, and whether that threshold still belongs to its weights;
- the calibration itself (``calibration``) and the "no good match" line of a search.
Fixtures are generated (test_ui_callbacks.build_tiny_assets): assets/ is never used.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_ui_callbacks import QUERIES, build_tiny_assets, load_state

from ccr_demo.data.queries import QuerySet
from ccr_demo.ui import calibration
from ccr_demo.ui import callbacks as cb
from ccr_demo.ui.model_info import NO_MATCH_FILE, describe
from ccr_demo.utils.paths import ABSOLUTE_PATH, hide_absolute_paths, shown_path

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return build_tiny_assets(tmp_path_factory.mktemp("startup_assets"))


@pytest.fixture(scope="module")
def app(assets):
    return load_state(assets)


def test_the_page_is_built_before_torch_is_imported(assets):
    """The page is served first: planning (test set, the models' JSON files) and building the
    Blocks import no torch, and the state says it is loading until ``finish_loading``."""
    code = (
        "import sys, json\n"
        "from ccr_demo.ui.loading import plan_app_state\n"
        "from ccr_demo.ui.layout import build_layout\n"
        f"app = plan_app_state({str(assets['model'])!r}, {str(assets['gallery'])!r}, {str(assets['testset'])!r}, "
        "warm_up=False, caption_cache=False)\n"
        "build_layout(app)\n"
        "print(json.dumps(['torch' in sys.modules, app.loaded.is_set(), app.status_markdown(), app.ready]))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    torch_imported, loaded, status, ready = json.loads(run.stdout.strip().splitlines()[-1])
    assert not torch_imported and not loaded and not ready
    assert status.startswith("**Loading model and its gallery…**")


def test_loading_in_two_steps_gives_the_same_state(assets):
    from ccr_demo.ui.loading import finish_loading, plan_app_state

    state = plan_app_state(assets["model"], assets["gallery"], assets["testset"], warm_up=False, caption_cache=False)
    assert not state.loaded.is_set() and state.model is None and state.test_set is not None
    finish_loading(state)
    assert state.loaded.is_set() and state.ready and not state.problems
    assert cb.search(state, QUERIES, 3).ok


def test_the_load_line_names_no_server_path(app, assets):
    """The first screen opened with six lines of absolute server paths: now models by name, the
    gallery by its size; where from, relative to the app's folder (else only the last part)."""
    status, sources = app.status_markdown(), app.sources_markdown()
    assert "Loaded one model (dual encoder) over a gallery of 24 images" in status
    assert not ABSOLUTE_PATH.findall(status) and not ABSOLUTE_PATH.findall(sources)
    assert "…/gallery" in sources and str(assets["gallery"]) not in sources  # outside the app's folder
    app.root = assets["model"].parent  # the fixture's folder as the app's: paths relative to it
    try:
        assert "gallery: `gallery (" in app.sources_markdown()
    finally:
        app.root = None


def test_shown_paths():
    root = "/srv/app"
    assert shown_path("/srv/app/assets/model", root) == "assets/model"
    assert shown_path("/data/models/m1", root) == "…/m1" and shown_path("assets/x", root) == "assets/x"
    text = "gallery `/srv/app/assets/gallery` failed: /etc/secret/items.jsonl line 3 (R@1/5/10, https://x.org/a/b)"
    assert hide_absolute_paths(text, root) == ("gallery `assets/gallery` failed: …/items.jsonl line 3 "
                                               "(R@1/5/10, https://x.org/a/b)")
    assert ABSOLUTE_PATH.findall("</div> <svg xmlns='http://www.w3.org/2000/svg'> 1/2") == []


def _model_folder(root: Path, name: str, fingerprint: str, fusion: int = 0) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "config.json").write_text(json.dumps({"model": {"fusion": {"layers": fusion}}}))
    gallery = root / name.replace("model", "gallery")
    gallery.mkdir()
    (gallery / "gallery.json").write_text(json.dumps({"count": 7, "model_fingerprint": fingerprint}))


def test_what_a_models_files_say_before_it_is_loaded(tmp_path):
    _model_folder(tmp_path, "model", "aaaa")
    _model_folder(tmp_path, "model-x", "bbbb", fusion=2)
    report = {"n_instances": 7, "t2i": {"en": {"1": 50.0}}, "i2t": {"en": {"1": 40.0}}, "mrv": {"t2i": 0.5}}
    (tmp_path / "eval_report.json").write_text(json.dumps(report))
    (tmp_path / "eval_report-x.json").write_text(json.dumps({"reports": [{}, {**report, "n_instances": 8}]}))
    (tmp_path / NO_MATCH_FILE).write_text(json.dumps({"models": {"model": {"threshold": 0.61, "fingerprint": "aaaa"},
                                                                 "model-x": {"threshold": 0.4, "fingerprint": "old"}}}))
    main = describe("1-to-K", str(tmp_path / "model"), str(tmp_path / "gallery"))
    assert main.n_images == 7 and main.fusion is False and main.report["n_instances"] == 7
    assert main.no_match == pytest.approx(0.61) and not main.note
    other = describe("X", str(tmp_path / "model-x"), str(tmp_path / "gallery-x"))
    assert other.fusion is True and other.report["n_instances"] == 8  # a run's last report
    assert other.no_match is None and "retrained" in other.note  # another fingerprint: not used
    (tmp_path / NO_MATCH_FILE).unlink()
    assert "not calibrated" in describe("1-to-K", str(tmp_path / "model"), str(tmp_path / "gallery")).note
    assert describe("hub", "owner/name", None).note == "not a local folder"
    assert describe("long", "x" * 300, "y" * 300).note == "not a local folder"  # no OSError at start


def test_calibration_takes_a_percentile_of_the_best_true_scores():
    scores = np.array([[0.9, 0.2, 0.5], [0.3, 0.6, 0.7], [0.4, 0.1, 0.8]])
    relevant = np.array([[True, False, False], [False, True, False], [False, False, True]])
    true, false = calibration.best_scores(scores, relevant)
    assert true.tolist() == [0.9, 0.6, 0.8] and false.tolist() == [0.5, 0.7, 0.4]
    assert calibration.auc(true, false) == pytest.approx(8 / 9)  # 0.6 < 0.7 is the one inversion

    class Model:  # embeddings whose dot products with the gallery's vectors are ``scores``
        def encode_texts(self, texts):
            import torch

            return torch.tensor(np.eye(3)[[int(t) for t in texts]], dtype=torch.float32)

    class Gallery:
        ids, vectors, fingerprint = ["a", "b", "c"], scores.T.astype(np.float32), "f00d"

    queries = QuerySet(["q0", "q1", "q2"], {"en": ["0", "1", "2"], "de": ["0", "1", "2"]}, [["a"], ["b"], ["c"]],
                       [{}] * 3, [""] * 3, [""] * 3)
    entry = calibration.calibrate_model(Model(), Gallery(), queries, percentile=50)
    assert entry["threshold"] == pytest.approx(0.8) and entry["n_scores"] == 6  # median of 0.9 0.6 0.8 (twice)
    assert entry["fingerprint"] == "f00d" and entry["languages"] == ["en", "de"]


def test_no_good_match_is_said_where_a_best_score_is_below_the_threshold(app):
    res = cb.search(app, QUERIES, 3)
    assert res.no_match == [] and res.no_match_threshold is None  # not calibrated: nothing said
    app.no_match = max(res.best.values()) + 0.01  # above every language's best score
    try:
        res = cb.search(app, QUERIES, 3)
    finally:
        app.no_match = None
    assert res.no_match == list(QUERIES) and res.summary()["no_good_match"] == list(QUERIES)
    assert "No good match** in en, de, zh, ja" in res.mrv_markdown
    assert f"below {res.no_match_threshold:.3f}" in res.mrv_markdown


def test_the_shipped_calibration_belongs_to_the_shipped_models():
    """assets/no_match.json is made from assets/ by a script, never by hand: each model of the
    embedded default has an entry made for its weights. A retrained model fails here until
    `python -m ccr_demo.ui.calibration --assets assets` is run again (the app then says so too)."""
    from ccr_demo.ui.manifest import read_manifest

    assets = ROOT / "assets"
    if not (assets / "models.json").is_file():
        pytest.skip("no embedded default")
    for spec in read_manifest(assets / "models.json"):
        info = describe(spec.name, spec.model, spec.gallery)
        assert info.no_match is not None, f"{spec.name}: {info.note}"
        assert info.no_match_about["n_scores"] > 0 and 0 < info.no_match < 1

"""Search re-ranked with the fusion encoder (issue 12, app part): the view logic on a tiny fusion
model and its gallery built with the index CLI, checked against ccr_demo.eval.rerank's rule computed
here directly from the model's ITM scores; the dual-encoder and bad-input paths; the switch in
the Blocks. (The gradio_client and browser tests are in test_app_client.py / test_browser.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config
from test_ui_callbacks import build_tiny_assets, load_state

from ccr_demo.eval import metrics
from ccr_demo.eval.rerank import rerank_top_k
from ccr_demo.model.configuration import FusionConfig
from ccr_demo.ui import callbacks as cb
from ccr_demo.ui import rerank_view

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

QUERIES = {"en": "a red circle", "de": "ein roter Kreis", "zh": "红色的圆", "ja": "赤い丸"}


def fusion_config():
    return tiny_config(image_tower="resnet10t", image_size=64, fusion=FusionConfig(layers=1, heads=2))


@pytest.fixture(scope="module")
def fusion_assets(tmp_path_factory):
    return build_tiny_assets(tmp_path_factory.mktemp("fusion_assets"), config=fusion_config())


@pytest.fixture(scope="module")
def fusion_app(fusion_assets):
    state = load_state(fusion_assets)
    assert state.ready and not state.problems and state.can_rerank, state.problems
    return state


def _expected(app, texts: dict[str, str], rerank_k: int):
    """Each language's re-ranked top k by the library rule, ITM scored here pair by pair."""
    model, g = app.model, app.gallery
    scores = model.encode_texts(list(texts.values())).numpy() @ g.vectors.T  # [L, N]
    memory = model.encode_image_memory(_images(g))  # every gallery image, [N, 1+T, W]
    states, mask = model.encode_text_states(list(texts.values()))

    def pair_scores(q, cand):
        qq = np.repeat(q, cand.shape[1])
        return model.match_scores(memory[cand.ravel()], states[qq], mask[qq]).numpy().reshape(cand.shape)

    return scores, rerank_top_k(scores, rerank_k, pair_scores)


def _images(gallery):
    from ccr_demo.data.images import load_image

    return [load_image(it["path"]) for it in gallery.items]


def test_reranked_top_k_follows_the_library_rule(fusion_app):
    app, k, rerank_k = fusion_app, 5, 8
    res = cb.search(app, QUERIES, k, rerank=True, rerank_k=rerank_k)
    assert res.ok, res.message
    plain = cb.search(app, QUERIES, k)
    scores, expect = _expected(app, QUERIES, rerank_k)
    contrastive = metrics.rank_consistency(scores, k)
    ids = app.gallery.ids
    for i, lang in enumerate(QUERIES):
        top_c = np.argsort(-scores[i], kind="stable")[:rerank_k]
        # the panes: the first k of the re-ranked top rerank_k, a permutation of the contrastive top rerank_k
        assert res.pane_rows[lang] == expect[i, :k].tolist()
        assert set(expect[i].tolist()) == set(top_c.tolist())
        shown = res.rerank["results"][lang]
        assert [h["image"] for h in shown] == [ids[r] for r in expect[i, :k]]
        assert [h["contrastive_position"] for h in shown] == [top_c.tolist().index(r) + 1 for r in expect[i, :k]]
        itm = [h["itm"] for h in shown]
        assert all(v is not None for v in itm) and itm == sorted(itm, reverse=True)
        assert " re-ranked (contrastive #" in res.panes[lang][0][1] and "ITM " in res.panes[lang][0][1]
        # the contrastive view is still there: hits and MRV are the plain search's
        assert res.hits[lang] == plain.hits[lang]
    assert res.mrv == pytest.approx(plain.mrv) and res.consensus == plain.consensus
    # ranks after re-ranking: the position in the re-ranked top k; outside it, the contrastive rank
    after = np.array(contrastive.ranks).copy()  # [N, L]
    for i in range(len(QUERIES)):
        after[expect[i], i] = np.arange(rerank_k)
    ref = metrics.rank_consistency(-after.T.astype(float), k)
    for rec in res.rerank["ranks"]:
        r = app.gallery.position(rec["image"])
        assert list(rec["contrastive"].values()) == (contrastive.ranks[r] + 1).tolist()
        assert list(rec["reranked"].values()) == (after[r] + 1).tolist()
        outside = [i for i in range(len(QUERIES)) if r not in expect[i]]
        assert all(rec["reranked"][list(QUERIES)[i]] == rec["contrastive"][list(QUERIES)[i]] for i in outside)
    assert res.rerank["mrv"] == pytest.approx(ref.mrv) and res.rerank["consensus"] == ids[ref.consensus]
    # MRV with and without, ranks as "contrastive → re-ranked" in the table
    assert f"Query MRV: {plain.mrv:.3f} → {ref.mrv:.3f} (re-ranked top {rerank_k})" in res.mrv_markdown
    row = res.table.set_index("image").loc[res.rerank["consensus"]]
    cons_row = app.gallery.position(res.rerank["consensus"])
    assert row["rank en"] == f"{contrastive.ranks[cons_row, 0] + 1} → {after[cons_row, 0] + 1}"
    assert res.summary()["rerank"] is res.rerank and "rerank" not in plain.summary()


def test_results_after_the_reranked_top_k_keep_their_contrastive_order(fusion_app):
    app = fusion_app
    plain = cb.search(app, QUERIES, 8)
    res = cb.search(app, QUERIES, 8, rerank=True, rerank_k=3)
    assert res.ok and res.rerank["k"] == 3
    for lang in QUERIES:
        assert sorted(res.pane_rows[lang][:3]) == sorted(plain.pane_rows[lang][:3])  # a permutation of the top 3
        assert res.pane_rows[lang][3:] == plain.pane_rows[lang][3:]  # the rest: contrastive order
        assert [h["contrastive_position"] for h in res.rerank["results"][lang][3:]] == list(range(4, 9))
        assert all(h["itm"] is None for h in res.rerank["results"][lang][3:])
        assert "after the re-ranked top 3" in res.panes[lang][3][1]
        for rec in res.rerank["ranks"]:  # outside the re-ranked top 3, ranks are the contrastive ones
            if app.gallery.position(rec["image"]) not in res.pane_rows[lang][:3]:
                assert rec["reranked"][lang] == rec["contrastive"][lang]


def test_image_memory_is_cached_and_bounded(fusion_app):
    app = fusion_app
    app.image_memory = rerank_view.ImageMemoryCache(max_items=1000)
    first = cb.search(app, {"en": "a blue square", "de": "ein blaues Quadrat"}, 3, rerank=True, rerank_k=6)
    again = cb.search(app, {"en": "a blue square", "de": "ein blaues Quadrat"}, 3, rerank=True, rerank_k=6)
    assert first.rerank["images_encoded"] > 0 and again.rerank["images_encoded"] == 0
    assert again.rerank["results"] == first.rerank["results"]
    small = rerank_view.ImageMemoryCache(max_items=3)
    for i in range(5):
        small.put(("m", i), torch.zeros(5, 32))
    assert len(small) == 3 and small.get(("m", 0)) is None and small.get(("m", 4)) is not None
    tiny = rerank_view.ImageMemoryCache(max_items=100, max_bytes=2 * 5 * 32 * 4)
    for i in range(4):
        tiny.put(("m", i), torch.zeros(5, 32))
    assert len(tiny) == 2 and tiny.nbytes <= tiny.max_bytes
    app.image_memory = rerank_view.ImageMemoryCache(app.limits.image_memory_items, app.limits.image_memory_bytes)


def test_rerank_k_beyond_the_gallery_and_gold_mode(fusion_app):
    app = fusion_app
    n = app.gallery.count
    res = cb.search(app, QUERIES, 5, rerank=True, rerank_k=app.limits.max_rerank_k)  # more than the 24 images
    assert res.ok and res.rerank["k"] == n and "only 24 candidates" in res.message
    ranks = np.array([list(x["reranked"].values()) for x in res.rerank["ranks"]])
    assert ranks.min() >= 1 and ranks.max() <= n
    inst = cb.random_instance(app, ["en", "de", "zh"], index=3)
    g = cb.search(app, inst.texts, 5, gold=inst.gold, rerank=True, rerank_k=n)
    gold = g.rerank["gold"]
    assert gold["image_id"] == inst.gold["image_id"] and g.gold["image_id"] == inst.gold["image_id"]
    assert gold["mrv"] == pytest.approx(metrics.mean_rank_variance(np.array([list(gold["ranks"].values())]) - 1))
    rec = next(x for x in g.rerank["ranks"] if x["image"] == gold["image_id"])
    assert rec["reranked"] == gold["ranks"] and rec["contrastive"] == g.gold["ranks"]
    assert "★ Gold image" in g.mrv_markdown
    assert f"gold MRV **{g.gold['mrv']:.3f} → {gold['mrv']:.3f}**" in g.mrv_markdown


def test_a_missing_candidate_image_is_placed_after_the_scored_ones(fusion_app, tmp_path):
    import copy

    app = fusion_app
    gallery = copy.copy(app.gallery)
    gallery.items = [dict(it) for it in app.gallery.items]
    plain = cb.search(app, {"en": "a red circle"}, 4, gallery=gallery)
    gone = plain.pane_rows["en"][0]
    gallery.items[gone]["path"] = str(tmp_path / "gone.png")
    res = cb.search(app, {"en": "a red circle"}, 4, gallery=gallery, rerank=True, rerank_k=4)
    assert res.ok and "could not be read" in res.message
    assert res.pane_rows["en"][-1] == gone and res.rerank["results"]["en"][-1]["itm"] is None


@pytest.mark.parametrize("bad", [0, 129, 2.5, float("nan"), "16", None, True])
def test_bad_rerank_k_gets_a_message(fusion_app, bad):
    res = cb.search(fusion_app, QUERIES, 5, rerank=True, rerank_k=bad)
    assert not res.ok and "re-rank k: got" in res.message and "expected a whole number from 1 to 128" in res.message


def test_dual_encoder_cannot_rerank(tmp_path_factory):
    from test_ui_callbacks import build_tiny_assets as build

    app = load_state(build(tmp_path_factory.mktemp("dual"), n_test=8))
    assert not app.can_rerank
    res = cb.search(app, {"en": "a red circle"}, 3, rerank=True)
    assert not res.ok and "dual encoder" in res.message
    assert cb.search(app, {"en": "a red circle"}, 3, rerank=False).ok
    from ccr_demo.ui import build_demo

    demo = build_demo(state=app)
    row = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "rerank-row")
    assert row.visible is False  # issue 22: hidden for a dual encoder, not shown greyed out


def test_switch_in_the_blocks_and_api(fusion_app):
    import gradio as gr

    from ccr_demo.ui import build_demo, inputs

    demo = build_demo(state=fusion_app)
    box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "rerank")
    slider = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "rerank-k")
    assert box.interactive is not False and box.value is False
    # issue 22: the switch says what re-ranking measurably does for this model (its eval report;
    # this generated one has none, and says so)
    assert "not measured" in box.info
    assert slider.value == 16 and slider.minimum == 1 and slider.maximum == 128
    with pytest.raises(gr.Error, match="got 'yes'"):
        box.preprocess("yes")
    assert inputs.Checkbox(label="x").preprocess(None) is False
    fn = next(f for f in demo.fns.values() if f.api_name == "search")
    assert [b.elem_id for b in fn.inputs[-2:]] == ["rerank", "rerank-k"]


def test_a_gallery_of_base64_images_reranks_from_its_thumbnails(fusion_app, tmp_path):
    """WIT-style rows carry no image file: re-ranking reads the thumbnails the build wrote, and
    without thumbnails it says it cannot read the candidates (instead of failing the search)."""
    import base64

    from ccr_demo.gallery.build import build_sharded
    from ccr_demo.gallery.sources import WitImageSource

    app = fusion_app
    wit = tmp_path / "wit.tsv"
    encoded = [base64.b64encode(Path(it["path"]).read_bytes()).decode() for it in app.gallery.items[:8]]
    wit.write_text("".join(f"https://example.org/{it['id']}\t{b64}\n" for it, b64 in zip(app.gallery.items, encoded)))
    with_thumbs = build_sharded(app.model, WitImageSource(wit), tmp_path / "g", batch_size=4, progress=False)
    assert with_thumbs.build["thumbnail_size"] == 256 and with_thumbs.build["thumbnails"] == 8
    res = cb.search(app, {"en": "a red circle"}, 4, gallery=with_thumbs, rerank=True, rerank_k=4)
    assert res.ok and "could not be read" not in res.message
    assert all(r["itm"] is not None for r in res.rerank["results"]["en"][:4])
    bare = build_sharded(app.model, WitImageSource(wit), tmp_path / "bare", batch_size=4, progress=False,
                         thumbnail_size=0)
    res = cb.search(app, {"en": "a red circle"}, 4, gallery=bare, rerank=True, rerank_k=4)
    assert res.ok and "could not be read" in res.message
    assert all(r["itm"] is None for r in res.rerank["results"]["en"])


def test_the_models_itc_weight_orders_the_apps_reranking(fusion_app):
    """The app re-ranks by the model's own rule: ITM + w x contrastive (model.fusion.rerank_itc_weight);
    a w so large that the contrastive score decides gives back the contrastive order."""
    app = fusion_app
    plain = cb.search(app, QUERIES, 5)
    by_itm = cb.search(app, QUERIES, 5, rerank=True, rerank_k=8)
    app.model.config.fusion.rerank_itc_weight = 1e6
    try:
        blended = cb.search(app, QUERIES, 5, rerank=True, rerank_k=8)
    finally:
        app.model.config.fusion.rerank_itc_weight = 0.0
    assert blended.ok and all(blended.pane_rows[lang] == plain.pane_rows[lang] for lang in QUERIES)
    assert any(by_itm.pane_rows[lang] != plain.pane_rows[lang] for lang in QUERIES)  # not vacuous


def test_the_switch_says_what_reranking_does_from_the_eval_report():
    """Issue 22: with the fusion model, re-ranking roughly halved R@1 and the switch said nothing."""
    from ccr_demo.ui.model_info import ModelInfo, final_report, rerank_effect

    langs = ["en", "de"]
    report = {"n_instances": 1000, "t2i": {lg: {"1": 88.0} for lg in langs}, "mrv": {"t2i": 0.31},
              "rerank": {"k": 16, "t2i": {lg: {"1": 52.0} for lg in langs}, "mrv": {"t2i": 1.19}}}
    line = rerank_effect(ModelInfo("CCRK", "x", report=final_report({"reports": [report]})))
    assert "R@1 88.0% → 52.0% (mean over 2 languages)" in line and "MRV 0.310 → 1.190" in line
    assert "makes this model's results worse" in line and "1000 test instances among all 1000 images" in line
    better = {**report, "rerank": {**report["rerank"], "t2i": {lg: {"1": 90.0} for lg in langs}}}
    assert "improves" in rerank_effect(ModelInfo("CCRK", "x", report=better))
    assert "not measured" in rerank_effect(ModelInfo("CCRK", "x", report={"t2i": {}}))

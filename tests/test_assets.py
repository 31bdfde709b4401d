"""The embedded default (assets/): loads offline and reproduces its recorded evaluation."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ccr_demo.data.testset import ParallelTestSet
from ccr_demo.eval import metrics
from ccr_demo.gallery.gallery import Gallery
from ccr_demo.model.modeling import CCRModel

ASSETS = Path(__file__).resolve().parents[1] / "assets"
N_SLICE = 40


@pytest.fixture(scope="module")
def default():
    model = CCRModel.from_pretrained(ASSETS / "model")  # no network: HF_HUB_OFFLINE=1 in conftest
    gallery = Gallery.load(ASSETS / "gallery", model, image_root=ASSETS / "shapes_test")
    report = json.loads((ASSETS / "eval_report.json").read_text())
    return model, gallery, report


def test_assets_are_small_and_hold_no_wheel_tower(default):
    model, _, _ = default
    meta = json.loads((ASSETS / "model" / "config.json").read_text())
    assert set(meta["external_towers"]) == {"text_tower"}  # e5 is rebuilt from its wheel
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    # 3 models (the 1-to-K default, its 1-to-1 baseline, the whole CCRK model) with their galleries
    assert total < 105 * 2**20, f"assets/ is {total / 2**20:.1f} MiB"
    card = (ASSETS / "model" / "README.md").read_text()
    assert "MRV" in card and "| tr |" in card


def test_recorded_ranks_are_reproduced_on_a_slice(default):
    """Re-encode the first captions of N_SLICE test instances in every language and rank them
    against the whole shipped gallery: the ranks must be those in eval_report.json."""
    model, gallery, report = default
    ts = ParallelTestSet.from_iglue(ASSETS / "shapes_test")
    assert gallery.ids == ts.image_ids and len(ts) == report["n_instances"]
    agree = []
    for lang in report["languages"]:
        texts = [ts.captions[lang][i] for i in ts.first_text[lang][:N_SLICE]]
        scores = model.encode_texts(texts).numpy() @ gallery.vectors.T
        ranks = metrics.t2i_ranks(scores, np.arange(N_SLICE))
        agree.append(ranks == np.asarray(report["ranks"]["t2i"][lang][:N_SLICE]))
    agree = np.stack(agree)
    assert agree.mean() >= 0.97, f"only {agree.mean():.1%} of recorded ranks reproduced"


def test_recorded_metrics_follow_from_recorded_ranks(default):
    _, _, report = default
    langs = report["languages"]
    t2i = np.stack([report["ranks"]["t2i"][lang] for lang in langs], axis=1)
    i2t = np.stack([report["ranks"]["i2t"][lang] for lang in langs], axis=1)
    assert report["mrv"]["t2i"] == pytest.approx(metrics.mean_rank_variance(t2i))
    assert report["mrv"]["i2t"] == pytest.approx(metrics.mean_rank_variance(i2t))
    for j, lang in enumerate(langs):
        assert report["t2i"][lang]["1"] == pytest.approx(metrics.recall_at_k(t2i[:, j], (1,))[1])


def test_recorded_typed_query_results_are_reproduced_on_a_slice(default):
    """The shipped typed queries, re-encoded: each query's first-relevant rank over the whole
    gallery must be the one eval_report.json records (issue 8's figures come from there)."""
    from ccr_demo.data.queries import QuerySet

    model, gallery, report = default
    q = report["queries"]
    queries = QuerySet.load(ASSETS / "test_queries")
    assert q["per_query"]["ids"] == queries.ids and q["n_queries"] == len(queries)
    relevant = queries.relevance(gallery.ids)
    agree = []
    for lang in ("en", "zh", "tr"):
        scores = model.encode_texts(queries.texts[lang][:N_SLICE]).numpy() @ gallery.vectors.T
        first = metrics.first_relevant_ranks(scores, relevant[:N_SLICE])
        agree.append(first == np.asarray(q["per_query"]["first_rank"][lang][:N_SLICE]))
        assert np.mean(q["per_query"]["p@5"][lang]) == pytest.approx(q["per_language"][lang]["p@5"])
    assert np.mean(agree) >= 0.97, f"only {np.mean(agree):.1%} of recorded ranks reproduced"



@pytest.fixture(scope="module")
def english(tmp_path_factory):
    """The first English caption of every test instance, and a text-feature store for the
    models below. They share the default's locked e5 tower (one store key), so its 1000
    captions go through that tower once, then through each model's own projection: the path a
    training run's evaluation takes with cached text features."""
    ts = ParallelTestSet.from_iglue(ASSETS / "shapes_test")
    return ts, [ts.captions["en"][i] for i in ts.first_text["en"]], tmp_path_factory.mktemp("text_features")


def _embed_english(model, english) -> np.ndarray:
    from ccr_demo.model.text_cache import TextFeatureCache, TextFeatureStore, store_key

    _, texts, root = english
    cache = TextFeatureCache.build(model, texts, store=TextFeatureStore.for_model(model, root / store_key(model)),
                                   progress=False)
    emb = cache.encode(model, texts)
    # the cached path is the model's own: encode_texts gives the same embeddings
    torch.testing.assert_close(emb[:16], model.encode_texts(texts[:16]), atol=1e-4, rtol=0)
    return emb.numpy()


@pytest.mark.parametrize("name", ["ccrk", "1to1"])
def test_the_models_beside_the_default_reproduce_their_reports(name, english):
    """assets/model-ccrk (fusion encoder, ITM, MLM) and assets/model-1to1 (the 1-to-1 baseline of
    the default's recipe), each with its own gallery of the same images: the English
    caption-to-image R@1 over the whole test set is the one its run recorded."""
    model = CCRModel.from_pretrained(ASSETS / f"model-{name}")
    gallery = Gallery.load(ASSETS / f"gallery-{name}", model, image_root=ASSETS / "shapes_test")
    data = json.loads((ASSETS / f"eval_report-{name}.json").read_text())
    report = data["reports"][-1] if "reports" in data else data  # a run's reports, or the eval CLI's one
    def architecture(folder):  # the saved model config, without an empty fusion section
        model_config = json.loads((ASSETS / folder / "config.json").read_text())["model"]
        return {k: v for k, v in model_config.items() if k != "fusion"}
    if name == "ccrk":
        assert model.has_fusion and model.config.fusion.inputs == "projected"
        assert report["rerank"]["k"] == 16 and "official" in report
        # the report re-ranks by the weight the shipped model carries (chosen on validation)
        assert report["rerank"]["itc_weight"] == model.config.fusion.rerank_itc_weight > 0
    else:  # the same recipe but the loss
        assert not model.has_fusion and architecture("model-1to1") == architecture("model")
        assert "one_to_one" in (ASSETS / "model-1to1" / "README.md").read_text()
    ts = english[0]
    assert gallery.ids == ts.image_ids
    ranks = metrics.t2i_ranks(_embed_english(model, english) @ gallery.vectors.T, np.arange(len(ts)))
    assert metrics.recall_at_k(ranks, (1,))[1] == pytest.approx(report["t2i"]["en"]["1"], abs=0.3)

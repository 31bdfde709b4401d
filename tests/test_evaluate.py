"""Evaluation reports: numbers equal the metrics on the same scores; the CLI reads any IGLUE-layout set."""

import json

import numpy as np
import pytest

from ccr_demo.data.testset import ParallelTestSet
from ccr_demo.eval import metrics
from ccr_demo.eval.evaluate import encode_test_set, evaluate, main


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


# --------------------------------------------------------------------------- ITM re-ranking


@pytest.fixture(scope="module")
def fusion_model():
    import dataclasses

    import torch

    from ccr_demo.model.modeling import CCRModel
    from tests.conftest import tiny_config

    torch.manual_seed(0)
    config = dataclasses.asdict(tiny_config(image_tower="resnet10t", image_size=64))
    config["fusion"] = dict(layers=1, heads=2)
    return CCRModel(config)


def _all_pairs_itm(model, ts, lang):
    """ITM score of every (caption, image) pair [T, N], straight from the model's API."""
    import torch

    memory = model.encode_image_memory(torch.stack([model.image_processor(ts.load_image(i)) for i in range(len(ts))]))
    states, mask = model.encode_text_states(ts.captions[lang])
    t, n = len(ts.captions[lang]), len(ts)
    rows = torch.arange(t).repeat_interleave(n)
    cols = torch.arange(n).repeat(t)
    return model.match_scores(memory[cols], states[rows], mask[rows]).numpy().reshape(t, n)


def test_rerank_with_k_at_least_n_ranks_by_itm_alone(fusion_model, shapes_test):
    ts = ParallelTestSet.from_iglue(shapes_test).subset(12)
    plain = evaluate(fusion_model, ts, progress=False, keep_ranks=True)
    report = evaluate(fusion_model, ts, progress=False, keep_ranks=True, rerank_k=50, pair_batch=7)
    json.dumps(report)  # JSON-ready
    for key in ("t2i", "i2t", "mean_recall", "ranks"):  # contrastive keys keep their meaning
        assert report[key] == plain[key], key
    assert report["mrv"] == pytest.approx(plain["mrv"]) and report["mrv_var"] == pytest.approx(plain["mrv_var"])
    assert report["rerank"]["k"] == 50 and report["official"]["fill"] == -100.0
    img, txt = encode_test_set(fusion_model, ts, ts.languages, progress=False)

    def by_itm(itm, contrastive, golds):
        """Sort every candidate by ITM (equal ITM: contrastive order), best gold position."""
        order = sorted(range(len(itm)), key=lambda j: (-itm[j], -contrastive[j], j))
        return min(order.index(g) for g in golds)

    for lang in ts.languages:
        itm = _all_pairs_itm(fusion_model, ts, lang)  # [T, N]
        sims = txt[lang].numpy() @ img.numpy().T
        t2i = [by_itm(itm[t], sims[t], [ts.text_to_image[lang][t]]) for t in range(len(itm))]
        i2t = [by_itm(itm[:, i], sims[:, i], ts.image_to_texts[lang][i]) for i in range(len(ts))]
        assert report["rerank"]["ranks"]["t2i"][lang] == [t2i[t] for t in ts.first_text[lang]]
        assert report["rerank"]["ranks"]["i2t"][lang] == i2t
        assert report["rerank"]["t2i"][lang] == {str(k): v for k, v in metrics.recall_at_k(np.array(t2i)).items()}
        # nothing is left out of the top k: the official protocol is a sort by ITM alone
        # (np.argsort(row)[::-1], stable: equal ITM goes to the higher index)
        official = [int(np.flatnonzero(np.argsort(itm[t], kind="stable")[::-1] == ts.text_to_image[lang][t])[0])
                    for t in ts.first_text[lang]]
        assert report["official"]["ranks"]["t2i"][lang] == official
    # and ITM ranks are not the contrastive ones (the test would be vacuous otherwise)
    assert report["rerank"]["ranks"] != report["ranks"]


def test_rerank_small_k_keeps_left_out_golds_and_official_scatters_them(fusion_model, shapes_test):
    ts = ParallelTestSet.from_iglue(shapes_test)
    report = evaluate(fusion_model, ts, progress=False, keep_ranks=True, rerank_k=2, mrv_languages=["en", "zh"])
    k = 2
    for direction in ("t2i", "i2t"):
        for lang in ts.languages:
            contrastive = np.array(report["ranks"][direction][lang])
            exact = np.array(report["rerank"]["ranks"][direction][lang])
            official = np.array(report["official"]["ranks"][direction][lang])
            out = contrastive >= k
            np.testing.assert_array_equal(exact[out], contrastive[out])
            assert (exact[~out] < k).all() and (official[out] >= k).all()
            np.testing.assert_array_equal(official[~out], exact[~out])
            # re-ranking only permutes the top k: R@5 and R@10 are the contrastive ones
            assert [report["rerank"][direction][lang][K] for K in ("5", "10")] == \
                [report[direction][lang][K] for K in ("5", "10")]
    assert report["rerank"]["mrv_languages"] == ["en", "zh"] == report["mrv_subset"]["languages"]
    sub = np.stack([report["official"]["ranks"]["t2i"][lang] for lang in ("en", "zh")], axis=1)
    assert report["official"]["mrv"]["t2i"] == pytest.approx(metrics.mean_rank_variance(sub))
    assert report["mrv"] == evaluate(fusion_model, ts, progress=False)["mrv"]  # top-level MRV: all languages
    with pytest.raises(ValueError, match="MRV languages"):
        evaluate(fusion_model, ts, progress=False, rerank_k=2, mrv_languages=["ja"])


def test_rerank_on_a_dual_encoder_is_skipped_and_said(tiny_model, shapes_test):
    ts = ParallelTestSet.from_iglue(shapes_test).subset(6)
    report = evaluate(tiny_model, ts, progress=False, rerank_k=5)
    assert "rerank" not in report and "official" not in report and "fusion" in report["rerank_skipped"]


# --------------------------------------------------------------------------- translate-test


def _write_translate_test(root, ts, languages=("de", "zh"), drop=None, wrong_image=None):
    """IGLUE layout: root/annotations_machine-translate/{lang}/test_gmt.jsonl, rows reversed,
    plus one id the test set does not have."""
    from pathlib import Path

    for lang in languages:
        d = root / "annotations_machine-translate" / lang
        d.mkdir(parents=True, exist_ok=True)
        rows = [{"sentences": [f"translated from {lang}: {c}" for c in caps], "id": ts.image_ids[i],
                 "img_path": wrong_image if (wrong_image and i == 0) else Path(ts.image_paths[i]).name}
                for i, caps in enumerate(ts.instance_captions(lang)) if ts.image_ids[i] != drop]
        rows.append({"sentences": ["extra"], "id": "not-in-the-test-set", "img_path": "x.png"})
        (d / "test_gmt.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))
    return root


def test_translate_test_reader_aligns_by_id(shapes_test, tmp_path):
    from ccr_demo.data.errors import DataFormatError
    from ccr_demo.data.testset import read_iglue_translate_test

    ts = ParallelTestSet.from_iglue(shapes_test)
    root = _write_translate_test(tmp_path / "tt", ts)
    tt = read_iglue_translate_test(root, ts)
    assert tt.languages == ["de", "zh"] and tt.image_ids == ts.image_ids  # en has no file: skipped
    assert tt.captions["zh"][3] == f"translated from zh: {ts.captions['zh'][3]}"
    np.testing.assert_array_equal(tt.text_to_image["de"], ts.text_to_image["de"])
    assert read_iglue_translate_test(root / "annotations_machine-translate", ts, ["zh"]).languages == ["zh"]
    with pytest.raises(DataFormatError, match="no row for id"):
        read_iglue_translate_test(_write_translate_test(tmp_path / "d", ts, drop=ts.image_ids[4]), ts)
    with pytest.raises(DataFormatError, match="has image"):
        read_iglue_translate_test(_write_translate_test(tmp_path / "w", ts, wrong_image="other.png"), ts)
    with pytest.raises(DataFormatError, match="no translate-test file"):
        read_iglue_translate_test(tmp_path / "tt", ts, ["en"])


def test_translate_test_is_reported_beside_the_originals(fusion_model, shapes_test, tmp_path, capsys):
    ts = ParallelTestSet.from_iglue(shapes_test).subset(10)
    _write_translate_test(tmp_path / "tt", ParallelTestSet.from_iglue(shapes_test))
    from ccr_demo.data.testset import read_iglue_translate_test

    tt = read_iglue_translate_test(tmp_path / "tt", ts)
    report = evaluate(fusion_model, ts, progress=False, translate_test=tt, rerank_k=3, keep_ranks=True)
    alone = evaluate(fusion_model, tt, progress=False, rerank_k=3, keep_ranks=True)
    got = report["translate_test"]
    assert got["languages"] == ["de", "zh"] and report["languages"] == ["en", "de", "zh"]
    for key in ("t2i", "i2t", "ranks"):
        assert got[key] == alone[key], key
    assert got["mrv"] == pytest.approx(alone["mrv"])
    assert got["official"]["ranks"] == alone["official"]["ranks"]
    assert got["t2i"] != report["t2i"]
    # the CLI end to end
    fusion_model.save_pretrained(tmp_path / "m")
    rc = main(["--model", str(tmp_path / "m"), "--data", str(shapes_test), "--max-instances", "10",
               "--rerank-k", "3", "--mrv-languages", "en,de", "--translate-test", str(tmp_path / "tt"),
               "--out", str(tmp_path / "r.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "official protocol" in out and "MRV over en,de" in out and "Translate-test" in out
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["official"]["mrv_languages"] == ["en", "de"] and "official" in saved["translate_test"]


def test_typed_queries_get_a_reranked_p5(fusion_model, shapes_test):
    import torch

    from ccr_demo.data.queries import QuerySet

    ts = ParallelTestSet.from_iglue(shapes_test)
    qs = QuerySet.load(shapes_test.parent / "test_queries", languages=ts.languages)
    small = evaluate(fusion_model, ts, progress=False, queries=qs, rerank_k=2)["queries"]
    # k < 5: the first five are still the contrastive top five (re-ordered), P@5 unchanged
    assert small["rerank"]["p@5"] == pytest.approx({lang: small["per_language"][lang]["p@5"] for lang in ts.languages})
    full = evaluate(fusion_model, ts, progress=False, queries=qs, rerank_k=len(ts))["queries"]["rerank"]
    relevant = qs.relevance(ts.image_ids)
    memory = fusion_model.encode_image_memory(
        torch.stack([fusion_model.image_processor(ts.load_image(i)) for i in range(len(ts))]))
    for lang in ts.languages:  # k = N: the five best images by ITM alone
        states, mask = fusion_model.encode_text_states(qs.texts[lang])
        q, n = len(qs.texts[lang]), len(ts)
        rows, cols = torch.arange(q).repeat_interleave(n), torch.arange(n).repeat(q)
        itm = fusion_model.match_scores(memory[cols], states[rows], mask[rows]).numpy().reshape(q, n)
        top5 = np.argsort(-itm, axis=1, kind="stable")[:, :5]
        want = (np.take_along_axis(relevant, top5, 1).sum(1) / np.minimum(relevant.sum(1), 5)).mean()
        assert full["p@5"][lang] == pytest.approx(want)


def test_rerank_reads_token_states_from_the_store_when_given(tmp_path, monkeypatch, shapes_test):
    """--cached-text-features with re-ranking: the ITM head's text states come from the per-string
    token-state store (ccr_demo.model.text_cache) and give the same report as encoding them."""
    import torch

    from ccr_demo.eval.evaluate import evaluate
    from ccr_demo.model.modeling import CCRModel
    from ccr_demo.model.text_cache import TextStateCache, TextStateStore

    monkeypatch.setenv("CCR_DEMO_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = CCRModel(dict(image_tower="resnet10t", image_size=64, text_tower="random:bert", embed_dim=32,
                          fusion=dict(layers=1, heads=2))).lock_text_tower().eval()
    ts = ParallelTestSet.from_iglue(shapes_test).subset(8)
    texts = [t for lang in ts.languages for t in ts.captions[lang]]
    cache = TextStateCache.build(model, texts, progress=False)
    assert list(TextStateStore.for_model(model).shards())
    calls = []

    def lookup(batch):
        calls.append(len(batch))
        return cache.lookup(batch)

    a = evaluate(model, ts, progress=False, rerank_k=3, encode_text_states=lookup)
    b = evaluate(model, ts, progress=False, rerank_k=3)
    assert calls and a["rerank"]["t2i"] == b["rerank"]["t2i"] and a["rerank"]["mrv"] == pytest.approx(b["rerank"]["mrv"])


def test_the_models_itc_weight_orders_the_reranked_top_k_and_the_weights_are_tabled(fusion_model, shapes_test):
    """model.fusion.rerank_itc_weight: a weight so large that the contrastive score decides
    gives back the contrastive ranks; the report tables every candidate weight on this split."""
    ts = ParallelTestSet.from_iglue(shapes_test).subset(12)
    plain = evaluate(fusion_model, ts, progress=False, keep_ranks=True)
    itm_alone = evaluate(fusion_model, ts, progress=False, keep_ranks=True, rerank_k=50)
    fusion_model.config.fusion.rerank_itc_weight = 1e6
    try:
        blended = evaluate(fusion_model, ts, progress=False, keep_ranks=True, rerank_k=50)
    finally:
        fusion_model.config.fusion.rerank_itc_weight = 0.0
    assert blended["rerank"]["itc_weight"] == 1e6 and itm_alone["rerank"]["itc_weight"] == 0.0
    assert blended["rerank"]["ranks"]["t2i"] == plain["ranks"]["t2i"] != itm_alone["rerank"]["ranks"]["t2i"]
    table = itm_alone["rerank"]["itc_weight_table"]
    assert set(table) >= {0.0, 64.0} and all(0.0 <= v <= 1.0 for v in table.values())
    assert blended["rerank"]["itc_weight_table"] == table  # a property of the split and the heads, not of w
    assert len(set(table.values())) > 1  # the weights do order this split differently

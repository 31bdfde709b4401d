"""Typed queries end to end: relevance semantics, the generated data (parallel partial
captions, recorded assertions, unique gold, held-out phrasings, the query split), the
dataset's per-epoch caption draw and false negatives, and the evaluation report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ccr_demo import LANGUAGES
from ccr_demo.data.languages import plan_from_scene
from ccr_demo.data.queries import (
    GRANULARITIES,
    TWO_OBJECT_GRANULARITIES,
    QuerySet,
    assertion_for,
    assertion_key,
    is_relevant,
    relevance_matrix,
    sample_assertions,
)
from ccr_demo.data.shapes import Scene, generate_dataset
from ccr_demo.data.testset import ParallelTestSet
from ccr_demo.training.datasets import MultilingualPretrainDataset

S = {"objects": [{"shape": "circle", "colour": "red", "size": "small", "position": "left"},
                 {"shape": "circle", "colour": "red", "size": "large", "position": "right"},
                 {"shape": "star", "colour": "blue", "size": "small", "position": "top"}],
     "background": "grey", "relation": None}


@pytest.mark.parametrize("asserts, expected", [
    ({"shape": "circle"}, True),
    ({"shape": "circle", "colour": "red", "size": "large"}, True),
    ({"shape": "circle", "colour": "blue"}, False),
    ({"shape": "star", "position": "top"}, True),
    ({"shape": "star", "position": "left"}, False),
    ({"shape": "circle", "colour": "red", "count": 2}, True),
    ({"shape": "circle", "count": 3}, False),  # "three circles" is false of two
    ({"shape": "circle", "size": "small", "count": 2}, False),
    ({"background": "grey"}, True),
    ({"background": "black"}, False),
    ({"shape": "star", "colour": "blue", "background": "grey"}, True),
    ({"shape": "star", "colour": "blue", "background": "white"}, False),
])
def test_relevance(asserts, expected):
    assert is_relevant(asserts, S) is expected


def _obj(shape, colour, position, size="small"):
    return {"shape": shape, "colour": colour, "size": size, "position": position}


# A red square left of a blue circle (one row), a green star at the top (diagonal to the square).
PAIR_SCENE = {"objects": [_obj("square", "red", "left"), _obj("circle", "blue", "centre"),
                          _obj("star", "green", "top", "large")], "background": "white", "relation": None}
RED_SQUARE, BLUE_CIRCLE, GREEN_STAR = ({"shape": "square", "colour": "red"}, {"shape": "circle", "colour": "blue"},
                                       {"shape": "star", "colour": "green"})


def _pair(a, b, **extra):
    return {"pair": [a, b], **extra}


@pytest.mark.parametrize("asserts, expected", [
    (_pair(RED_SQUARE, BLUE_CIRCLE), True),
    (_pair(BLUE_CIRCLE, RED_SQUARE), True),  # order of naming does not matter
    (_pair({"shape": "square", "colour": "blue"}, {"shape": "circle", "colour": "red"}), False),  # colours swapped
    (_pair(RED_SQUARE, {"shape": "heart", "colour": "blue"}), False),  # the second is missing
    (_pair(RED_SQUARE, {"shape": "square", "colour": "red"}), False),  # one object cannot be both
    (_pair({"shape": "square", "colour": "red", "position": "left"},
           {"shape": "circle", "colour": "blue", "position": "centre"}), True),
    (_pair({"shape": "square", "colour": "red", "position": "centre"},
           {"shape": "circle", "colour": "blue", "position": "left"}), False),  # places swapped
    (_pair({"shape": "square", "colour": "red", "position": "left"},
           {"shape": "star", "colour": "green", "position": "bottom"}), False),  # the second misplaced
    (_pair(RED_SQUARE, BLUE_CIRCLE, relation="left_of"), True),
    (_pair(BLUE_CIRCLE, RED_SQUARE, relation="right_of"), True),
    (_pair(RED_SQUARE, BLUE_CIRCLE, relation="right_of"), False),  # wrong relation
    (_pair(RED_SQUARE, BLUE_CIRCLE, relation="above"), False),
    (_pair({"shape": "square", "colour": "blue"}, {"shape": "circle", "colour": "red"}, relation="left_of"), False),
    (_pair(GREEN_STAR, BLUE_CIRCLE, relation="above"), True),
    (_pair(BLUE_CIRCLE, GREEN_STAR, relation="below"), True),
    (_pair(GREEN_STAR, RED_SQUARE, relation="above"), False),  # diagonal anchors: no relation holds
    (_pair(RED_SQUARE, GREEN_STAR, relation="left_of"), False),
])
def test_two_object_relevance(asserts, expected):
    assert is_relevant(asserts, PAIR_SCENE) is expected


def test_a_pair_of_identical_descriptions_needs_two_objects():
    twice = _pair({"shape": "heart", "colour": "red", "position": "left"}, {"shape": "heart", "colour": "red"})
    two_hearts = {"objects": [_obj("heart", "red", "left"), _obj("heart", "red", "right")], "background": "grey"}
    one_heart = {"objects": [_obj("heart", "red", "left"), _obj("star", "red", "right")], "background": "grey"}
    assert is_relevant(twice, two_hearts) and not is_relevant(twice, one_heart)


@pytest.mark.parametrize("count, n_objects, expected", [(2, 2, True), (2, 3, False), (3, 2, False), (3, 3, True),
                                                        (2, 1, False)])
def test_a_count_is_exact(count, n_objects, expected):
    """"two red squares" is false of one or three red squares, whatever else is there."""
    positions = ["left", "centre", "right"]
    scene = {"objects": [_obj("square", "red", positions[i], ("small", "large")[i % 2]) for i in range(n_objects)]
             + [_obj("square", "blue", "top"), _obj("circle", "red", "bottom")], "background": "white"}
    assert is_relevant({"shape": "square", "colour": "red", "count": count}, scene) is expected
    assert is_relevant({"shape": "square", "count": count + 1}, scene) is expected  # the blue one counts too


def test_one_key_per_meaning():
    assert assertion_key(_pair(RED_SQUARE, BLUE_CIRCLE)) == assertion_key(_pair(BLUE_CIRCLE, RED_SQUARE))
    assert assertion_key(_pair(RED_SQUARE, BLUE_CIRCLE, relation="left_of")) == \
        assertion_key(_pair(BLUE_CIRCLE, RED_SQUARE, relation="right_of"))
    assert assertion_key(_pair(RED_SQUARE, BLUE_CIRCLE, relation="left_of")) != \
        assertion_key(_pair(BLUE_CIRCLE, RED_SQUARE, relation="left_of"))
    assert assertion_key({"shape": "star", "colour": "red"}) == json.dumps({"colour": "red", "shape": "star"})


def test_two_object_assertions_are_true_of_their_scene_and_say_what_their_kind_says():
    from ccr_demo.data.shapes import sample_scene

    rng = np.random.default_rng(0)
    made = dict.fromkeys(TWO_OBJECT_GRANULARITIES, 0)
    for _ in range(300):
        scene = sample_scene(rng).to_dict()
        for granularity in TWO_OBJECT_GRANULARITIES:
            a = assertion_for(scene, granularity, rng)
            if a is None:
                continue
            made[granularity] += 1
            assert is_relevant(a, scene), (granularity, a, scene)
            keys = [k for k in GRANULARITIES[granularity] if k not in ("pair", "relation")]
            assert all(sorted(o) == sorted(keys) for o in a["pair"]) and a["pair"][0] != a["pair"][1]
            assert ("relation" in a) == (granularity == "two_objects_relation")
    assert all(n > 50 for n in made.values()), made
    one_object = {"objects": [_obj("star", "red", "left")], "background": "grey"}
    assert all(assertion_for(one_object, g, rng) is None for g in TWO_OBJECT_GRANULARITIES)
    diagonal = {"objects": [_obj("star", "red", "left"), _obj("heart", "blue", "top")], "background": "grey"}
    assert assertion_for(diagonal, "two_objects_relation", rng) is None
    assert assertion_for(diagonal, "two_objects", rng) is not None


def test_two_object_hard_negatives_swap_what_binds():
    from ccr_demo.data.twins import swapped_assertion

    rng = np.random.default_rng(0)
    kinds = set()
    for asserts in (_pair(RED_SQUARE, BLUE_CIRCLE, relation="left_of"), _pair(BLUE_CIRCLE, RED_SQUARE),
                    _pair({**RED_SQUARE, "position": "left"}, {**BLUE_CIRCLE, "position": "centre"})):
        for _ in range(20):
            kind, swapped = swapped_assertion(asserts, PAIR_SCENE, rng)
            kinds.add(kind)
            assert not is_relevant(swapped, PAIR_SCENE) and swapped["pair"][0] != swapped["pair"][1]
            if kind == "swap_colours":
                assert [o["colour"] for o in swapped["pair"]] == [o["colour"] for o in asserts["pair"]][::-1]
    assert kinds == {"swap_colours", "relation", "position", "colour"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world") / "shapes"
    return generate_dataset(out, n_train=120, n_val=0, n_test=150, n_test_compositional=0, image_size=32, seed=3,
                            workers=1, progress=False, queries_per_scene=4, n_test_queries=60)


def _train_rows(world: Path) -> list[dict]:
    return [json.loads(line) for p in sorted((world / "train").glob("part_*.data"))
            for line in p.read_text(encoding="utf-8").splitlines()]


def test_partial_captions_are_parallel_and_true_of_their_scene(world):
    rows = _train_rows(world)
    assert all(len(r["variants"]) >= 3 for r in rows)
    for r in rows:
        for v in r["variants"]:
            assert set(v["caption"]) == set(LANGUAGES) and all(v["caption"].values())
            assert is_relevant(v["query"], r["scene"]), (v["query"], r["scene"])
            assert v["form"] in ("phrase", "sentence", "question", "request")
    grans = {v["granularity"] for r in rows for v in r["variants"]}
    assert {"colour_shape", "background", "size_colour_shape", *TWO_OBJECT_GRANULARITIES} <= grans


def test_every_test_scene_has_a_unique_description(world):
    ts = ParallelTestSet.from_iglue(world / "test")
    plans = [plan_from_scene(Scene.from_dict(s)) for s in ts.scenes]
    assert len(set(plans)) == len(plans)
    for lang in LANGUAGES:  # so no two full captions say the same thing either
        assert len(set(ts.captions[lang])) == len(ts.captions[lang])


def test_query_split_relevance_matches_the_scenes(world):
    qs = QuerySet.load(world / "test_queries")
    ts = ParallelTestSet.from_iglue(world / "test")
    assert qs.languages == list(LANGUAGES) and len(qs) == 60
    rel = relevance_matrix(qs.asserts, ts.scenes)
    assert (qs.relevance(ts.image_ids) == rel).all()
    assert rel.any(axis=1).all()
    assert len({json.dumps(a, sort_keys=True) for a in qs.asserts}) == len(qs)


def test_the_query_split_has_every_two_object_kind_and_counts(world):
    qs = QuerySet.load(world / "test_queries")
    grans = qs.granularities
    assert set(TWO_OBJECT_GRANULARITIES) <= set(grans)
    assert sum(g in TWO_OBJECT_GRANULARITIES for g in grans) >= len(qs) // 10  # a fair share
    assert {"count_shape", "count_colour_shape"} & set(grans)
    for q, g in enumerate(grans):
        if g in TWO_OBJECT_GRANULARITIES:
            assert all(qs.texts[lang][q] for lang in LANGUAGES) and len(qs.asserts[q]["pair"]) == 2


def test_two_object_kinds_have_a_fair_share_of_the_draws():
    """Drawn by weight on scenes that can have them: each two-object kind is a few percent
    of a scene's partial captions, and the kinds there before keep most of the draws."""
    from ccr_demo.data.shapes import sample_scene

    rng = np.random.default_rng(1)
    drawn = [g for _ in range(600) for g, _ in sample_assertions(sample_scene(rng).to_dict(), rng, 4)]
    share = {g: drawn.count(g) / len(drawn) for g in GRANULARITIES}
    assert all(0.02 < share[g] < 0.1 for g in TWO_OBJECT_GRANULARITIES), share
    assert sum(share[g] for g in TWO_OBJECT_GRANULARITIES) < 0.2
    assert share["colour_shape"] > 0.12 and share["count_shape"] + share["count_colour_shape"] > 0.02, share


def test_held_out_phrasings_never_reach_training_text(world):
    qs = QuerySet.load(world / "test_queries")
    train = {t for r in _train_rows(world) for caps in [r["caption"], *(v["caption"] for v in r["variants"])]
             for t in caps.values()}
    for lang in LANGUAGES:
        seen = [t for t in qs.texts[lang] if t in train]
        assert not seen, f"{lang}: test queries also in training text: {seen[:3]}"


def test_generation_is_deterministic(world, tmp_path):
    again = generate_dataset(tmp_path / "again", n_train=120, n_val=0, n_test=150, n_test_compositional=0,
                             image_size=32, seed=3, workers=2, progress=False, queries_per_scene=4, n_test_queries=60)
    for rel in ["train/part_00000.data", "test_queries/queries.jsonl", "test/annotations/ja/test.jsonl"]:
        assert (world / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_dataset_draws_one_parallel_caption_set_per_epoch(world):
    ds = MultilingualPretrainDataset(world / "train", LANGUAGES, full_caption_prob=0.34, seed=5)
    full = MultilingualPretrainDataset(world / "train", LANGUAGES, full_caption_prob=1.0)
    none = MultilingualPretrainDataset(world / "train", LANGUAGES, full_caption_prob=0.0)
    assert all(full.variant_choice(i) == 0 for i in range(len(full)))
    assert all(none.variant_choice(i) >= 1 for i in range(len(none)))
    draws = np.array([[ds.variant_choice(i, e) for i in range(len(ds))] for e in range(20)])
    assert 0.2 < (draws == 0).mean() < 0.5  # full caption about a third of the time
    assert len(np.unique(draws)) == 5  # full + 4 variants all drawn
    ds.set_epoch(3)
    for i in range(len(ds)):
        v = ds.variant_choice(i)
        rec = ds.records[i]
        expected = rec.captions if v == 0 else rec.variants[v - 1]["caption"]
        assert ds.texts(i) == [expected[lang] for lang in LANGUAGES]
    assert ds.variant_choice(7, 3) == MultilingualPretrainDataset(world / "train", LANGUAGES, seed=5,
                                                                  full_caption_prob=0.34).variant_choice(7, 3)


def test_false_negatives_are_partial_captions_true_of_another_image(world):
    ds = MultilingualPretrainDataset(world / "train", LANGUAGES, full_caption_prob=0.0, seed=1)
    idx = list(range(40))
    mask = ds.false_negatives(idx, epoch=0)
    assert not mask.diagonal().any() and mask.any()
    for b in idx:
        for c in idx:
            a = ds.records[c].variants[ds.variant_choice(c, 0) - 1]["query"]
            assert mask[b, c] == (b != c and is_relevant(a, ds.records[b].scene))


def test_evaluate_reports_typed_query_metrics(world):
    from ccr_demo.eval.evaluate import evaluate
    from ccr_demo.eval.tables import queries_table
    from ccr_demo.model.configuration import ModelConfig
    from ccr_demo.model.modeling import CCRModel

    torch.manual_seed(0)
    model = CCRModel(ModelConfig(image_tower="test_efficientnet", image_size=32, text_tower="random:bert",
                                 text_kwargs={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                              "intermediate_size": 64}, embed_dim=32))
    ts = ParallelTestSet.from_iglue(world / "test", languages=["en", "de", "ja"])
    qs = QuerySet.load(world / "test_queries", languages=["en", "de", "ja"])
    report = evaluate(model, ts, progress=False, queries=qs)
    q = report["queries"]
    assert q["n_queries"] == 60 and q["languages"] == ["en", "de", "ja"]
    for lang in q["languages"]:
        assert 0.0 <= q["per_language"][lang]["p@5"] <= 1.0
    assert 0.0 <= q["consistency"]["top5_overlap"] <= 1.0 and q["consistency"]["first_rank_std"] >= 0
    assert "Typed queries" in queries_table(report)
    json.dumps(report)
    import orjson  # what Gradio serialises JSON with: dict keys must be plain str

    orjson.dumps(report)


def test_a_cut_test_set_keeps_the_queries_true_of_its_images(world):
    """data.eval_max_instances with a typed-query split: a run scores the queries true of the
    kept images among them (a query naming only cut images used to fail the whole run)."""
    from ccr_demo.data.errors import DataFormatError
    from ccr_demo.training.config import ExperimentConfig
    from ccr_demo.training.run_data import load_eval_sets, load_query_sets
    from ccr_demo.utils.config import from_dict

    cfg = from_dict(ExperimentConfig, {"data": {"languages": ["en", "de"], "eval": [str(world / "test")],
                                                "eval_queries": [str(world / "test_queries")],
                                                "eval_max_instances": 20}})
    [ts] = load_eval_sets(cfg)
    [qs] = load_query_sets(cfg, [ts])
    full = QuerySet.load(world / "test_queries", languages=["en", "de"])
    with pytest.raises(DataFormatError, match="names images not in"):
        full.relevance(ts.image_ids)  # what the run did before
    kept = set(ts.image_ids)
    expected = [q for q, rel in enumerate(full.relevant) if kept & set(rel)]
    assert len(ts) == 20 and 0 < len(qs) == len(expected) < len(full)
    assert qs.ids == [full.ids[q] for q in expected] and qs.languages == ["en", "de"]
    assert qs.relevance(ts.image_ids).sum(1).min() >= 1


def test_query_file_errors_name_the_problem(tmp_path):
    from ccr_demo.data.errors import DataFormatError

    (tmp_path / "queries.jsonl").write_text('{"id": "q", "text": {"en": "x"}, "relevant": ["a"], "gallery": "../x"}\n')
    with pytest.raises(DataFormatError, match="sibling split name"):
        QuerySet.load(tmp_path)
    (tmp_path / "queries.jsonl").write_text('{"id": "q", "text": "x"}\n')
    with pytest.raises(DataFormatError, match=r"queries.jsonl:1"):
        QuerySet.load(tmp_path)
    (tmp_path / "queries.jsonl").write_text('{"id": "q", "text": {"en": "x"}, "relevant": ["nope"]}\n')
    with pytest.raises(DataFormatError, match="not in the gallery"):
        QuerySet.load(tmp_path).relevance(["a", "b"])

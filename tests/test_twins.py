"""Twins (minimal pairs) of the shapes world, and the sampler that keeps them in one batch."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from ccr_demo import LANGUAGES
from ccr_demo.data.queries import is_relevant
from ccr_demo.data.scene import relation_between
from ccr_demo.data.shapes import (
    POSITIONS,
    Scene,
    ShapeObject,
    generate_dataset,
    held_out_pairs,
)
from ccr_demo.data.twins import TWIN_KINDS, difference, make_twin
from ccr_demo.training.datasets import MultilingualPretrainDataset
from ccr_demo.training.sampler import GlobalBatchSampler


def rows(root: Path) -> list[dict]:
    return [json.loads(line) for part in sorted((root / "train").glob("part_*.data"))
            for line in part.read_text(encoding="utf-8").splitlines()]


def pairs(root: Path) -> list[tuple[dict, dict]]:
    groups: dict[str, list[dict]] = {}
    for r in rows(root):
        if "twin" in r:
            groups.setdefault(r["twin"]["group"], []).append(r)
    assert all(len(g) == 2 for g in groups.values())
    return [tuple(g) for g in groups.values()]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("twins") / "w", n_train=240, n_val=0, n_test=0,
                            n_test_compositional=0, image_size=32, seed=3, workers=1, progress=False,
                            n_test_queries=0, twins=0.6)


def test_twins_differ_in_exactly_their_stated_property(world):
    found = pairs(world)
    assert len(found) > 80
    kinds = {a["twin"]["kind"] for a, _ in found}
    assert kinds >= {"move", "count", "swap_colours", "size"}, kinds
    held_out = {tuple(p) for p in held_out_pairs(3)}
    for a, b in found:
        assert a["twin"] == b["twin"]
        assert difference(a["scene"], b["scene"]) == a["twin"]["kind"], (a["scene"], b["scene"])
        assert a["image_path"] != b["image_path"]
        for scene in (a["scene"], b["scene"]):
            colours = {o["colour"] for o in scene["objects"]}
            assert scene["background"] not in colours  # the generator's rule holds for twins
            assert not {(o["shape"], o["colour"]) for o in scene["objects"]} & held_out
            if len(scene["objects"]) == 2:
                p, q = (POSITIONS[o["position"]] for o in scene["objects"])
                assert p[0] == q[0] or p[1] == q[1]  # a pair stands on one line through the centre
    info = json.loads((world / "dataset_info.json").read_text())
    assert info["twins"]["pairs"] == len(found)


def test_a_caption_drawn_to_tell_twins_apart_is_true_of_one_and_false_of_the_other(world):
    checked = 0
    for a, b in pairs(world):
        for mine, other in ((a, b), (b, a)):
            other_texts = {lang: {other["caption"][lang], *(v["caption"][lang] for v in other.get("variants", []))}
                           for lang in LANGUAGES}
            for lang in LANGUAGES:  # the full captions differ in every language
                assert mine["caption"][lang] != other["caption"][lang]
            for v in mine.get("variants", []):
                assert is_relevant(v["query"], mine["scene"]) and not is_relevant(v["query"], other["scene"])
                assert set(v["caption"]) == set(LANGUAGES)
                for lang in LANGUAGES:
                    assert v["caption"][lang].strip() and v["caption"][lang] not in other_texts[lang]
                checked += 1
    assert checked > 300


def test_twins_are_deterministic_whatever_the_workers(tmp_path, world):
    again = generate_dataset(tmp_path / "again", n_train=240, n_val=0, n_test=0, n_test_compositional=0,
                             image_size=32, seed=3, workers=2, progress=False, n_test_queries=0, twins=0.6)

    def digest(root: Path) -> str:
        h = hashlib.sha256()
        for p in sorted(root.rglob("*")):
            if p.is_file():
                h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
        return h.hexdigest()

    assert digest(again) == digest(world)


def test_no_twins_writes_no_twin_rows(tmp_path):
    root = generate_dataset(tmp_path / "w", n_train=30, n_val=0, n_test=0, n_test_compositional=0, image_size=16,
                            seed=0, workers=1, progress=False, n_test_queries=0)
    assert len(rows(root)) == 30 and not any("twin" in r for r in rows(root))
    assert "twins" not in json.loads((root / "dataset_info.json").read_text())
    with pytest.raises(ValueError, match="twins"):
        generate_dataset(tmp_path / "x", 4, 0, 0, 0, image_size=16, workers=1, progress=False, twins=1.5)


def obj(shape, colour, size="small", position="left"):
    return ShapeObject(shape, colour, size, position)


@pytest.mark.parametrize("kind, scene, check", [
    ("swap_colours", Scene((obj("star", "red"), obj("heart", "blue", position="right")), "grey"),
     lambda t: [o.colour for o in t.objects] == ["blue", "red"]),
    ("background", Scene((obj("star", "black"),), "white"),
     lambda t: t.background == "black" and t.objects[0].colour == "white"),
    ("size", Scene((obj("star", "red"),), "grey"), lambda t: t.objects[0].size == "large"),
    ("count", Scene((obj("star", "red"), obj("star", "red", position="right")), "grey"),
     lambda t: len(t.objects) in (1, 3)),
    ("move", Scene((obj("star", "red", position="centre"),), "grey"), lambda t: t.objects[0].position != "centre"),
])
def test_each_kind_makes_its_change(kind, scene, check):
    twin = make_twin(scene, kind, np.random.default_rng(0))
    assert twin is not None and check(twin)
    assert difference(scene.to_dict(), twin.to_dict()) == kind


def test_a_scene_that_cannot_have_a_kind_gets_none():
    one = Scene((obj("star", "red"),), "grey")
    assert make_twin(one, "swap_colours", np.random.default_rng(0)) is None  # one object
    assert make_twin(one, "background", np.random.default_rng(0)) is None  # grey is no colour
    related = Scene((obj("star", "red"), obj("heart", "blue", position="right")), "grey", relation="left_of")
    assert make_twin(related, "count", np.random.default_rng(0)) is None
    # on the middle row, nothing can move without keeping "left_of": no twin that changes the caption
    assert make_twin(related, "move", np.random.default_rng(0)) is None
    centred = Scene((obj("star", "red", position="centre"), obj("heart", "blue", position="right")), "grey",
                    relation="left_of")
    moved = make_twin(centred, "move", np.random.default_rng(0))
    assert moved is not None and moved.relation != "left_of"
    assert moved.relation == relation_between(moved.objects[0].position, moved.objects[1].position)
    with pytest.raises(ValueError, match="twin kind"):
        make_twin(one, "colour", np.random.default_rng(0))
    assert set(TWIN_KINDS) == {"move", "count", "swap_colours", "background", "size"}


def test_the_sampler_keeps_every_twin_pair_in_one_global_batch(world):
    dataset = MultilingualPretrainDataset(world / "train", LANGUAGES, full_caption_prob=0.5)
    groups = dataset.twin_groups()
    assert len(groups) == len(pairs(world)) and all(len(g) == 2 for g in groups)
    batch, world_size = 8, 2
    for rank_samplers in ([GlobalBatchSampler(len(dataset), batch, world_size, r, 7, groups=groups)
                           for r in range(world_size)],):
        for epoch in range(4):
            for s in rank_samplers:
                s.set_epoch(epoch)
            order = rank_samplers[0].order()
            assert sorted(order.tolist()) == list(range(len(dataset)))  # every row, once
            global_batches = [sum(parts, []) for parts in zip(*(list(s) for s in rank_samplers))]
            where = {i: j for j, b in enumerate(global_batches) for i in b}
            assert len(global_batches) == len(dataset) // (batch * world_size)
            tail = set(order[len(global_batches) * batch * world_size:].tolist())  # dropped, as without twins
            for g in groups:
                if tail.isdisjoint(g):
                    assert len({where[i] for i in g}) == 1, g
            assert sum(not tail.isdisjoint(g) for g in groups) <= len(tail) // 2 + 1
    plain = GlobalBatchSampler(len(dataset), batch, 1, 0, 7)
    assert plain.order().tolist() == np.random.default_rng([7, 0]).permutation(len(dataset)).tolist()
    with pytest.raises(ValueError, match="disjoint"):
        GlobalBatchSampler(10, 2, 1, 0, 0, groups=[[1, 2], [2, 3]])

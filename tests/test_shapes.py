"""The shapes world generator: formats, determinism, held-out pairs, noise, pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ccr_demo import LANGUAGES
from ccr_demo.data import shapes
from ccr_demo.data.languages import en
from ccr_demo.data.shapes import (
    COLOURS,
    POSITIONS,
    Scene,
    ShapeObject,
    add_noise,
    generate_dataset,
    held_out_pairs,
    parse_noise,
    render_scene,
    sample_scene,
)

EVAL_SPLITS = ("val", "test", "test_compositional")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _train_rows(root: Path) -> list[dict]:
    rows = []
    for part in sorted((root / "train").glob("part_*.data")):
        rows += [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines()]
    return rows


def _eval_rows(root: Path, split: str, lang: str) -> list[dict]:
    path = root / split / "annotations" / lang / "test.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("sw") / "out", 60, 8, 12, 10, image_size=64, seed=3,
                            workers=1, progress=False)


def test_layout_and_formats(small):
    info = json.loads((small / "dataset_info.json").read_text())
    assert info["counts"] == {"train": 60, "val": 8, "test": 12, "test_compositional": 10}
    assert info["languages"] == list(LANGUAGES) and info["seed"] == 3
    rows = _train_rows(small)
    assert len(rows) == 60
    for row in rows:
        assert list(row["caption"]) == list(LANGUAGES)
        assert row["image_path"].startswith("images/")
        assert (small / "train" / row["image_path"]).is_file()  # relative to the part files' folder
        assert Scene.from_dict(row["scene"]).to_dict() == row["scene"]
        assert "noise" not in row
    for split in EVAL_SPLITS:
        per_lang = {lang: _eval_rows(small, split, lang) for lang in LANGUAGES}
        ids = [r["id"] for r in per_lang["en"]]
        assert len(ids) == info["counts"][split] == len(set(ids))
        for lang, rows in per_lang.items():  # parallel: the same scenes, in order, in every language
            assert [r["id"] for r in rows] == ids
            assert [r["scene"] for r in rows] == [r["scene"] for r in per_lang["en"]]
            for r in rows:
                assert set(r) == {"id", "img_path", "sentences", "scene"}
                assert len(r["sentences"]) == 1 and r["sentences"][0]
                assert (small / split / "images" / r["img_path"]).is_file()


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    a = generate_dataset(tmp_path / "a", 24, 4, 6, 5, image_size=48, seed=7, workers=1, progress=False,
                         noise={"de": 0.5})
    b = generate_dataset(tmp_path / "b", 24, 4, 6, 5, image_size=48, seed=7, workers=2, progress=False,
                         noise="de=0.5")
    assert _files(a) == _files(b)


def test_different_seeds_differ(tmp_path):
    a = generate_dataset(tmp_path / "a", 10, 0, 5, 0, image_size=48, seed=1, workers=1, progress=False)
    b = generate_dataset(tmp_path / "b", 10, 0, 5, 0, image_size=48, seed=2, workers=1, progress=False)
    fa, fb = _files(a), _files(b)
    assert fa.keys() == fb.keys()
    differing = [k for k in fa if fa[k] != fb[k]]
    assert len(differing) >= len(fa) - 2  # everything but possibly an identical tiny file
    assert not (b / "val").exists()  # an empty split is not written


def test_held_out_pairs_only_in_compositional_split(tmp_path):
    root = generate_dataset(tmp_path / "o", 400, 50, 50, 50, image_size=32, seed=0, workers=1,
                            progress=False, noise={lang: 0.3 for lang in LANGUAGES})
    held = {tuple(p) for p in json.loads((root / "dataset_info.json").read_text())["held_out_pairs"]}
    assert held == set(held_out_pairs(0)) and len(held) == 8
    assert {s for s, _ in held} == set(shapes.SHAPES) and {c for _, c in held} == set(COLOURS)

    def pairs(scene):
        return {(o["shape"], o["colour"]) for o in scene["objects"]}

    train = _train_rows(root)
    for row in train:
        assert not pairs(row["scene"]) & held
        for record in row.get("noise", {}).values():  # noise never writes a held-out pair
            obj = dict(row["scene"]["objects"][record["object"]])
            obj[record["field"]] = record["written"]
            assert (obj["shape"], obj["colour"]) not in held
    for split in ("val", "test"):
        assert not any(pairs(r["scene"]) & held for r in _eval_rows(root, split, "en"))
    assert all(pairs(r["scene"]) & held for r in _eval_rows(root, "test_compositional", "en"))


def test_noise_is_recorded_applied_and_at_the_rate(tmp_path):
    root = generate_dataset(tmp_path / "n", 500, 100, 40, 20, image_size=32, seed=5, workers=1,
                            progress=False, noise={"en": 0.3, "ja": 0.1})
    rows = _train_rows(root)
    noisy_en = [r for r in rows if "en" in r.get("noise", {})]
    assert 0.22 < len(noisy_en) / len(rows) < 0.38
    assert 0.05 < sum("ja" in r.get("noise", {}) for r in rows) / len(rows) < 0.16
    assert not any(set(r.get("noise", {})) - {"en", "ja"} for r in rows)
    for row in noisy_en:
        rec = row["noise"]["en"]
        true_obj = row["scene"]["objects"][rec["object"]]
        assert rec["true"] == true_obj[rec["field"]] != rec["written"]
        words = (en.COLOURS[rec["written"]] if rec["field"] == "colour"
                 else [w for pair in en.NOUNS[rec["written"]] for w in pair])
        assert any(w in row["caption"]["en"] for w in words)
    assert any("noise" in r for r in _eval_rows(root, "val", "en"))
    for split in ("test", "test_compositional"):  # test captions are clean
        assert not any("noise" in r for r in _eval_rows(root, split, "en"))
    info = json.loads((root / "dataset_info.json").read_text())
    assert info["noise"]["rates"] == {"en": 0.3, "ja": 0.1}
    assert info["noise"]["noisy_captions"]["train"]["en"] == len(noisy_en)


def test_add_noise_changes_identical_copies_together():
    O = ShapeObject
    scene = Scene((O("circle", "red", "small", "left"), O("circle", "red", "small", "right"),
                   O("star", "blue", "large", "top")), "grey")
    rng = np.random.default_rng(0)
    for _ in range(50):
        noisy, rec = add_noise(scene, rng)
        ids = [o.identity for o in noisy.objects]
        if rec["object"] in (0, 1):
            assert ids[0] == ids[1] != scene.objects[0].identity
        assert len(set(ids)) == 2  # never merges with the other object


def test_parse_noise():
    assert parse_noise("de=0.1, ja=0.05") == {"de": 0.1, "ja": 0.05}
    assert parse_noise(None) == {}
    for bad in ("de", "xx=0.1", "de=1.5"):
        with pytest.raises(ValueError):
            parse_noise(bad)


def test_sample_scene_is_well_formed():
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(500):
        scene = sample_scene(rng)
        n = len(scene.objects)
        sizes.add(n)
        assert len({o.position for o in scene.objects}) == n
        assert scene.background not in {o.colour for o in scene.objects}
        if scene.relation is not None:
            assert n == 2 and scene.objects[0].identity != scene.objects[1].identity
    assert sizes == {1, 2, 3}


@pytest.mark.parametrize("size", [128, 64])
def test_rendered_objects_show_their_colour(size):
    rng = np.random.default_rng(0)
    palette = np.array(list(COLOURS.values()), dtype=float)
    names = list(COLOURS)
    for _ in range(60):
        scene = sample_scene(rng)
        img = render_scene(scene, size, rng)
        assert img.mode == "RGB" and img.size == (size, size)
        pixels = np.asarray(img, dtype=float)
        for obj in scene.objects:
            x, y = (int(f * size) for f in POSITIONS[obj.position])
            nearest = names[int(np.argmin(((palette - pixels[y, x]) ** 2).sum(1)))]
            assert nearest == obj.colour, (obj, pixels[y, x])


def test_no_two_images_identical():
    scene = Scene((ShapeObject("square", "red", "large", "centre"),), "grey")
    images = [render_scene(scene, 64, np.random.default_rng(s)).tobytes() for s in range(5)]
    assert len(set(images)) == 5


def test_cli(tmp_path, capsys):
    out = shapes.main(["--out", str(tmp_path / "cli"), "--train", "5", "--test", "3", "--val", "2",
                       "--test-compositional", "0", "--size", "32", "--languages", "en,de",
                       "--noise", "de=1", "--workers", "1"])
    assert sorted(p.name for p in (out / "test" / "annotations").iterdir()) == ["de", "en"]
    rows = _train_rows(out)
    assert all(set(r["caption"]) == {"en", "de"} and "de" in r["noise"] for r in rows)
    assert not (out / "test_compositional").exists()
    assert "wrote" in capsys.readouterr().out


def test_output_is_replaced_atomically(tmp_path, monkeypatch):
    target = tmp_path / "o"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    generate_dataset(target, 3, 0, 2, 0, image_size=32, workers=1, progress=False)
    assert not (target / "stale.txt").exists()
    before = _files(target)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(shapes, "render_scene", broken)
    with pytest.raises(RuntimeError):
        generate_dataset(target, 3, 0, 2, 0, image_size=32, workers=1, progress=False)
    assert _files(target) == before  # a failed run leaves the old output, and no debris
    assert [p.name for p in tmp_path.iterdir()] == ["o"]
    with pytest.raises(ValueError):
        generate_dataset(target, 3, 0, 2, 0, languages=["xx"], progress=False)


def test_validation_queries_are_over_the_validation_images(tmp_path):
    """n_val_queries: typed queries over the val split (for choosing settings), relevance from its scenes."""
    import json

    from ccr_demo.data.queries import QuerySet, is_relevant
    from ccr_demo.data.testset import ParallelTestSet

    root = generate_dataset(tmp_path / "w", n_train=4, n_val=40, n_test=10, n_test_compositional=0, image_size=16,
                            seed=2, workers=1, progress=False, n_test_queries=5, n_val_queries=12)
    rows = [json.loads(line) for line in (root / "val_queries" / "queries.jsonl").read_text().splitlines()]
    scenes = {f"val-{i:06d}": json.loads(line)["scene"] for i, line in
              enumerate((root / "val" / "annotations" / "en" / "test.jsonl").read_text().splitlines())}
    assert len(rows) == 12 and all(r["gallery"] == "val" for r in rows)
    for r in rows:
        assert r["relevant"] and set(r["relevant"]) == {i for i, s in scenes.items() if is_relevant(r["query"], s)}
    queries = QuerySet.load(root / "val_queries")
    val = ParallelTestSet.from_iglue(root / "val")
    assert len(queries) == 12 and queries.relevance(val.image_ids).sum() == sum(len(r["relevant"]) for r in rows)
    with pytest.raises(ValueError, match="n_val_queries"):
        generate_dataset(tmp_path / "x", 4, 0, 4, 0, image_size=16, workers=1, progress=False, n_val_queries=3)

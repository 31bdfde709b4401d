"""The shapes world: generated scenes with parallel captions in the paper's ten languages.

Why: a benchmark whose ground truth is known exactly, small enough to train on two CPU
cores, parallel by construction (every caption of a scene is generated from one structured
description), and written in the real datasets' formats so one reader serves both:

- ``OUT/train/part_NNNNN.data``: the CCRK pretraining format, one JSON object a line,
  ``{"caption": {lang: text}, "image_path": "images/000123.png", "scene": {...},
  "variants": [{"caption": {lang: text}, "query": {...}, "form": ...}, ...]}``: the full-scene
  caption plus partial captions (typed-query style: "red star", "is there a purple
  heart?", "a red square to the left of a blue circle"), each parallel in every language
  and recording what it asserts;
- ``OUT/{val,test,test_compositional}/annotations/{lang}/test.jsonl``: the IGLUE
  xFlickr&CO layout, ``{"id", "img_path", "sentences", "scene"}``, images in ``images/``;
  no two scenes of one of these splits share a description, so every full caption has
  exactly one gold image;
- ``OUT/test_queries/queries.jsonl``: typed queries over the test images, worded with
  phrasings and synonyms that training text never uses, each with its relevant images
  (see :mod:`ccr_demo.data.queries`);
- ``OUT/dataset_info.json``: seed, counts, languages, held-out pairs, noise settings.

A set of (shape, colour) pairs is held out of train/val/test and appears only in
``test_compositional``. Optional per-language caption noise (a wrong colour or shape,
like an MT error) applies to train and val; rows that carry it have a ``"noise"`` key.
Everything is drawn from per-scene seeds, so a seed gives byte-identical output whatever
the number of workers.

CLI: ``python -m ccr_demo.data.shapes --out DIR --train 20000 --test 1000``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import io
import json
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ccr_demo import LANGUAGES
from ccr_demo.data.languages import describe_query, describe_scene, plan_from_scene
from ccr_demo.data.queries import (
    GRANULARITIES,
    QUERIES_FILE,
    assertion_key,
    draw_form,
    relevance_matrix,
    sample_assertions,
    to_query,
)
from ccr_demo.data.render import render_scene
from ccr_demo.data.scene import (
    BACKGROUNDS,
    COLOURS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    Scene,
    ShapeObject,
    relation_between,
)
from ccr_demo.data.twins import TWIN_KINDS, make_twin, swapped_assertion
from ccr_demo.utils.fileio import atomic_directory

GENERATOR_VERSION = 3  # 3: two-object typed queries (same seed, different partial captions and query splits)

SPLITS = ("train", "val", "test", "test_compositional")
NOISY_SPLITS = ("train", "val")  # test captions stay clean
UNIQUE_SPLITS = ("val", "test", "test_compositional")  # one gold image per full caption
QUERY_SPLIT = "test_queries"
VAL_QUERY_SPLIT = "val_queries"  # typed queries over the validation images: for choosing settings
ROWS_PER_PART = 5000
PNG_COMPRESS_LEVEL = 3
# Seed streams per scene: one for the scene, one for the pixels, one per language for
# the caption's wording and one per language for its noise; one for which partial
# captions a scene gets and one per language for their wording.
_STREAM_SCENE, _STREAM_RENDER, _STREAM_CAPTION, _STREAM_NOISE = 0, 1, 100, 200
_STREAM_VARIANTS, _STREAM_VARIANT_WORDING = 2, 300
_STREAM_TWIN = 3  # whether a training scene gets a twin, and which
_STREAM_NEGATIVES, _STREAM_NEGATIVE_WORDING = 4, 400  # caption hard negatives and their wording


# --- Sampling ----------------------------------------------------------------------------

def held_out_pairs(seed: int) -> tuple[tuple[str, str], ...]:
    """One (shape, colour) pair per shape, each colour once: every shape and every colour
    is still seen in training, only these combinations are not."""
    perm = np.random.default_rng([seed, 0x5EED]).permutation(len(COLOURS))
    colours = list(COLOURS)
    return tuple((shape, colours[p]) for shape, p in zip(SHAPES, perm))


# Two-object layouts: pairs on one line through the centre, so the relation is unambiguous.
_PAIRS = tuple((a, b) for a in POSITIONS for b in POSITIONS
               if a != b and (POSITIONS[a][0] == POSITIONS[b][0] or POSITIONS[a][1] == POSITIONS[b][1]))


def sample_scene(rng: np.random.Generator, exclude: Iterable[tuple[str, str]] = (),
                 include: tuple[str, str] | None = None) -> Scene:
    """A random scene of 1-3 objects.

    ``exclude``: (shape, colour) pairs never used; ``include``: a pair the scene must
    contain (the compositional split), exempt from ``exclude``.
    """
    exclude = frozenset(exclude)
    n = int(rng.integers(1, 4))
    if n == 1:
        groups = [1]
    elif n == 2:
        groups = [2] if rng.random() < 0.3 else [1, 1]
    else:
        r = rng.random()
        groups = [1, 1, 1] if r < 0.55 else [2, 1] if r < 0.85 else [3]
    sizes = list(SIZES)
    identities: list[tuple[str, str, str]] = []
    while len(identities) < len(groups):
        if include is not None and not identities:
            shape, colour = include
        else:
            shape = SHAPES[rng.integers(len(SHAPES))]
            colour = list(COLOURS)[rng.integers(len(COLOURS))]
            if (shape, colour) in exclude:
                continue
        identity = (shape, colour, sizes[rng.integers(len(sizes))])
        if identity not in identities:
            identities.append(identity)
    kinds = [identity for identity, count in zip(identities, groups) for _ in range(count)]
    kinds = [kinds[i] for i in rng.permutation(n)]
    if n == 2:
        positions = list(_PAIRS[rng.integers(len(_PAIRS))])
    else:
        names = list(POSITIONS)
        positions = [names[i] for i in rng.choice(len(names), size=n, replace=False)]
    objects = tuple(ShapeObject(s, c, z, p) for (s, c, z), p in zip(kinds, positions))
    relation = None
    if n == 2 and groups == [1, 1] and rng.random() < 0.5:
        relation = relation_between(positions[0], positions[1])
    used = {o.colour for o in objects}
    backgrounds = [b for b in BACKGROUNDS if b not in used]
    return Scene(objects, backgrounds[rng.integers(len(backgrounds))], relation)


# --- Captions and noise ------------------------------------------------------------------

def caption(scene: Scene, lang: str, choice=None) -> str:
    """One caption of ``scene`` in ``lang``.

    ``choice`` picks the wording: a numpy Generator (random template and synonyms), a
    mapping of slot to option index (``{"template": 1, "shape:circle": 1}``), an int
    (the template index) or None (the first option of everything).
    """
    return describe_scene(scene, lang, choice)


def add_noise(scene: Scene, rng: np.random.Generator, exclude: Iterable[tuple[str, str]] = ()
              ) -> tuple[Scene, dict]:
    """A copy of ``scene`` with one object's colour or shape replaced by a wrong one.

    Identical copies of the object change with it (captions count them together), the new
    object never becomes identical to another one, and never forms an ``exclude`` pair
    (noise must not leak held-out combinations into training text).
    Returns the copy and the record {"field", "object", "true", "written"}.
    """
    exclude = frozenset(exclude)
    i = int(rng.integers(len(scene.objects)))
    field = ("colour", "shape")[rng.integers(2)]
    target = scene.objects[i]
    others = {o.identity for o in scene.objects if o.identity != target.identity}
    values = list(COLOURS) if field == "colour" else list(SHAPES)
    candidates = []
    for value in values:
        new = dataclasses.replace(target, **{field: value})
        if value != getattr(target, field) and new.identity not in others and (new.shape, new.colour) not in exclude:
            candidates.append(value)
    written = candidates[rng.integers(len(candidates))]
    objects = tuple(dataclasses.replace(o, **{field: written}) if o.identity == target.identity else o
                    for o in scene.objects)
    record = {"field": field, "object": i, "true": getattr(target, field), "written": written}
    return dataclasses.replace(scene, objects=objects), record


def parse_noise(spec: str | Mapping[str, float] | None, languages: Sequence[str] = LANGUAGES) -> dict[str, float]:
    """``"de=0.1,ja=0.05"`` (or a mapping) -> {"de": 0.1, "ja": 0.05}, validated."""
    if not spec:
        return {}
    if isinstance(spec, str):
        pairs = []
        for part in spec.split(","):
            lang, sep, rate = part.partition("=")
            if not sep:
                raise ValueError(f"noise entry {part!r} is not LANG=RATE")
            pairs.append((lang.strip(), rate))
        spec = dict(pairs)
    noise = {}
    for lang, rate in spec.items():
        if lang not in languages:
            raise ValueError(f"noise for {lang!r}, which is not among the languages {list(languages)}")
        rate = float(rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"noise rate for {lang} must be in [0, 1], got {rate}")
        noise[lang] = rate
    return noise


# --- One example -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Job:
    """Everything a worker needs; the same for every scene of a run."""

    root: str
    seed: int
    image_size: int
    languages: tuple[str, ...]
    noise: tuple[tuple[str, float], ...]
    held_out: tuple[tuple[str, str], ...]
    variants: int = 0
    negatives: int = 0  # caption hard negatives per training caption


def _rng(seed: int, split: str, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, (*SPLITS, QUERY_SPLIT, VAL_QUERY_SPLIT).index(split), index, stream])


def sample_split_scenes(seed: int, split: str, n: int, held_out: Sequence[tuple[str, str]]) -> list[Scene]:
    """The ``n`` scenes of ``split``, each drawn from its own seed stream.

    In the evaluation splits a scene whose description (what its full caption states)
    repeats an earlier one is redrawn from the same stream, so every full caption there
    has exactly one gold image.
    """
    scenes, seen = [], set()
    for index in range(n):
        rng = _rng(seed, split, index, _STREAM_SCENE)
        for _ in range(1000):
            if split == "test_compositional":
                scene = sample_scene(rng, include=held_out[rng.integers(len(held_out))])
            else:
                scene = sample_scene(rng, exclude=held_out)
            if split not in UNIQUE_SPLITS or plan_from_scene(scene) not in seen:
                break
        else:
            raise ValueError(f"cannot draw {n} distinct {split} scenes: ask for fewer")
        seen.add(plan_from_scene(scene))
        scenes.append(scene)
    return scenes


def partial_captions(scene: Scene, job: _Job, split: str, index: int, twin: Mapping | None = None) -> list[dict]:
    """The scene's typed-query-style captions: {"caption": {lang: text}, "query", "form",
    "granularity"}, each worded in every language from the same assertion. With ``twin`` (its
    twin's scene dict) only assertions false of the twin: captions that tell the two apart."""
    rng = _rng(job.seed, split, index, _STREAM_VARIANTS)
    chosen = sample_assertions(scene.to_dict(), rng, job.variants, false_of=twin)
    forms = [draw_form(rng) for _ in chosen]
    out = []
    for v, ((granularity, asserts), form) in enumerate(zip(chosen, forms)):
        query = to_query(asserts, form)
        captions = {}
        for lang in job.languages:
            wording = _rng(job.seed, split, index, _STREAM_VARIANT_WORDING + 16 * LANGUAGES.index(lang) + v)
            captions[lang] = describe_query(query, lang, wording)
        out.append({"caption": captions, "query": asserts, "form": form, "granularity": granularity})
    return out


def caption_negatives(scene: Scene, variants: list[dict], job: _Job, split: str, index: int) -> list[dict]:
    """Caption hard negatives of a training scene: for its full caption and each partial one,
    up to ``job.negatives`` captions with one bound property changed, false of this scene:
    {"of": 0 (the full caption) or v (variant v-1), "kind", "caption": {lang: text}, and the
    negative's "scene" (full) or "query" (partial)}, so relevance to any other image can be
    computed from the scene dicts."""
    rng = _rng(job.seed, split, index, _STREAM_NEGATIVES)
    d = scene.to_dict()
    out: list[dict] = []

    def wording(lang: str):
        return _rng(job.seed, split, index, _STREAM_NEGATIVE_WORDING + 16 * LANGUAGES.index(lang) + len(out))

    plans = {plan_from_scene(scene)}
    for kind in (TWIN_KINDS[k] for k in rng.permutation(len(TWIN_KINDS))):
        if sum(n["of"] == 0 for n in out) == job.negatives:
            break
        twin = make_twin(scene, kind, rng, exclude=job.held_out)
        if twin is not None and plan_from_scene(twin) not in plans:
            plans.add(plan_from_scene(twin))
            out.append({"of": 0, "kind": kind, "caption": {lang: caption(twin, lang, wording(lang))
                                                           for lang in job.languages}, "scene": twin.to_dict()})
    for v, variant in enumerate(variants, 1):
        seen = {json.dumps(variant["query"], sort_keys=True)}
        for _ in range(2 * job.negatives):
            if sum(n["of"] == v for n in out) == job.negatives:
                break
            swapped = swapped_assertion(variant["query"], d, rng)
            if swapped is None or json.dumps(swapped[1], sort_keys=True) in seen:
                continue
            seen.add(json.dumps(swapped[1], sort_keys=True))
            query = to_query(swapped[1], variant["form"])
            out.append({"of": v, "kind": swapped[0], "query": swapped[1],
                        "caption": {lang: describe_query(query, lang, wording(lang)) for lang in job.languages}})
    return out


def _make_example(job: _Job, task: tuple[str, int, dict, dict | None]) -> dict:
    """Caption and render scene ``index`` of ``split``; write its PNG; return
    {"scene", "captions": {lang: text}, "noise": {lang: record}, "variants", "image"}.
    ``task``'s last entry is its twin: {"scene": dict, "group", "kind"}, or None."""
    split, index, scene_dict, twin = task
    scene = Scene.from_dict(scene_dict)
    captions, noise = {}, {}
    for lang in job.languages:
        k = LANGUAGES.index(lang)
        written = scene
        rate = dict(job.noise).get(lang, 0.0)
        if split in NOISY_SPLITS and rate > 0:
            noise_rng = _rng(job.seed, split, index, _STREAM_NOISE + k)
            if noise_rng.random() < rate:
                written, noise[lang] = add_noise(scene, noise_rng, exclude=job.held_out)
        captions[lang] = caption(written, lang, _rng(job.seed, split, index, _STREAM_CAPTION + k))
    image = render_scene(scene, job.image_size, _rng(job.seed, split, index, _STREAM_RENDER))
    name = f"{index:06d}.png"
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    (Path(job.root) / split / "images" / name).write_bytes(buf.getvalue())
    variants = partial_captions(scene, job, split, index, twin and twin["scene"]) \
        if split == "train" and job.variants else []
    example = {"scene": scene.to_dict(), "captions": captions, "noise": noise, "variants": variants, "image": name}
    if split == "train" and job.negatives:
        example["negatives"] = caption_negatives(scene, variants, job, split, index)
    if twin is not None:
        example["twin"] = {"group": twin["group"], "kind": twin["kind"]}
    return example


# --- The dataset -------------------------------------------------------------------------

def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _write_split(root: Path, split: str, examples: list[dict], languages: Sequence[str]) -> None:
    folder = root / split
    if split == "train":
        for start in range(0, len(examples), ROWS_PER_PART):
            lines = []
            for ex in examples[start:start + ROWS_PER_PART]:
                row = {"caption": ex["captions"], "image_path": f"images/{ex['image']}", "scene": ex["scene"]}
                if ex["noise"]:
                    row["noise"] = ex["noise"]
                if ex["variants"]:
                    row["variants"] = ex["variants"]
                if "twin" in ex:
                    row["twin"] = ex["twin"]
                if ex.get("negatives"):
                    row["negatives"] = ex["negatives"]
                lines.append(_dumps(row) + "\n")
            (folder / f"part_{start // ROWS_PER_PART:05d}.data").write_text("".join(lines), encoding="utf-8")
        return
    for lang in languages:
        lines = []
        for ex in examples:
            row = {"id": f"{split}-{Path(ex['image']).stem}", "img_path": ex["image"],
                   "sentences": [ex["captions"][lang]], "scene": ex["scene"]}
            if lang in ex["noise"]:
                row["noise"] = ex["noise"][lang]
            lines.append(_dumps(row) + "\n")
        path = folder / "annotations" / lang / "test.jsonl"
        path.parent.mkdir(parents=True)
        path.write_text("".join(lines), encoding="utf-8")


def _write_queries(root: Path, seed: int, scenes: list[dict], n: int, languages: Sequence[str],
                   gallery: str = "test") -> None:
    """The typed queries of a split (``gallery``: "test" or "val"): ``n`` distinct assertions
    about its scenes, worded with held-out phrasings, each with every image it is true of."""
    split = QUERY_SPLIT if gallery == "test" else VAL_QUERY_SPLIT
    queries, seen = [], set()
    for q in range(n):
        rng = _rng(seed, split, q, _STREAM_SCENE)
        for _ in range(100):
            scene = scenes[int(rng.integers(len(scenes)))]
            (granularity, asserts), = sample_assertions(scene, rng, 1)
            key = assertion_key(asserts)  # "A and B" and "B and A" are one query
            if key not in seen:
                break
        seen.add(key)
        form = draw_form(rng)
        text = {lang: describe_query(to_query(asserts, form), lang,
                                     _rng(seed, split, q, _STREAM_CAPTION + LANGUAGES.index(lang)),
                                     query_test=True) for lang in languages}
        queries.append((granularity, asserts, form, text))
    rel = relevance_matrix([a for _, a, _, _ in queries], scenes)
    lines = []
    for q, (granularity, asserts, form, text) in enumerate(queries):
        relevant = [f"{gallery}-{i:06d}" for i in np.flatnonzero(rel[q])]
        lines.append(_dumps({"id": f"query-{q:06d}", "text": text, "query": asserts, "form": form,
                             "granularity": granularity, "relevant": relevant, "gallery": gallery}) + "\n")
    (root / split).mkdir()
    (root / split / QUERIES_FILE).write_text("".join(lines), encoding="utf-8")


def add_twins(train: list[Scene], seed: int, share: float, held_out: Sequence[tuple[str, str]]) -> dict[int, dict]:
    """Give about ``share`` of the ``train`` scenes a twin, appended to ``train``; returns
    {row: {"scene": the other row's scene dict, "group", "kind"}} for both rows of each pair.
    A scene tries the kinds in a seeded order and keeps the first it can have."""
    out: dict[int, dict] = {}
    for i in range(len(train)):
        rng = _rng(seed, "train", i, _STREAM_TWIN)
        if rng.random() >= share:
            continue
        for kind in (TWIN_KINDS[k] for k in rng.permutation(len(TWIN_KINDS))):
            twin = make_twin(train[i], kind, rng, exclude=held_out)
            if twin is not None:
                j = len(train)
                train.append(twin)
                group = f"{i:06d}"
                out[i] = {"scene": twin.to_dict(), "group": group, "kind": kind}
                out[j] = {"scene": train[i].to_dict(), "group": group, "kind": kind}
                break
    return out


def generate_dataset(out_dir: str | Path, n_train: int, n_val: int, n_test: int, n_test_compositional: int,
                     image_size: int = 128, seed: int = 0, languages: Sequence[str] = LANGUAGES,
                     noise: str | Mapping[str, float] | None = None, workers: int | None = None,
                     progress: bool = True, queries_per_scene: int = 4, n_test_queries: int | None = None,
                     twins: float = 0.0, n_val_queries: int = 0, hard_negatives: int = 0) -> Path:
    """Generate the shapes world into ``out_dir`` (replaced atomically) and return its path.

    ``noise``: per-language rate of corrupted train/val captions ("de=0.1,ja=0.05" or a
    mapping). ``workers``: processes (default: all cores; 1 for small runs); the output
    does not depend on it. ``queries_per_scene``: partial captions per training scene
    (beside the full one). ``n_test_queries``: typed queries over the test images
    (default: half the test scenes; 0 for none). ``twins``: the share of training scenes that
    get a twin (`ccr_demo.data.twins`: one bound property changed), written as a row of its
    own after the scenes; both rows carry ``"twin": {"group", "kind"}`` and their partial
    captions are false of the other. 0 writes exactly what earlier versions wrote.
    ``n_val_queries``: typed queries over the validation images (``val_queries/``), for
    choosing settings without looking at the test splits. ``hard_negatives``: per training
    caption (full and partial), up to this many captions with one bound property changed and
    false of the scene (``"negatives"`` in the row; ``caption_negatives``), for
    ``train.hard_negatives``.
    """
    languages = tuple(languages)
    unknown = [lang for lang in languages if lang not in LANGUAGES]
    if unknown or not languages:
        raise ValueError(f"languages must be a non-empty subset of {LANGUAGES}, got {languages}")
    noise_rates = parse_noise(noise, languages)
    counts = dict(zip(SPLITS, (n_train, n_val, n_test, n_test_compositional)))
    if any(n < 0 for n in counts.values()) or image_size < 8:
        raise ValueError(f"counts must be >= 0 and image_size >= 8, got {counts}, {image_size}")
    n_queries = counts["test"] // 2 if n_test_queries is None else n_test_queries
    if hard_negatives < 0:
        raise ValueError(f"hard_negatives must be >= 0, got {hard_negatives}")
    if n_val_queries < 0 or (n_val_queries and not counts["val"]):
        raise ValueError(f"n_val_queries must be >= 0 and needs validation scenes, got {n_val_queries}, "
                         f"{counts['val']} val scenes")
    if queries_per_scene < 0 or n_queries < 0 or (n_queries and not counts["test"]):
        raise ValueError(f"queries_per_scene and n_test_queries must be >= 0, and typed queries need test "
                         f"scenes; got {queries_per_scene}, {n_queries}, {counts['test']} test scenes")
    if not 0.0 <= twins <= 1.0:
        raise ValueError(f"twins must be a share of the training scenes in [0, 1], got {twins}")
    held_out = held_out_pairs(seed)
    scenes = {split: sample_split_scenes(seed, split, counts[split], held_out) for split in SPLITS}
    twin_of = add_twins(scenes["train"], seed, twins, held_out) if twins else {}
    tasks = [(split, i, scene.to_dict(), twin_of.get(i) if split == "train" else None)
             for split in SPLITS for i, scene in enumerate(scenes[split])]
    if workers is None:
        workers = 1 if len(tasks) < 500 else os.cpu_count() or 1
    out_dir = Path(out_dir)
    # Files inside the temporary tree are written plainly: the atomic step is the swap.
    with atomic_directory(out_dir) as root:
        job = _Job(str(root), seed, image_size, languages, tuple(sorted(noise_rates.items())), held_out,
                   queries_per_scene, hard_negatives)
        for split in SPLITS:
            if counts[split]:
                (root / split / "images").mkdir(parents=True)
        work = functools.partial(_make_example, job)
        with multiprocessing.Pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
            examples = pool.imap(work, tasks, chunksize=32) if pool else map(work, tasks)
            results = list(tqdm(examples, total=len(tasks), desc="shapes world", unit="scene",
                                disable=not progress))
        start = 0
        noisy: dict[str, dict[str, int]] = {}
        for split in SPLITS:
            examples = results[start:start + len(scenes[split])]
            start += len(scenes[split])
            if examples:
                _write_split(root, split, examples, languages)
            if split in NOISY_SPLITS and noise_rates:
                noisy[split] = {lang: sum(lang in ex["noise"] for ex in examples) for lang in noise_rates}
        if n_queries:
            _write_queries(root, seed, [sc.to_dict() for sc in scenes["test"]], n_queries, languages)
        if n_val_queries:
            _write_queries(root, seed, [sc.to_dict() for sc in scenes["val"]], n_val_queries, languages, "val")
        info = {
            "generator": "ccr_demo.data.shapes", "generator_version": GENERATOR_VERSION,
            "seed": seed, "image_size": image_size, "languages": list(languages), "counts": counts,
            "held_out_pairs": [list(p) for p in held_out],
            "noise": {"rates": noise_rates, "splits": list(NOISY_SPLITS), "noisy_captions": noisy},
            "vocabulary": {"shapes": list(SHAPES), "colours": list(COLOURS), "sizes": list(SIZES),
                           "positions": list(POSITIONS), "relations": list(RELATIONS),
                           "backgrounds": list(BACKGROUNDS)},
            **({"twins": {"share": twins, "pairs": len(twin_of) // 2,
                          "kinds": dict(sorted(Counter(t["kind"] for i, t in twin_of.items()
                                                       if i >= counts["train"]).items()))}} if twins else {}),
            "queries": {"per_training_scene": queries_per_scene, "test_queries": n_queries,
                        **({"val_queries": n_val_queries} if n_val_queries else {}),
                        **({"hard_negatives_per_caption": hard_negatives} if hard_negatives else {}),
                        "granularities": {g: list(keys) for g, keys in GRANULARITIES.items()}},
            "formats": {"train": "train/part_NNNNN.data (CCRK: caption, image_path, scene, variants)",
                        "eval": "SPLIT/annotations/LANG/test.jsonl (IGLUE: id, img_path, sentences, scene)",
                        "test_queries": f"{QUERY_SPLIT}/{QUERIES_FILE} (id, text, query, form, relevant)"},
        }
        (root / "dataset_info.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n",
                                                encoding="utf-8")
    return out_dir


def main(argv: Sequence[str] | None = None) -> Path:
    p = argparse.ArgumentParser(prog="python -m ccr_demo.data.shapes", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder (replaced atomically)")
    p.add_argument("--train", type=int, required=True, help="training scenes")
    p.add_argument("--test", type=int, required=True, help="parallel test scenes")
    p.add_argument("--val", type=int, default=None, help="validation scenes (default: as --test)")
    p.add_argument("--test-compositional", type=int, default=None,
                   help="scenes with held-out (shape, colour) pairs (default: as --test)")
    p.add_argument("--size", type=int, default=128, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--languages", default=",".join(LANGUAGES), help="comma-separated codes")
    p.add_argument("--noise", default=None, help="per-language caption noise rate, e.g. de=0.1,ja=0.05")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores, 1 below 500 scenes)")
    p.add_argument("--queries-per-scene", type=int, default=4,
                   help="partial (typed-query style) captions per training scene, beside the full one")
    p.add_argument("--test-queries", type=int, default=None,
                   help="typed queries over the test images (default: half of --test; 0 for none)")
    p.add_argument("--twins", type=float, default=0.0,
                   help="share of training scenes that get a twin differing in one bound property (0-1)")
    a = p.parse_args(argv)
    out = generate_dataset(
        a.out, a.train, a.test if a.val is None else a.val, a.test,
        a.test if a.test_compositional is None else a.test_compositional,
        image_size=a.size, seed=a.seed, languages=[s.strip() for s in a.languages.split(",") if s.strip()],
        noise=a.noise, workers=a.workers, queries_per_scene=a.queries_per_scene, n_test_queries=a.test_queries,
        twins=a.twins)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()

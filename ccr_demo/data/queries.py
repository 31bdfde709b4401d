"""Typed queries: partial captions, what they assert, and which images they are true of.

Why: people do not type the generator's full-scene captions; they type "red star", "is
there a purple heart?", "show me two circles". A query here is a language-independent
assertion about a scene (a few of an object's attributes, a count, a background) plus a
phrasing form; each language's grammar words it (``describe_query``), so the ten
languages of one query stay parallel. Because the assertion is explicit, relevance of any
image to any query is computed from the scene dicts: that is what the typed-query test
split and its metrics (P@K, mAP@10, rank consistency) are built on.

Assertions are dicts with any of ``shape``, ``colour``, ``size``, ``position``, ``count``,
``background``. An image is relevant when its background matches (if stated) and, if an
object is stated, at least one object matches every stated attribute, or, with ``count``,
exactly ``count`` objects do ("two red circles" is false of a scene with three).

A two-object query ("a red square and a blue circle") asserts ``pair``: two object
descriptions (each of ``shape``, ``colour`` and optionally ``position``), and optionally a
``relation`` of the first to the second ("left_of": "a red square to the left of a blue
circle"). It is true when two distinct objects of the scene match the two descriptions and,
with a relation, stand in it: on one row or column, as full captions state relations
(``relation_on_one_line``), so diagonal neighbours make no relation true.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ccr_demo.data.errors import DataFormatError
from ccr_demo.data.languages import FORMS, Item, Query
from ccr_demo.data.scene import relation_on_one_line

OBJECT_KEYS = ("shape", "colour", "size", "position")
# Granularity name -> attributes it states. Position and background are never combined
# (one locative per query keeps every language's phrasing natural).
GRANULARITIES = {
    "shape": ("shape",),
    "colour_shape": ("shape", "colour"),
    "size_shape": ("shape", "size"),
    "size_colour_shape": ("shape", "colour", "size"),
    "shape_position": ("shape", "position"),
    "colour_shape_position": ("shape", "colour", "position"),
    "size_colour_shape_position": ("shape", "colour", "size", "position"),
    "colour_shape_background": ("shape", "colour", "background"),
    "background": ("background",),
    "count_shape": ("shape", "count"),
    "count_colour_shape": ("shape", "colour", "count"),
    # Two objects of one picture, each by colour and shape: side by side, each in its place,
    # or one placed relative to the other.
    "two_objects": ("pair", "shape", "colour"),
    "two_objects_position": ("pair", "shape", "colour", "position"),
    "two_objects_relation": ("pair", "shape", "colour", "relation"),
}
TWO_OBJECT_GRANULARITIES = tuple(g for g, keys in GRANULARITIES.items() if "pair" in keys)
# How often each is drawn: specific queries more than the bare ones, as people type them.
# Counts and two objects weigh more than typing alone would give them: fewer scenes can have
# them (a draw a scene cannot support is redrawn), and they are what the binding goals measure.
GRANULARITY_WEIGHTS = {
    "shape": 1, "colour_shape": 4, "size_shape": 1, "size_colour_shape": 3, "shape_position": 1,
    "colour_shape_position": 2, "size_colour_shape_position": 1, "colour_shape_background": 2,
    "background": 1, "count_shape": 2, "count_colour_shape": 4,
    "two_objects": 2, "two_objects_position": 1, "two_objects_relation": 2,
}
# A relation and the same relation read from the other object ("A left of B" is "B right of A").
INVERSE_RELATIONS = {"left_of": "right_of", "right_of": "left_of", "above": "below", "below": "above"}


def _objects(scene: Mapping) -> list[Mapping]:
    return list(scene["objects"])


def _matches(obj: Mapping, asserts: Mapping) -> bool:
    return all(obj[k] == asserts[k] for k in OBJECT_KEYS if k in asserts)


def _pair_holds(pair: Sequence[Mapping], relation: str | None, objs: Sequence[Mapping]) -> bool:
    """Two distinct objects match the pair's two descriptions (and stand in ``relation``)."""
    first, second = pair
    for i, a in enumerate(objs):
        if not _matches(a, first):
            continue
        for j, b in enumerate(objs):
            if j != i and _matches(b, second) and (
                    relation is None or relation_on_one_line(a["position"], b["position"]) == relation):
                return True
    return False


def is_relevant(asserts: Mapping, scene: Mapping) -> bool:
    """Whether a scene (its dict form) makes the query true."""
    if "background" in asserts and scene["background"] != asserts["background"]:
        return False
    if "pair" in asserts:
        return _pair_holds(asserts["pair"], asserts.get("relation"), _objects(scene))
    if "shape" not in asserts:
        return True
    n = sum(_matches(o, asserts) for o in _objects(scene))
    return n == asserts["count"] if "count" in asserts else n >= 1


def assertion_key(asserts: Mapping) -> str:
    """One string per meaning, to keep a scene's (or a split's) queries distinct: the two
    orders of a pair ("A and B", "B and A"), and a relation read from either object ("A left
    of B", "B right of A"), give one key."""
    if "pair" in asserts:
        pair = [json.dumps(o, sort_keys=True) for o in asserts["pair"]]
        relation = asserts.get("relation")
        if relation is None:
            pair.sort()
        elif relation in ("right_of", "below"):
            pair, relation = pair[::-1], INVERSE_RELATIONS[relation]
        asserts = {**asserts, "pair": pair, "relation": relation}
    return json.dumps(asserts, sort_keys=True)


def relevance_matrix(queries: Sequence[Mapping], scenes: Sequence[Mapping]) -> np.ndarray:
    """bool [Q, N]: query q is true of scene n."""
    return np.array([[is_relevant(a, s) for s in scenes] for a in queries], dtype=bool).reshape(
        len(queries), len(scenes))


def assertion_for(scene: Mapping, granularity: str, rng: np.random.Generator) -> dict | None:
    """What a query of ``granularity`` asserts about one object (or two) of ``scene`` (always
    true of it), or None when the scene cannot support it (a count needs two matching objects,
    a pair two objects described differently)."""
    keys = GRANULARITIES[granularity]
    objs = _objects(scene)
    if "pair" in keys:
        return _pair_assertion(objs, [k for k in keys if k in OBJECT_KEYS], "relation" in keys, rng)
    if "count" in keys:
        groups: dict[tuple, int] = {}
        for o in objs:
            key = tuple(o[k] for k in keys if k != "count")
            groups[key] = groups.get(key, 0) + 1
        multi = [k for k, n in groups.items() if n > 1]
        if not multi:
            return None
        key = multi[int(rng.integers(len(multi)))]
        out = dict(zip([k for k in keys if k != "count"], key))
        out["count"] = groups[key]
        return out
    out = {}
    if any(k in OBJECT_KEYS for k in keys):
        obj = objs[int(rng.integers(len(objs)))]
        out = {k: obj[k] for k in keys if k in OBJECT_KEYS}
    if "background" in keys:
        out["background"] = scene["background"]
    return out


def _pair_assertion(objs: Sequence[Mapping], object_keys: Sequence[str], with_relation: bool,
                    rng: np.random.Generator) -> dict | None:
    """Two distinct objects of the scene, described by ``object_keys``, in a random order
    (and the first's relation to the second): None when no two objects differ in what is
    described ("a red circle and a red circle" is a count) or, for a relation, none share a
    row or a column."""
    described = [{k: o[k] for k in object_keys} for o in objs]
    candidates = [(i, j) for i in range(len(objs)) for j in range(len(objs))
                  if i != j and described[i] != described[j]
                  and (not with_relation or relation_on_one_line(objs[i]["position"], objs[j]["position"]))]
    if not candidates:
        return None
    i, j = candidates[int(rng.integers(len(candidates)))]
    out: dict = {"pair": [described[i], described[j]]}
    if with_relation:
        out["relation"] = relation_on_one_line(objs[i]["position"], objs[j]["position"])
    return out


def sample_assertions(scene: Mapping, rng: np.random.Generator, n: int,
                      false_of: Mapping | None = None) -> list[tuple[str, dict]]:
    """Up to ``n`` distinct (granularity, assertion) pairs true of ``scene`` (and, with
    ``false_of``, false of that scene: what tells a twin apart from its scene)."""
    names = list(GRANULARITIES)
    p = np.array([GRANULARITY_WEIGHTS[g] for g in names], dtype=float)
    p /= p.sum()
    out: list[tuple[str, dict]] = []
    seen: set[str] = set()
    for _ in range(8 * n):
        if len(out) == n:
            break
        g = names[int(rng.choice(len(names), p=p))]
        a = assertion_for(scene, g, rng)
        if a is None or (false_of is not None and is_relevant(a, false_of)):
            continue
        key = assertion_key(a)
        if key not in seen:
            seen.add(key)
            out.append((g, a))
    return out


def _item(description: Mapping) -> Item:
    return Item(description["shape"], description.get("colour"), description.get("size"),
                int(description.get("count", 1)), description.get("position"))


def to_query(asserts: Mapping, form: str) -> Query:
    """The grammars' :class:`Query` for an assertion and a phrasing form."""
    if "pair" in asserts:
        first, second = asserts["pair"]
        return Query(_item(first), asserts.get("background"), form, second=_item(second),
                     relation=asserts.get("relation"))
    item = None
    if "shape" in asserts:
        item = _item(asserts)
    return Query(item, asserts.get("background"), form)


def draw_form(rng: np.random.Generator) -> str:
    return FORMS[int(rng.integers(len(FORMS)))]


# --------------------------------------------------------------- the test split's file
QUERIES_FILE = "queries.jsonl"


@dataclass
class QuerySet:
    """Typed queries in L parallel languages with their relevant images in a gallery.

    ``texts[lang][q]`` is query q in ``lang``; ``relevant[q]`` the gallery image ids that
    make it true; ``gallery`` names the split whose images they are (a sibling folder).
    """

    ids: list[str]
    texts: dict[str, list[str]]
    relevant: list[list[str]]
    asserts: list[dict]
    forms: list[str]
    granularities: list[str]
    gallery: str = "test"
    name: str = ""

    @property
    def languages(self) -> list[str]:
        return list(self.texts)

    def __len__(self) -> int:
        return len(self.ids)

    def __bool__(self) -> bool:  # an empty selection is falsy, unlike a plain dataclass
        return bool(self.ids)

    def relevance(self, image_ids: Sequence[str]) -> np.ndarray:
        """bool [Q, N] over a gallery's image ids; an id missing from it is an error."""
        index = {str(i): n for n, i in enumerate(image_ids)}
        rel = np.zeros((len(self), len(index)), dtype=bool)
        for q, ids in enumerate(self.relevant):
            missing = [i for i in ids if i not in index]
            if missing:
                raise DataFormatError(f"{self.name or 'query set'}: query {self.ids[q]!r} names images not in "
                                      f"the gallery: {missing[:3]}")
            rel[q, [index[i] for i in ids]] = True
        return rel

    def restricted(self, image_ids: Sequence[str], max_queries: int | None = None) -> "QuerySet":
        """The queries true of at least one of ``image_ids`` (a smaller gallery), their
        relevant lists cut to those images; at most ``max_queries`` of them, in order."""
        keep_ids = {str(i) for i in image_ids}
        rows = [(q, [i for i in rel if i in keep_ids]) for q, rel in enumerate(self.relevant)]
        rows = [(q, rel) for q, rel in rows if rel][:max_queries]
        pick = [q for q, _ in rows]
        return QuerySet([self.ids[q] for q in pick], {k: [v[q] for q in pick] for k, v in self.texts.items()},
                        [rel for _, rel in rows], [self.asserts[q] for q in pick], [self.forms[q] for q in pick],
                        [self.granularities[q] for q in pick], self.gallery, self.name)

    def with_languages(self, languages: Sequence[str]) -> "QuerySet":
        missing = [lang for lang in languages if lang not in self.texts]
        if missing:
            raise DataFormatError(f"{self.name or 'query set'}: no queries in {missing}")
        return QuerySet(self.ids, {lang: self.texts[lang] for lang in languages}, self.relevant, self.asserts,
                        self.forms, self.granularities, self.gallery, self.name)

    @classmethod
    def load(cls, path: str | Path, languages: Sequence[str] | None = None) -> "QuerySet":
        """Read ``queries.jsonl`` (a file, or the folder holding it)."""
        path = Path(path)
        if path.is_dir():
            path = path / QUERIES_FILE
        if not path.is_file():
            raise DataFormatError(f"{path}: no typed-query file ({QUERIES_FILE})")
        rows = []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    text, relevant = row["text"], row["relevant"]
                    if not isinstance(text, dict) or not isinstance(relevant, list):
                        raise TypeError("'text' must be an object and 'relevant' a list")
                except (ValueError, KeyError, TypeError) as e:
                    raise DataFormatError(f"{path}:{lineno}: bad query row: {e}") from None
                rows.append(row)
        if not rows:
            raise DataFormatError(f"{path}: no queries")
        langs = list(languages) if languages else list(rows[0]["text"])
        galleries = {str(r.get("gallery", "test")) for r in rows}
        if len(galleries) != 1 or any(("/" in g or "\\" in g or g in ("", ".", "..")) for g in galleries):
            raise DataFormatError(f"{path}: 'gallery' must be one sibling split name, got {sorted(galleries)}")
        texts = {}
        for lang in langs:
            missing = [r["id"] for r in rows if lang not in r["text"]]
            if missing:
                raise DataFormatError(f"{path}: queries {missing[:3]} have no {lang!r} text")
            texts[lang] = [str(r["text"][lang]) for r in rows]
        return cls([str(r["id"]) for r in rows], texts, [[str(i) for i in r["relevant"]] for r in rows],
                   [dict(r.get("query", {})) for r in rows], [str(r.get("form", "")) for r in rows],
                   [str(r.get("granularity", "")) for r in rows], galleries.pop(), name=path.parent.name)

"""Minimal pairs ("twins") of the shapes world: two scenes that differ in exactly one bound property.

Why: a dual encoder that pools an image into one vector learns which colours and shapes are
present far sooner than where they are, how many there are, or which colour goes with which
shape, because random batches rarely hold two images that differ only in that. A twin and its
scene in one batch make the contrastive loss pay for exactly that difference.

The kinds (``TWIN_KINDS``), each a change to one thing the full caption states:

- ``move``: one object goes to another free anchor (a two-object scene keeps its pair on one
  line through the centre, so a stated relation stays unambiguous, and flips or turns);
- ``count``: one object more (a copy of an existing one at a free anchor) or fewer (one of a
  group of identical objects removed); scenes whose caption states a relation are left out;
- ``swap_colours``: two objects of different shapes and colours exchange their colours;
- ``background``: the background takes an object's colour and that object takes the
  background's (only where both names are colours and backgrounds);
- ``size``: one object changes size (small <-> large).

The same changes make caption hard negatives (``train.hard_negatives``): the full caption of
a twin scene that is never drawn, and ``swapped_assertion`` for a typed-query-style caption.

A twin never uses a held-out (shape, colour) pair, keeps every background distinct from its
objects' colours (as ``sample_scene`` does), and always has a different full caption
(``plan_from_scene``) from its scene. Which property differs is read back from the two scene
dicts by ``difference``, so a test (or a data check) need not trust the generator.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Iterable, Mapping

import numpy as np

from ccr_demo.data.languages import plan_from_scene
from ccr_demo.data.queries import INVERSE_RELATIONS, is_relevant
from ccr_demo.data.scene import BACKGROUNDS, COLOURS, POSITIONS, Scene, relation_between

TWIN_KINDS = ("move", "count", "swap_colours", "background", "size")


def _free_positions(objects) -> list[str]:
    used = {o.position for o in objects}
    return [p for p in POSITIONS if p not in used]


def _on_one_line(a: str, b: str) -> bool:
    (ax, ay), (bx, by) = POSITIONS[a], POSITIONS[b]
    return a != b and (ax == bx or ay == by)


def make_twin(scene: Scene, kind: str, rng: np.random.Generator,
              exclude: Iterable[tuple[str, str]] = ()) -> Scene | None:
    """A scene differing from ``scene`` in the one property ``kind`` names, or None when this
    scene cannot have such a twin (or none that changes what its full caption states).
    ``exclude``: held-out (shape, colour) pairs a twin may not create."""
    if kind not in TWIN_KINDS:
        raise ValueError(f"twin kind must be one of {TWIN_KINDS}, got {kind!r}")
    objs = list(scene.objects)
    exclude = frozenset(exclude)
    twin = None
    if kind == "move":  # the first (object, free anchor) in a seeded order that changes the caption
        for i in (int(k) for k in rng.permutation(len(objs))):
            free = _free_positions(objs)
            if len(objs) == 2:  # keep the pair on one line through the centre
                free = [p for p in free if _on_one_line(p, objs[1 - i].position)]
            for position in (free[int(k)] for k in rng.permutation(len(free))):
                moved = list(objs)
                moved[i] = replace(objs[i], position=position)
                relation = scene.relation and relation_between(moved[0].position, moved[1].position)
                candidate = replace(scene, objects=tuple(moved), relation=relation)
                if plan_from_scene(candidate) != plan_from_scene(scene):
                    return candidate
        return None
    if kind == "count" and scene.relation is None:
        groups = Counter((o.shape, o.colour, o.size) for o in objs)
        removable = [i for i, o in enumerate(objs) if groups[o.shape, o.colour, o.size] > 1]
        free = _free_positions(objs)
        can_add = len(objs) < 3 and free
        if removable and (not can_add or rng.random() < 0.5):
            drop = removable[int(rng.integers(len(removable)))]
            kept = tuple(o for j, o in enumerate(objs) if j != drop)
            if len(kept) == 2 and not _on_one_line(kept[0].position, kept[1].position):
                return None  # two objects must stand on one line through the centre
            twin = replace(scene, objects=kept)
        elif can_add:
            if len(objs) == 1:
                free = [p for p in free if _on_one_line(p, objs[0].position)]
            if free:
                copy = objs[int(rng.integers(len(objs)))]
                added = replace(copy, position=free[int(rng.integers(len(free)))])
                twin = replace(scene, objects=tuple(objs) + (added,))
    elif kind == "swap_colours":
        pairs = [(i, j) for i in range(len(objs)) for j in range(i + 1, len(objs))
                 if objs[i].shape != objs[j].shape and objs[i].colour != objs[j].colour
                 and (objs[i].shape, objs[j].colour) not in exclude and (objs[j].shape, objs[i].colour) not in exclude]
        if pairs:
            i, j = pairs[int(rng.integers(len(pairs)))]
            a, b = objs[i], objs[j]
            objs[i], objs[j] = replace(a, colour=b.colour), replace(b, colour=a.colour)
            twin = replace(scene, objects=tuple(objs))
    elif kind == "background" and scene.background in COLOURS:
        # the object's colour must leave the objects entirely to become the background, which
        # already differs from every object's colour (the generator's rule), so none shares it after
        options = [i for i, o in enumerate(objs) if o.colour in BACKGROUNDS
                   and sum(p.colour == o.colour for p in objs) == 1 and (o.shape, scene.background) not in exclude]
        if options:
            i = options[int(rng.integers(len(options)))]
            new_background = objs[i].colour
            objs[i] = replace(objs[i], colour=scene.background)
            twin = replace(scene, objects=tuple(objs), background=new_background)
    elif kind == "size":
        order = [int(i) for i in rng.permutation(len(objs))]
        for i in order:
            o = objs[i]
            new = replace(o, size="large" if o.size == "small" else "small")
            # an object changing size may not merge into (or split from) a group of identical ones
            if all((p.shape, p.colour, p.size) != (new.shape, new.colour, new.size) for p in objs) and \
                    sum((p.shape, p.colour, p.size) == (o.shape, o.colour, o.size) for p in objs) == 1:
                objs[i] = new
                twin = replace(scene, objects=tuple(objs))
                break
    if twin is None or plan_from_scene(twin) == plan_from_scene(scene):
        return None
    return twin


def difference(a: Mapping, b: Mapping) -> str | None:
    """Which one property tells scene dicts ``a`` and ``b`` apart (a ``TWIN_KINDS`` name), or
    None when they are equal or differ in more than one way. Read from the dicts alone."""
    oa, ob = a["objects"], b["objects"]
    if a["background"] != b["background"]:
        if len(oa) != len(ob):
            return None
        changed = [(x, y) for x, y in zip(oa, ob) if x != y]
        if (len(changed) == 1 and changed[0][0]["colour"] == b["background"]
                and changed[0][1]["colour"] == a["background"]
                and {k: v for k, v in changed[0][0].items() if k != "colour"}
                == {k: v for k, v in changed[0][1].items() if k != "colour"}):
            return "background"
        return None
    if len(oa) != len(ob):
        big, small = (oa, ob) if len(oa) > len(ob) else (ob, oa)
        if abs(len(oa) - len(ob)) != 1:
            return None
        rest = list(big)
        for o in small:
            if o not in rest:
                return None
            rest.remove(o)
        extra = rest[0]
        identity = (extra["shape"], extra["colour"], extra["size"])
        return "count" if any((o["shape"], o["colour"], o["size"]) == identity for o in small) else None
    changed = [i for i, (x, y) in enumerate(zip(oa, ob)) if x != y]
    if len(changed) == 1:
        x, y = oa[changed[0]], ob[changed[0]]
        diff = {k for k in x if x[k] != y[k]}
        return {frozenset({"position"}): "move", frozenset({"size"}): "size"}.get(frozenset(diff))
    if len(changed) == 2:
        (x1, y1), (x2, y2) = ((oa[i], ob[i]) for i in changed)
        if (y1["colour"], y2["colour"]) == (x2["colour"], x1["colour"]) and all(
                x1[k] == y1[k] and x2[k] == y2[k] for k in ("shape", "size", "position")):
            return "swap_colours"
    return None


# One attribute of a typed-query assertion swapped (NegCLIP-style caption hard negatives):
# a place to its mirror, a colour or background for another, a size for the other, a count by one.
MIRROR = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}


def _swapped_pair(asserts: Mapping, rng: np.random.Generator) -> list[tuple[str, dict]]:
    """A two-object assertion with one thing changed: what binds (the two objects' colours
    exchanged, "a blue square and a red circle"; their places exchanged; the relation turned
    round, "right of" for "left of") and, always possible, one object's colour changed."""
    first, second = asserts["pair"]
    options: list[tuple[str, dict]] = []

    def with_pair(a: Mapping, b: Mapping) -> dict:
        return {**asserts, "pair": [dict(a), dict(b)]}

    if first["colour"] != second["colour"]:
        options.append(("swap_colours", with_pair({**first, "colour": second["colour"]},
                                                  {**second, "colour": first["colour"]})))
    if "position" in first and first["position"] != second["position"]:
        options.append(("position", with_pair({**first, "position": second["position"]},
                                              {**second, "position": first["position"]})))
    if "relation" in asserts:
        options.append(("relation", {**asserts, "relation": INVERSE_RELATIONS[asserts["relation"]]}))
    which = int(rng.integers(2))
    changed = (first, second)[which]
    # never the other object's colour: "a blue square and a blue square" would be a count
    others = [c for c in COLOURS if c not in (first["colour"], second["colour"])]
    recoloured = {**changed, "colour": others[int(rng.integers(len(others)))]}
    options.append(("colour", with_pair(recoloured, second) if which == 0 else with_pair(first, recoloured)))
    return options


def swapped_assertion(asserts: Mapping, scene: Mapping, rng: np.random.Generator) -> tuple[str, dict] | None:
    """(what was swapped, the assertion with one attribute changed) false of ``scene`` (a scene
    dict the assertion is true of), or None when no single swap makes it false. Tried in a
    seeded order: position, colour, background, count, size; for two objects (``"pair"``),
    their colours or places exchanged, the relation turned round, one colour changed."""
    options: list[tuple[str, dict]] = _swapped_pair(asserts, rng) if "pair" in asserts else []
    if asserts.get("position") in MIRROR:
        options.append(("position", {**asserts, "position": MIRROR[asserts["position"]]}))
    if "colour" in asserts:
        others = [c for c in COLOURS if c != asserts["colour"]]
        options.append(("colour", {**asserts, "colour": others[int(rng.integers(len(others)))]}))
    if "background" in asserts:
        others = [b for b in BACKGROUNDS if b != asserts["background"]]
        options.append(("background", {**asserts, "background": others[int(rng.integers(len(others)))]}))
    if asserts.get("count") in (2, 3):  # the world's counts (and the grammars' numerals) are 2 and 3
        options.append(("count", {**asserts, "count": 5 - int(asserts["count"])}))
    if "size" in asserts:
        options.append(("size", {**asserts, "size": "large" if asserts["size"] == "small" else "small"}))
    for k in rng.permutation(len(options)):
        kind, swapped = options[int(k)]
        if not is_relevant(swapped, scene):
            return kind, swapped
    return None

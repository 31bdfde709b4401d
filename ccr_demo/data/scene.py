"""The shapes world's vocabulary and its scenes: what a caption can state about an image.

Shapes, colours, sizes, anchor positions, relations and backgrounds, and the `Scene` every
caption and image of the world is generated from (`ccr_demo.data.shapes` samples and writes
them, `ccr_demo.data.render` draws them, `ccr_demo.data.twins` pairs them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

# --- The world's inventory -------------------------------------------------------------

SHAPES = ("circle", "square", "triangle", "star", "heart", "cross", "hexagon", "diamond")
# Far apart in hue or lightness, so a small CNN at 128 px tells them apart after jitter.
COLOURS = {
    "red": (220, 30, 35), "green": (30, 160, 60), "blue": (35, 80, 225), "yellow": (245, 215, 30),
    "orange": (250, 135, 20), "purple": (135, 50, 185), "white": (248, 248, 248), "black": (18, 18, 18),
}
SIZES = {"small": 0.08, "large": 0.14}  # circumradius as a fraction of the image side
# Anchors (x, y) as fractions of the side; two large objects at neighbouring anchors
# (0.31 apart) cannot overlap even with jitter.
POSITIONS = {"left": (0.19, 0.5), "right": (0.81, 0.5), "top": (0.5, 0.19),
             "bottom": (0.5, 0.81), "centre": (0.5, 0.5)}
RELATIONS = ("left_of", "right_of", "above", "below")
# Plain backgrounds name a colour; objects never share it. Patterns are two greys.
BACKGROUNDS = {"white": (240, 240, 240), "grey": (125, 125, 125), "black": (30, 30, 30),
               "striped": ((172, 172, 172), (128, 128, 128)),
               "checkered": ((172, 172, 172), (128, 128, 128))}


@dataclass(frozen=True)
class ShapeObject:
    shape: str
    colour: str
    size: str
    position: str

    @property
    def identity(self) -> tuple[str, str, str]:
        """What a caption can tell apart; objects equal in it are counted together."""
        return (self.shape, self.colour, self.size)


@dataclass(frozen=True)
class Scene:
    """The structured description every caption of an image is generated from.

    ``relation`` (e.g. "left_of": objects[0] is left of objects[1]) is set when the
    captions state the relation of a two-object scene instead of the positions.
    """

    objects: tuple[ShapeObject, ...]
    background: str
    relation: str | None = None

    def to_dict(self) -> dict:
        return {"objects": [dataclasses.asdict(o) for o in self.objects],
                "background": self.background, "relation": self.relation}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Scene":
        return cls(tuple(ShapeObject(**o) for o in d["objects"]), d["background"], d.get("relation"))


def relation_between(a: str, b: str) -> str:
    """Relation of anchor a to anchor b (they share a row or a column)."""
    (ax, ay), (bx, by) = POSITIONS[a], POSITIONS[b]
    if ay == by:
        return "left_of" if ax < bx else "right_of"
    return "above" if ay < by else "below"


def relation_on_one_line(a: str, b: str) -> str | None:
    """Relation of anchor a to anchor b when they share a row or a column, else None.

    Diagonal anchors (left and top, say) have no stated relation: "to the left of" and
    "above" would each be half true, so a query stating either is true of neither.
    """
    (ax, ay), (bx, by) = POSITIONS[a], POSITIONS[b]
    if a == b or (ax != bx and ay != by):
        return None
    return relation_between(a, b)

"""English captions: "A small red circle to the left of a large blue square on a grey background."

Every noun phrase starts with "a", "two" or "three" followed by a size word, so "a" never
meets a vowel and "an" is never needed.
"""

from __future__ import annotations

from . import common
from .common import Choices, Item, Plan, with_position

NOUNS = {  # shape -> synonyms as (singular, plural)
    "circle": [("circle", "circles"), ("disc", "discs")],
    "square": [("square", "squares")],
    "triangle": [("triangle", "triangles")],
    "star": [("star", "stars")],
    "heart": [("heart", "hearts")],
    "cross": [("cross", "crosses")],
    "hexagon": [("hexagon", "hexagons")],
    "diamond": [("diamond", "diamonds"), ("rhombus", "rhombuses")],
}
COLOURS = {
    "red": ["red"], "green": ["green"], "blue": ["blue"], "yellow": ["yellow"],
    "orange": ["orange"], "purple": ["purple", "violet"], "white": ["white"], "black": ["black"],
}
SIZES = {"small": ["small", "little"], "large": ["large", "big"]}
COUNTS = {1: "a", 2: "two", 3: "three"}
POSITIONS = {
    "left": ["on the left"], "right": ["on the right"], "top": ["at the top"],
    "bottom": ["at the bottom"], "centre": ["in the centre", "in the middle"],
}
RELATIONS = {
    "left_of": ["to the left of"], "right_of": ["to the right of"],
    "above": ["above"], "below": ["below", "under"],
}
BACKGROUNDS = {
    "white": ["white"], "grey": ["grey"], "black": ["black"],
    "striped": ["striped"], "checkered": ["checkered", "chequered"],
}
TEMPLATES = [
    "{items} on a {bg} background.",
    "There {be} {items} on a {bg} background.",
    "A {bg} background with {items}.",
    "A picture of {items} on a {bg} background.",
]


def noun_phrase(item: Item, choose: Choices) -> str:
    singular, plural = choose(f"shape:{item.shape}", NOUNS[item.shape])
    return with_position([
        COUNTS[item.count],
        choose(f"size:{item.size}", SIZES[item.size]),
        choose(f"colour:{item.colour}", COLOURS[item.colour]),
        singular if item.count == 1 else plural,
    ], item, choose, POSITIONS)


def describe(plan: Plan, choose: Choices) -> str:
    # Existential "there is/are" agrees with the first conjunct, as spoken English does.
    be = "are" if plan.items[0].count > 1 else "is"
    return common.describe(plan, choose, noun_phrase, RELATIONS, BACKGROUNDS, TEMPLATES, " and ", be=be)

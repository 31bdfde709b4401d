"""English captions: "A small red circle to the left of a large blue square on a grey background."

British spelling throughout (grey, centre, chequered). Every full-caption noun phrase
starts with "a", "two" or "three" followed by a size word, so "a" never meets a vowel; a
typed query may omit the size ("an orange star"), so the article is chosen by sound.
"""

from __future__ import annotations

from . import common
from .common import Choices, Item, Plan, Query, size_and_colour, with_position

NOUNS = {  # shape -> synonyms as (singular, plural)
    "circle": [("circle", "circles"), ("disc", "discs"), ("round shape", "round shapes")],
    "square": [("square", "squares")],
    "triangle": [("triangle", "triangles")],
    "star": [("star", "stars")],
    "heart": [("heart", "hearts")],
    "cross": [("cross", "crosses"), ("plus sign", "plus signs")],
    "hexagon": [("hexagon", "hexagons"), ("six-sided shape", "six-sided shapes")],
    "diamond": [("diamond", "diamonds"), ("rhombus", "rhombuses"), ("lozenge", "lozenges")],
}
COLOURS = {
    "red": ["red"], "green": ["green"], "blue": ["blue"], "yellow": ["yellow"],
    "orange": ["orange"], "purple": ["purple", "violet"], "white": ["white"], "black": ["black"],
}
SIZES = {"small": ["small", "little", "tiny"], "large": ["large", "big", "huge"]}
COUNTS = {1: "a", 2: "two", 3: "three"}
POSITIONS = {
    "left": ["on the left", "on the left side"], "right": ["on the right", "on the right side"],
    "top": ["at the top"], "bottom": ["at the bottom"], "centre": ["in the centre", "in the middle"],
}
RELATIONS = {
    "left_of": ["to the left of"], "right_of": ["to the right of"],
    "above": ["above"], "below": ["below", "under"],
}
BACKGROUNDS = {
    "white": ["white"], "grey": ["grey"], "black": ["black"],
    "striped": ["striped", "stripy"], "checkered": ["chequered", "checked"],
}
TEMPLATES = [
    "{items} on a {bg} background.",
    "There {be} {items} on a {bg} background.",
    "A {bg} background with {items}.",
    "A picture of {items} on a {bg} background.",
]
QUERY_FORMS = {
    "phrase": ["{tb}", "{t}", "picture of {t}", "image with {t}"],
    "sentence": ["There {be} {t}.", "I see {t}.", "The picture shows {t}."],
    "question": ["{Be} there {t}?", "Any pictures with {t}?", "Do you have a picture with {t}?"],
    "request": ["Show me {t}.", "Find {t}.", "Find me a picture with {t}.", "I'm looking for {t}."],
}
# Option indices that training text never uses; only the typed-query test split does.
HELD_OUT = {
    "shape:circle": {2}, "shape:hexagon": {1}, "shape:diamond": {2}, "size:small": {2},
    "size:large": {2}, "position:left": {1}, "position:right": {1}, "background:striped": {1},
    "form:phrase": {3}, "form:sentence": {2}, "form:question": {2}, "form:request": {2},
}


def _article(next_word: str) -> str:
    return "an" if next_word[:1] in "aeiou" else "a"


def noun_phrase(item: Item, choose: Choices, article: bool = True) -> str:
    singular, plural = choose(f"shape:{item.shape}", NOUNS[item.shape])
    words = size_and_colour(item, choose, SIZES, COLOURS)
    words.append(singular if item.count == 1 else plural)
    if item.count > 1:
        words.insert(0, COUNTS[item.count])
    elif article:
        words.insert(0, _article(words[0]))
    return with_position(words, item, choose, POSITIONS)


def describe(plan: Plan, choose: Choices) -> str:
    # Existential "there is/are" agrees with the first conjunct, as spoken English does.
    be = "are" if plan.items[0].count > 1 else "is"
    return common.describe(plan, choose, noun_phrase, RELATIONS, BACKGROUNDS, TEMPLATES, " and ", be=be)


def query(q: Query, choose: Choices) -> str:
    # "Is there a red square and a blue circle?": agreement with the first conjunct, as in describe.
    be = "are" if q.item is not None and q.item.count > 1 else "is"
    return common.noun_first_query(
        q, choose, QUERY_FORMS, noun_phrase, BACKGROUNDS,
        lambda bg, article: f"{_article(bg)} {bg} background" if article else f"{bg} background",
        "on a {bg} background", relations=RELATIONS, conjunction=" and ", be=be, Be=be.capitalize())

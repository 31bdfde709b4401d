"""French captions: gender and number agreement, "petit"/"grand" before the noun, colour after.

"orange" is invariable ("des croix orange"); "de" + "un/une" elides to "d'un/d'une", and
landmarks of a relation are always singular, so "de" never meets "deux/trois".
"""

from __future__ import annotations

from . import common
from .common import Choices, Item, Plan, romance_adjective as A, with_position

NOUNS = {  # shape -> synonyms as (gender, singular, plural)
    "circle": [("m", "cercle", "cercles"), ("m", "rond", "ronds")],
    "square": [("m", "carré", "carrés")],
    "triangle": [("m", "triangle", "triangles")],
    "star": [("f", "étoile", "étoiles")],
    "heart": [("m", "cœur", "cœurs")],
    "cross": [("f", "croix", "croix")],
    "hexagon": [("m", "hexagone", "hexagones")],
    "diamond": [("m", "losange", "losanges")],
}
COLOURS = {
    "red": [A("rouge", "rouge", "rouges", "rouges")],
    "green": [A("vert", "verte", "verts", "vertes")],
    "blue": [A("bleu", "bleue", "bleus", "bleues")],
    "yellow": [A("jaune", "jaune", "jaunes", "jaunes")],
    "orange": [A("orange", "orange", "orange", "orange")],
    "purple": [A("violet", "violette", "violets", "violettes")],
    "white": [A("blanc", "blanche", "blancs", "blanches")],
    "black": [A("noir", "noire", "noirs", "noires")],
}
SIZES = {  # prenominal in French
    "small": [A("petit", "petite", "petits", "petites")],
    "large": [A("grand", "grande", "grands", "grandes")],
}
DETERMINERS = {(1, "m"): "un", (1, "f"): "une", (2, "m"): "deux", (2, "f"): "deux",
               (3, "m"): "trois", (3, "f"): "trois"}
POSITIONS = {
    "left": ["à gauche"], "right": ["à droite"], "top": ["en haut"], "bottom": ["en bas"],
    "centre": ["au centre", "au milieu"],
}
RELATIONS = {  # each ends in "de", elided before the landmark's "un/une"
    "left_of": ["à gauche d'"], "right_of": ["à droite d'"],
    "above": ["au-dessus d'"], "below": ["en dessous d'", "au-dessous d'"],
}
BACKGROUNDS = {  # agreeing with "fond" (masculine singular)
    "white": ["blanc"], "grey": ["gris"], "black": ["noir"],
    "striped": ["rayé"], "checkered": ["à carreaux", "quadrillé"],
}
TEMPLATES = [
    "{items} sur un fond {bg}.",
    "Il y a {items} sur un fond {bg}.",
    "Un fond {bg} avec {items}.",
    "Une image montrant {items} sur fond {bg}.",
]


def noun_phrase(item: Item, choose: Choices) -> str:
    gender, singular, plural = choose(f"shape:{item.shape}", NOUNS[item.shape])
    key = (gender, item.count > 1)
    return with_position([
        DETERMINERS[item.count, gender],
        choose(f"size:{item.size}", SIZES[item.size])[key],
        singular if item.count == 1 else plural,
        choose(f"colour:{item.colour}", COLOURS[item.colour])[key],
    ], item, choose, POSITIONS)


def describe(plan: Plan, choose: Choices) -> str:
    return common.describe(
        plan, choose, noun_phrase, RELATIONS, BACKGROUNDS, TEMPLATES, " et ",
        # No space after the relation: its "d'" is elided onto the landmark's "un/une".
        related=lambda s, rel, l: f"{noun_phrase(s, choose)} {rel}{noun_phrase(l, choose)}")

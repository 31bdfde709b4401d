"""French captions: gender and number agreement, "petit"/"grand" before the noun, colour after.

"orange" is invariable ("des croix orange"); "de" + "un/une" elides to "d'un/d'une", and
landmarks of a relation are always singular, so "de" never meets "deux/trois".
"""

from __future__ import annotations

from . import common
from .common import Choices, Item, Plan, Query, with_position
from .common import romance_adjective as A

NOUNS = {  # shape -> synonyms as (gender, singular, plural)
    "circle": [("m", "cercle", "cercles"), ("m", "rond", "ronds"), ("m", "disque", "disques")],
    "square": [("m", "carré", "carrés")],
    "triangle": [("m", "triangle", "triangles")],
    "star": [("f", "étoile", "étoiles")],
    "heart": [("m", "cœur", "cœurs")],
    "cross": [("f", "croix", "croix"), ("m", "signe plus", "signes plus")],
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
    "large": [A("grand", "grande", "grands", "grandes"), A("gros", "grosse", "gros", "grosses")],
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
    "striped": ["rayé"], "checkered": ["à carreaux", "en damier"],
}
TEMPLATES = [
    "{items} sur un fond {bg}.",
    "Il y a {items} sur un fond {bg}.",
    "Un fond {bg} avec {items}.",
    "Une image montrant {items} sur fond {bg}.",
]


QUERY_FORMS = {
    "phrase": ["{tb}", "{t}", "image avec {t}", "photo avec {t}"],
    "sentence": ["Il y a {t}.", "On voit {t}.", "L'image montre {t}."],
    "question": ["Y a-t-il {t} ?", "Est-ce qu'il y a {t} ?", "Tu as une image avec {t} ?"],
    "request": ["Montre-moi {t}.", "Trouve {t}.", "Cherche une image avec {t}."],
}
# Option indices that training text never uses; only the typed-query test split does.
HELD_OUT = {
    "shape:circle": {2}, "shape:cross": {1}, "size:large": {1},
    "form:phrase": {3}, "form:sentence": {2}, "form:question": {2}, "form:request": {2},
}


def noun_phrase(item: Item, choose: Choices, article: bool = True) -> str:
    gender, singular, plural = choose(f"shape:{item.shape}", NOUNS[item.shape])
    key = (gender, item.count > 1)
    words = [DETERMINERS[item.count, gender]] if article or item.count > 1 else []
    if item.size is not None:
        words.append(choose(f"size:{item.size}", SIZES[item.size])[key])
    words.append(singular if item.count == 1 else plural)
    if item.colour is not None:
        words.append(choose(f"colour:{item.colour}", COLOURS[item.colour])[key])
    return with_position(words, item, choose, POSITIONS)


def describe(plan: Plan, choose: Choices) -> str:
    return common.describe(
        plan, choose, noun_phrase, RELATIONS, BACKGROUNDS, TEMPLATES, " et ",
        # No space after the relation: its "d'" is elided onto the landmark's "un/une".
        related=lambda s, rel, l: f"{noun_phrase(s, choose)} {rel}{noun_phrase(l, choose)}")


def query(q: Query, choose: Choices) -> str:
    return common.noun_first_query(q, choose, QUERY_FORMS, noun_phrase, BACKGROUNDS,
                                   lambda bg, article: f"un fond {bg}" if article else f"fond {bg}", "sur fond {bg}",
                                   relations=RELATIONS, conjunction=" et ",
                                   relation_pattern="{s} {rel}{l}")  # "d'" elided onto "un/une"

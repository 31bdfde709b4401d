"""German captions, with gender and case agreement.

Noun phrases are needed in three cases: nominative (subject), accusative ("Das Bild zeigt
einen ..."), dative (after "mit", "links von", "über", "unter"; "auf grauem Hintergrund").
Adjectives after "ein" take the mixed endings; after a numeral (no article) the strong
plural endings. "orange" and "lila" are avoided because their declined forms are
colloquial; "orangefarben" and "violett" decline regularly.
"""

from __future__ import annotations

from dataclasses import dataclass

from .common import (
    Choices,
    Item,
    Plan,
    Query,
    capitalise,
    case_statement,
    objects_phrase,
    query_text,
    size_and_colour,
    with_position,
)


@dataclass(frozen=True)
class Noun:
    gender: str  # "m", "f" or "n"
    singular: str
    plural: str
    dative_singular: str | None = None  # only where it differs (das Herz, dem Herzen)

    def form(self, case: str, count: int) -> str:
        if count == 1:
            return self.dative_singular if case == "dat" and self.dative_singular else self.singular
        # Dative plural adds -n unless the plural already ends in -n or -s.
        if case == "dat" and not self.plural.endswith(("n", "s")):
            return self.plural + "n"
        return self.plural


NOUNS = {
    "circle": [Noun("m", "Kreis", "Kreise"), Noun("f", "Scheibe", "Scheiben")],
    "square": [Noun("n", "Quadrat", "Quadrate"), Noun("n", "Viereck", "Vierecke")],
    "triangle": [Noun("n", "Dreieck", "Dreiecke")],
    "star": [Noun("m", "Stern", "Sterne")],
    "heart": [Noun("n", "Herz", "Herzen", dative_singular="Herzen")],
    "cross": [Noun("n", "Kreuz", "Kreuze"), Noun("n", "Pluszeichen", "Pluszeichen")],
    "hexagon": [Noun("n", "Sechseck", "Sechsecke")],
    "diamond": [Noun("f", "Raute", "Rauten"), Noun("m", "Rhombus", "Rhomben")],
}
# Adjective stems; the ending is added by agreement.
COLOURS = {
    "red": ["rot"], "green": ["grün"], "blue": ["blau"], "yellow": ["gelb"],
    "orange": ["orangefarben"], "purple": ["violett"], "white": ["weiß"], "black": ["schwarz"],
}
SIZES = {"small": ["klein", "winzig"], "large": ["groß", "riesig"]}
NUMERALS = {2: "zwei", 3: "drei"}
ARTICLE = {  # (case, gender) -> indefinite article
    ("nom", "m"): "ein", ("nom", "n"): "ein", ("nom", "f"): "eine",
    ("acc", "m"): "einen", ("acc", "n"): "ein", ("acc", "f"): "eine",
    ("dat", "m"): "einem", ("dat", "n"): "einem", ("dat", "f"): "einer",
}
MIXED = {  # adjective ending after ein/einen/einem/einer
    ("nom", "m"): "er", ("nom", "n"): "es", ("nom", "f"): "e",
    ("acc", "m"): "en", ("acc", "n"): "es", ("acc", "f"): "e",
    ("dat", "m"): "en", ("dat", "n"): "en", ("dat", "f"): "en",
}
STRONG_PLURAL = {"nom": "e", "acc": "e", "dat": "en"}  # after zwei/drei
POSITIONS = {
    "left": ["links"], "right": ["rechts"], "top": ["oben"], "bottom": ["unten"],
    "centre": ["in der Mitte", "mittig"],
}
RELATIONS = {  # preposition and case: all take the dative here (location, not direction)
    "left_of": [("links von", "dat"), ("links neben", "dat")],
    "right_of": [("rechts von", "dat"), ("rechts neben", "dat")],
    "above": [("über", "dat")], "below": [("unter", "dat")],
}
BACKGROUNDS = {  # adjective stems for "Hintergrund" (masculine)
    "white": ["weiß"], "grey": ["grau"], "black": ["schwarz"],
    "striped": ["gestreift"], "checkered": ["kariert"],
}
# "Hintergrund" in the dative, without article (strong -em) or after "einem" (-en).
BACKGROUND_PHRASES = ["auf {a}em Hintergrund", "vor einem {a}en Hintergrund"]
TEMPLATES = [  # (template, case of the listed noun phrases)
    ("{items} {bg}.", "nom"),
    ("Das Bild zeigt {items} {bg}.", "acc"),
    ("Ein {a}er Hintergrund mit {items}.", "dat"),
    ("Zu sehen {verb} {items} {bg}.", "nom"),
    ("{bg} {verb} {items} zu sehen.", "nom"),
]


QUERY_FORMS = {  # (template, case of the target noun phrase)
    "phrase": [("{tb}", "nom"), ("{t}", "nom"), ("Bild mit {t}", "dat"), ("Foto mit {t}", "dat")],
    "sentence": [("Es gibt {t}.", "acc"), ("Da {verb} {t}.", "nom"), ("Im Bild {verb} {t}.", "nom")],
    "question": [("Gibt es {t}?", "acc"), ("{Verb} da {t}?", "nom"), ("Hast du ein Bild mit {t}?", "dat")],
    "request": [("Zeig mir {t}.", "acc"), ("Finde {t}.", "acc"), ("Such mir ein Bild mit {t}.", "dat")],
}
# Option indices that training text never uses; only the typed-query test split does.
HELD_OUT = {
    "shape:circle": {1}, "shape:cross": {1}, "size:small": {1}, "size:large": {1},
    "form:phrase": {3}, "form:sentence": {2}, "form:question": {2}, "form:request": {2},
}


def noun_phrase(item: Item, case: str, choose: Choices, article: bool = True) -> str:
    """Without ``article`` (bare typed queries, nominative only) the mixed endings stay:
    in the nominative they equal the strong ones ("roter Stern", "rotes Herz")."""
    noun = choose(f"shape:{item.shape}", NOUNS[item.shape])
    adjectives = size_and_colour(item, choose, SIZES, COLOURS)
    if item.count == 1:
        ending = MIXED[case, noun.gender]
        words = [ARTICLE[case, noun.gender]] if article else []
    else:
        ending = STRONG_PLURAL[case]
        words = [NUMERALS[item.count]]
    words += [a + ending for a in adjectives] + [noun.form(case, item.count)]
    return with_position(words, item, choose, POSITIONS)


def describe(plan: Plan, choose: Choices) -> str:
    template, case = choose("template", TEMPLATES)
    items = case_statement(plan, choose, noun_phrase, RELATIONS, case, " und ")
    a = choose(f"background:{plan.background}", BACKGROUNDS[plan.background])
    bg = choose("background_phrase", BACKGROUND_PHRASES).format(a=a)
    verb = "sind" if plan.plural_subject else "ist"
    return capitalise(template.format(items=items, bg=bg, a=a, verb=verb))


def query(q: Query, choose: Choices) -> str:
    def target(case: str, article: bool) -> str:
        if q.item is None:  # "ein schwarzer Hintergrund" (masculine)
            a = choose(f"background:{q.background}", BACKGROUNDS[q.background]) + MIXED[case, "m"]
            return f"{ARTICLE[case, 'm']} {a} Hintergrund" if article else f"{a} Hintergrund"
        # A relation's landmark keeps its article: the dative after "links von" needs it.
        text = objects_phrase(q, choose, lambda item: noun_phrase(item, case, choose, article), RELATIONS,
                              lambda s, rel, l: f"{noun_phrase(s, case, choose, article)} {rel[0]} "
                                                f"{noun_phrase(l, rel[1], choose)}", " und ")
        if q.background is not None:
            a = choose(f"background:{q.background}", BACKGROUNDS[q.background])
            text += " " + choose("background_phrase", BACKGROUND_PHRASES).format(a=a)
        return text

    verb = "sind" if q.plural_subject else "ist"
    return query_text(q, choose, QUERY_FORMS, target, verb=verb, Verb=verb.capitalize())

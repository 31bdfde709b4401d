"""Czech captions: gender, case and number agreement; no articles.

Cases used: nominative, accusative ("Obrázek zachycuje malou červenou hvězdu"), genitive
after "vlevo od"/"vpravo od", instrumental after "nad"/"pod"/"s", locative of the background
("na šedém pozadí"). All nouns here are inanimate, so plural accusative equals nominative,
and all adjectives are of the hard type (-ý). After "dva/dvě/tři" the noun stands in the
nominative plural; "dva" is masculine, "dvě" feminine and neuter.
"""

from __future__ import annotations

from dataclasses import dataclass

from .common import Choices, Item, Plan, Query, capitalise, case_statement, objects_phrase, query_text, with_position


@dataclass(frozen=True)
class Noun:
    gender: str  # "m" (inanimate), "f" or "n"
    nom: str
    acc: str
    gen: str
    ins: str
    nom_pl: str
    ins_pl: str

    def form(self, case: str, count: int) -> str:
        if count == 1:
            return getattr(self, case)
        return self.ins_pl if case == "ins" else self.nom_pl  # acc pl = nom pl (inanimate)


NOUNS = {
    "circle": [Noun("m", "kruh", "kruh", "kruhu", "kruhem", "kruhy", "kruhy"),
               Noun("n", "kolečko", "kolečko", "kolečka", "kolečkem", "kolečka", "kolečky")],
    "square": [Noun("m", "čtverec", "čtverec", "čtverce", "čtvercem", "čtverce", "čtverci")],
    "triangle": [Noun("m", "trojúhelník", "trojúhelník", "trojúhelníku", "trojúhelníkem",
                      "trojúhelníky", "trojúhelníky")],
    "star": [Noun("f", "hvězda", "hvězdu", "hvězdy", "hvězdou", "hvězdy", "hvězdami"),
             Noun("f", "hvězdička", "hvězdičku", "hvězdičky", "hvězdičkou", "hvězdičky", "hvězdičkami")],
    "heart": [Noun("n", "srdce", "srdce", "srdce", "srdcem", "srdce", "srdci"),
              Noun("n", "srdíčko", "srdíčko", "srdíčka", "srdíčkem", "srdíčka", "srdíčky")],
    "cross": [Noun("m", "kříž", "kříž", "kříže", "křížem", "kříže", "kříži")],
    "hexagon": [Noun("m", "šestiúhelník", "šestiúhelník", "šestiúhelníku", "šestiúhelníkem",
                     "šestiúhelníky", "šestiúhelníky")],
    "diamond": [Noun("m", "kosočtverec", "kosočtverec", "kosočtverce", "kosočtvercem",
                     "kosočtverce", "kosočtverci")],
}
# Hard adjective stems; endings below.
COLOURS = {
    "red": ["červen"], "green": ["zelen"], "blue": ["modr"], "yellow": ["žlut"],
    "orange": ["oranžov"], "purple": ["fialov"], "white": ["bíl"], "black": ["čern"],
}
SIZES = {"small": ["mal"], "large": ["velk"]}
SINGULAR = {  # hard adjective endings, (case, gender)
    ("nom", "m"): "ý", ("nom", "f"): "á", ("nom", "n"): "é",
    ("acc", "m"): "ý", ("acc", "f"): "ou", ("acc", "n"): "é",
    ("gen", "m"): "ého", ("gen", "f"): "é", ("gen", "n"): "ého",
    ("ins", "m"): "ým", ("ins", "f"): "ou", ("ins", "n"): "ým",
}
PLURAL = {
    ("nom", "m"): "é", ("nom", "f"): "é", ("nom", "n"): "á",
    ("acc", "m"): "é", ("acc", "f"): "é", ("acc", "n"): "á",
    ("ins", "m"): "ými", ("ins", "f"): "ými", ("ins", "n"): "ými",
}
NUMERALS = {  # (count, case, gender)
    (2, "nom", "m"): "dva", (2, "nom", "f"): "dvě", (2, "nom", "n"): "dvě",
    (2, "acc", "m"): "dva", (2, "acc", "f"): "dvě", (2, "acc", "n"): "dvě",
    (3, "nom", "m"): "tři", (3, "nom", "f"): "tři", (3, "nom", "n"): "tři",
    (3, "acc", "m"): "tři", (3, "acc", "f"): "tři", (3, "acc", "n"): "tři",
    (2, "ins", "m"): "dvěma", (2, "ins", "f"): "dvěma", (2, "ins", "n"): "dvěma",
    (3, "ins", "m"): "třemi", (3, "ins", "f"): "třemi", (3, "ins", "n"): "třemi",
}
POSITIONS = {
    "left": ["vlevo", "nalevo"], "right": ["vpravo", "napravo"], "top": ["nahoře"],
    "bottom": ["dole"], "centre": ["uprostřed"],
}
RELATIONS = {  # preposition and the case it governs
    "left_of": [("vlevo od", "gen"), ("nalevo od", "gen")],
    "right_of": [("vpravo od", "gen"), ("napravo od", "gen")],
    "above": [("nad", "ins")], "below": [("pod", "ins")],
}
BACKGROUNDS = {  # hard adjective stems agreeing with "pozadí" (neuter)
    "white": ["bíl"], "grey": ["šed"], "black": ["čern"],
    "striped": ["pruhovan"], "checkered": ["kostkovan"],
}
TEMPLATES = [  # (template, case of the listed noun phrases); {a} is the background stem
    ("{items} na {a}ém pozadí.", "nom"),
    ("Obrázek zachycuje {items} na {a}ém pozadí.", "acc"),
    ("{a}é pozadí {items}.", "ins"),  # items get "s"/"se" in front
    ("Na {a}ém pozadí {verb} {items}.", "nom"),
]
# "s" becomes "se" before s/z/š/ž and before the numerals "dvěma", "třemi".
VOCALISE_S_BEFORE = ("s", "z", "š", "ž", "dvěma", "třemi")


QUERY_FORMS = {  # (template, case of the target); an instrumental target comes with "s"/"se"
    "phrase": [("{t}", "nom"), ("obrázek {t}", "ins"), ("fotka {t}", "ins")],
    "sentence": [("{Verb} tam {t}.", "nom"), ("Na obrázku {verb} {t}.", "nom"), ("Vidím {t}.", "acc")],
    "question": [("{Verb} tam {t}?", "nom"), ("{Verb} na obrázku {t}?", "nom"), ("Máš obrázek {t}?", "ins")],
    "request": [("Ukaž mi {t}.", "acc"), ("Najdi {t}.", "acc"), ("Najdi mi obrázek {t}.", "ins")],
}
# Option indices that training text never uses; only the typed-query test split does.
HELD_OUT = {
    "shape:star": {1}, "shape:heart": {1},
    "form:phrase": {2}, "form:sentence": {2}, "form:question": {2}, "form:request": {2},
}


def noun_phrase(item: Item, case: str, choose: Choices, article: bool = True) -> str:
    """``article`` is ignored (Czech has none); it keeps the signature of the other languages."""
    noun = choose(f"shape:{item.shape}", NOUNS[item.shape])
    endings = SINGULAR if item.count == 1 else PLURAL
    words = [] if item.count == 1 else [NUMERALS[item.count, case, noun.gender]]
    if item.size is not None:
        words.append(choose(f"size:{item.size}", SIZES[item.size]) + endings[case, noun.gender])
    if item.colour is not None:
        words.append(choose(f"colour:{item.colour}", COLOURS[item.colour]) + endings[case, noun.gender])
    words.append(noun.form(case, item.count))
    return with_position(words, item, choose, POSITIONS)


def with_s(phrase: str) -> str:
    """The preposition "s" before an instrumental, vocalised to "se" where Czech needs it."""
    return ("se " if phrase.startswith(VOCALISE_S_BEFORE) else "s ") + phrase


def describe(plan: Plan, choose: Choices) -> str:
    template, case = choose("template", TEMPLATES)
    items = case_statement(plan, choose, noun_phrase, RELATIONS, case, " a ")
    if case == "ins":
        items = with_s(items)
    a = choose(f"background:{plan.background}", BACKGROUNDS[plan.background])
    verb = "jsou" if plan.plural_subject else "je"
    return capitalise(template.format(items=items, a=a, verb=verb))


# "pozadí" (neuter) in the cases a query needs: nominative/accusative -é, instrumental -ým ... -ím.
BACKGROUND_NP = {"nom": "{a}é pozadí", "acc": "{a}é pozadí", "ins": "{a}ým pozadím"}


def query(q: Query, choose: Choices) -> str:
    def target(case: str, _article) -> str:
        if q.item is None:
            a = choose(f"background:{q.background}", BACKGROUNDS[q.background])
            text = BACKGROUND_NP[case].format(a=a)
        else:
            text = objects_phrase(q, choose, lambda item: noun_phrase(item, case, choose), RELATIONS,
                                  lambda s, rel, l: f"{noun_phrase(s, case, choose)} {rel[0]} "
                                                    f"{noun_phrase(l, rel[1], choose)}", " a ")
            if q.background is not None:
                text += f" na {choose(f'background:{q.background}', BACKGROUNDS[q.background])}ém pozadí"
        return with_s(text) if case == "ins" else text

    verb = "jsou" if q.plural_subject else "je"
    return query_text(q, choose, QUERY_FORMS, target, verb=verb, Verb=verb.capitalize())

"""Russian captions: gender, case and number agreement; no articles.

Cases used: nominative, genitive after "слева от"/"справа от", instrumental after
"над"/"под", prepositional for the background ("на сером фоне"). After "два/две/три" the
noun takes the genitive singular; the adjective the genitive plural with masculine and
neuter nouns ("два маленьких красных круга") and, as the norm recommends for feminine
nouns, the nominative plural ("две маленькие красные звезды"). "два" is masculine and
neuter, "две" feminine.
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
    nom: str
    gen: str
    ins: str
    acc_f: str | None = None  # accusative of a feminine noun; inanimate m/n ones equal the nominative

    @property
    def acc(self) -> str:
        return self.acc_f or self.nom


NOUNS = {
    "circle": [Noun("m", "круг", "круга", "кругом"), Noun("m", "кружок", "кружка", "кружком")],
    "square": [Noun("m", "квадрат", "квадрата", "квадратом")],
    "triangle": [Noun("m", "треугольник", "треугольника", "треугольником")],
    "star": [Noun("f", "звезда", "звезды", "звездой", "звезду"),
             Noun("f", "звёздочка", "звёздочки", "звёздочкой", "звёздочку")],
    "heart": [Noun("n", "сердце", "сердца", "сердцем"), Noun("n", "сердечко", "сердечка", "сердечком")],
    "cross": [Noun("m", "крест", "креста", "крестом")],
    "hexagon": [Noun("m", "шестиугольник", "шестиугольника", "шестиугольником")],
    "diamond": [Noun("m", "ромб", "ромба", "ромбом")],
}
# Adjective declension types: endings for (case, gender), plus "pl_nom", "pl_gen".
# hard: красный; soft: синий; velar: маленький; stressed: большой.
DECLENSIONS = {
    "hard": {("nom", "m"): "ый", ("nom", "f"): "ая", ("nom", "n"): "ое",
             ("gen", "m"): "ого", ("gen", "f"): "ой", ("gen", "n"): "ого",
             ("ins", "m"): "ым", ("ins", "f"): "ой", ("ins", "n"): "ым",
             ("prep", "m"): "ом", ("acc", "f"): "ую", "pl_nom": "ые", "pl_gen": "ых"},
    "soft": {("nom", "m"): "ий", ("nom", "f"): "яя", ("nom", "n"): "ее",
             ("gen", "m"): "его", ("gen", "f"): "ей", ("gen", "n"): "его",
             ("ins", "m"): "им", ("ins", "f"): "ей", ("ins", "n"): "им",
             ("prep", "m"): "ем", ("acc", "f"): "юю", "pl_nom": "ие", "pl_gen": "их"},
    "velar": {("nom", "m"): "ий", ("nom", "f"): "ая", ("nom", "n"): "ое",
              ("gen", "m"): "ого", ("gen", "f"): "ой", ("gen", "n"): "ого",
              ("ins", "m"): "им", ("ins", "f"): "ой", ("ins", "n"): "им",
              ("prep", "m"): "ом", ("acc", "f"): "ую", "pl_nom": "ие", "pl_gen": "их"},
    "stressed": {("nom", "m"): "ой", ("nom", "f"): "ая", ("nom", "n"): "ое",
                 ("gen", "m"): "ого", ("gen", "f"): "ой", ("gen", "n"): "ого",
                 ("ins", "m"): "им", ("ins", "f"): "ой", ("ins", "n"): "им",
                 ("prep", "m"): "ом", ("acc", "f"): "ую", "pl_nom": "ие", "pl_gen": "их"},
}
COLOURS = {  # (stem, declension)
    "red": [("красн", "hard")], "green": [("зелён", "hard")], "blue": [("син", "soft")],
    "yellow": [("жёлт", "hard")], "orange": [("оранжев", "hard")],
    "purple": [("фиолетов", "hard")], "white": [("бел", "hard")], "black": [("чёрн", "hard")],
}
SIZES = {"small": [("маленьк", "velar")], "large": [("больш", "stressed")]}
NUMERALS = {(2, "m"): "два", (2, "n"): "два", (2, "f"): "две",
            (3, "m"): "три", (3, "n"): "три", (3, "f"): "три"}
POSITIONS = {
    "left": ["слева"], "right": ["справа"], "top": ["вверху"],
    "bottom": ["внизу"], "centre": ["в центре", "посередине"],
}
RELATIONS = {  # preposition and the case it governs
    "left_of": [("слева от", "gen")], "right_of": [("справа от", "gen")],
    "above": [("над", "ins")], "below": [("под", "ins")],
}
BACKGROUNDS = {  # agreeing with "фон" (masculine), prepositional "на ... фоне"
    "white": [("бел", "hard")], "grey": [("сер", "hard")], "black": [("чёрн", "hard")],
    "striped": [("полосат", "hard")], "checkered": [("клетчат", "hard")],
}
# Short participle agreeing with the subject: "нарисован круг", "нарисована звезда".
DRAWN = {"m": "нарисован", "f": "нарисована", "n": "нарисовано", "pl": "нарисованы"}
TEMPLATES = [
    "{items} на {bg} фоне.",
    "На {bg} фоне {items}.",
    "На {bg} фоне {drawn} {items}.",
    "На картинке {items} на {bg} фоне.",
]


QUERY_FORMS = {  # (template, case of the target)
    "phrase": [("{t}", "nom"), ("картинка, на которой {t}", "nom"), ("изображение, где есть {t}", "nom")],
    "sentence": [("На картинке {t}.", "nom"), ("Здесь есть {t}.", "nom"), ("Я вижу {t}.", "acc")],
    "question": [("Есть ли {t}?", "nom"), ("Есть {t}?", "nom"), ("Есть ли картинка, на которой {t}?", "nom")],
    "request": [("Покажи {t}.", "acc"), ("Найди {t}.", "acc"), ("Найди мне картинку, где есть {t}.", "nom")],
}
# Option indices that training text never uses; only the typed-query test split does.
HELD_OUT = {
    "shape:star": {1}, "shape:heart": {1},
    "form:phrase": {2}, "form:sentence": {2}, "form:question": {2}, "form:request": {2},
}


def adjective(stem_and_type: tuple[str, str], key) -> str:
    stem, declension = stem_and_type
    if key[0] == "acc":  # inanimate: the accusative equals the nominative except feminine singular
        key = ("acc", "f") if key[1] == "f" else ("nom", key[1])
    return stem + DECLENSIONS[declension][key]


def noun_phrase(item: Item, case: str, choose: Choices, article: bool = True) -> str:
    """Singular in any case; counted groups in the nominative or (equal for inanimate
    nouns) the accusative. ``article`` is ignored: Russian has none."""
    noun = choose(f"shape:{item.shape}", NOUNS[item.shape])
    adjectives = size_and_colour(item, choose, SIZES, COLOURS)
    if item.count == 1:
        words = [adjective(a, (case, noun.gender)) for a in adjectives] + [getattr(noun, case)]
    else:
        assert case in ("nom", "acc"), "counted groups are subjects or objects"
        key = "pl_nom" if noun.gender == "f" else "pl_gen"
        words = ([NUMERALS[item.count, noun.gender]] + [adjective(a, key) for a in adjectives]
                 + [noun.gen])
    return with_position(words, item, choose, POSITIONS)


def describe(plan: Plan, choose: Choices) -> str:
    items = case_statement(plan, choose, noun_phrase, RELATIONS, "nom", " и ")
    if plan.plural_subject:
        drawn = DRAWN["pl"]
    else:
        drawn = DRAWN[choose(f"shape:{plan.items[0].shape}", NOUNS[plan.items[0].shape]).gender]
    bg = adjective(choose(f"background:{plan.background}", BACKGROUNDS[plan.background]), ("prep", "m"))
    return capitalise(choose("template", TEMPLATES).format(items=items, bg=bg, drawn=drawn))


def query(q: Query, choose: Choices) -> str:
    def target(case: str, _article) -> str:
        if q.item is None:  # "фон" is masculine inanimate: accusative = nominative
            return adjective(choose(f"background:{q.background}", BACKGROUNDS[q.background]), ("nom", "m")) + " фон"
        text = objects_phrase(q, choose, lambda item: noun_phrase(item, case, choose), RELATIONS,
                              lambda s, rel, l: f"{noun_phrase(s, case, choose)} {rel[0]} "
                                                f"{noun_phrase(l, rel[1], choose)}", " и ")
        if q.background is not None:
            bg = adjective(choose(f"background:{q.background}", BACKGROUNDS[q.background]), ("prep", "m"))
            text += f" на {bg} фоне"
        return text

    return query_text(q, choose, QUERY_FORMS, target)

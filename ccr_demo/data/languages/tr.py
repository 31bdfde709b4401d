"""Turkish captions: head-final noun phrases, no plural after numerals.

"küçük kırmızı bir daire" (adjectives before "bir"), "iki küçük kırmızı daire" (numeral
first, noun singular). Positions come first as locatives ("solda ..."); a relation puts the
landmark in the genitive with a possessive locative postposition ("bir karenin solunda").
Genitives are written out because of consonant alternation (kalp -> kalbin, yuvarlak ->
yuvarlağın). Sentence-initial "i" capitalises to dotted "İ".
"""

from __future__ import annotations

from . import common
from .common import Choices, Item, Plan, Query, query_text

NOUNS = {  # shape -> synonyms as (nominative, genitive)
    "circle": [("daire", "dairenin"), ("yuvarlak", "yuvarlağın"), ("çember", "çemberin")],
    "square": [("kare", "karenin")],
    "triangle": [("üçgen", "üçgenin")],
    "star": [("yıldız", "yıldızın")],
    "heart": [("kalp", "kalbin")],
    "cross": [("artı işareti", "artı işaretinin"), ("artı", "artının")],
    "hexagon": [("altıgen", "altıgenin")],
    "diamond": [("eşkenar dörtgen", "eşkenar dörtgenin"), ("baklava dilimi", "baklava diliminin")],
}
COLOURS = {
    "red": ["kırmızı"], "green": ["yeşil"], "blue": ["mavi"], "yellow": ["sarı"],
    "orange": ["turuncu"], "purple": ["mor"], "white": ["beyaz"], "black": ["siyah"],
}
SIZES = {"small": ["küçük"], "large": ["büyük"]}
NUMERALS = {2: "iki", 3: "üç"}
POSITIONS = {
    "left": ["solda"], "right": ["sağda"], "top": ["yukarıda", "üst kısımda"],
    "bottom": ["aşağıda", "alt kısımda"], "centre": ["ortada"],
}
RELATIONS = {  # postpositions after a genitive landmark
    "left_of": ["solunda"], "right_of": ["sağında"], "above": ["üstünde"], "below": ["altında"],
}
BACKGROUNDS = {
    "white": ["beyaz"], "grey": ["gri"], "black": ["siyah"],
    "striped": ["çizgili"], "checkered": ["damalı"],
}
TEMPLATES = [
    "{bg} arka planda {items} var.",
    "{bg} bir zemin üzerinde {items}.",
    "{items}, {bg} arka plan üzerinde.",
    "Resimde {bg} arka plan üzerinde {items} görülüyor.",
]


QUERY_FORMS = {
    "phrase": ["{tb}", "{tb} olan resim", "{tb} olan fotoğraf"],
    "sentence": ["{t} var.", "Resimde {t} var.", "{t} görülüyor."],
    "question": ["{t} var mı?", "Resimde {t} var mı?", "{tb} olan bir resim var mı?"],
    "request": ["{t} göster.", "Bana {t} göster.", "{tb} olan bir resim bul."],
}
# Option indices that training text never uses; only the typed-query test split does.
HELD_OUT = {
    "shape:circle": {2}, "shape:cross": {1}, "shape:diamond": {1},
    "form:phrase": {2}, "form:sentence": {2}, "form:question": {2}, "form:request": {2},
}


def noun_phrase(item: Item, choose: Choices, genitive: bool = False, article: bool = True) -> str:
    nominative, gen = choose(f"shape:{item.shape}", NOUNS[item.shape])
    size = choose(f"size:{item.size}", SIZES[item.size]) if item.size is not None else None
    colour = choose(f"colour:{item.colour}", COLOURS[item.colour]) if item.colour is not None else None
    noun = gen if genitive else nominative
    if item.count == 1:
        words = [w for w in (size, colour, "bir" if article else None, noun) if w]
    else:
        words = [w for w in (NUMERALS[item.count], size, colour, noun) if w]
    if item.position is not None:
        words.insert(0, choose(f"position:{item.position}", POSITIONS[item.position]))
    return " ".join(words)


def capitalise(text: str) -> str:
    """Turkish casing: i -> İ, ı -> I."""
    first = {"i": "İ", "ı": "I"}.get(text[:1], text[:1].upper())
    return first + text[1:]


def describe(plan: Plan, choose: Choices) -> str:
    return common.describe(
        plan, choose, noun_phrase, RELATIONS, BACKGROUNDS, TEMPLATES, " ve ", capitalise=capitalise,
        # Head-final: the genitive landmark and its postposition come before the subject.
        related=lambda s, rel, l: f"{noun_phrase(l, choose, genitive=True)} {rel} {noun_phrase(s, choose)}")


def query(q: Query, choose: Choices) -> str:
    def target(_case, article: bool) -> str:
        if q.item is None:
            return f"{choose(f'background:{q.background}', BACKGROUNDS[q.background])} arka plan"

        def related(subject: Item, rel: str, landmark: Item) -> str:
            # head-final, as in describe: the genitive landmark and its postposition come first;
            # a bare phrase drops "bir" on both objects ("mavi yıldızın solunda kırmızı kare")
            owner = noun_phrase(landmark, choose, genitive=True, article=article)
            return f"{owner} {rel} {noun_phrase(subject, choose, article=article)}"

        text = common.objects_phrase(q, choose, lambda item: noun_phrase(item, choose, article=article), RELATIONS,
                                     related, " ve ")
        if q.background is not None:
            text = f"{choose(f'background:{q.background}', BACKGROUNDS[q.background])} arka planda {text}"
        return text

    return query_text(q, choose, QUERY_FORMS, target, capitalise=capitalise)

"""Exact typed-query wordings, one table per language, written by hand from each grammar.

They pin what partial captions add to the full-caption grammar (test_grammar.py): an
attribute left out, the article people drop in a bare phrase, the case a question or a
request governs (de accusative after "es gibt"/"zeig mir", cs/ru accusative and
instrumental), question particles and word order (ja か, zh 吗/有没有, tr mı, fr
inversion, es ¿?), counts, and the background alone. Choices are fixed (option 0 unless
named), so every string is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

from ccr_demo import LANGUAGES
from ccr_demo.data.languages import FORMS, GRAMMARS, Choices, Item, Query, describe_query

RED_STAR = Query(Item("star", "red", None), None, "question")
SMALL_PURPLE_HEART = Query(Item("heart", "purple", "small"), None, "request")
TWO_GREEN_CIRCLES = Query(Item("circle", "green", None, 2), None, "question")
BLUE_CROSS_LEFT = Query(Item("cross", "blue", None, 1, "left"), None, "sentence")
STRIPED = Query(None, "striped", "phrase")
RED_STAR_REQUEST = Query(Item("star", "red", None), None, "request")

CASES = {
    "en": [
        (RED_STAR, {}, "Is there a red star?"),
        (SMALL_PURPLE_HEART, {}, "Show me a small purple heart."),
        (TWO_GREEN_CIRCLES, {}, "Are there two green circles?"),
        (BLUE_CROSS_LEFT, {}, "There is a blue cross on the left."),
        (STRIPED, {}, "striped background"),
        (Query(Item("star", "orange", None), None, "sentence"), {}, "There is an orange star."),
        (Query(Item("circle", None, None), None, "phrase"), {"form:phrase": 1}, "a circle"),
    ],
    "de": [
        (RED_STAR, {}, "Gibt es einen roten Stern?"),
        (SMALL_PURPLE_HEART, {}, "Zeig mir ein kleines violettes Herz."),
        (TWO_GREEN_CIRCLES, {}, "Gibt es zwei grüne Kreise?"),
        (TWO_GREEN_CIRCLES, {"form:question": 1}, "Sind da zwei grüne Kreise?"),
        (BLUE_CROSS_LEFT, {}, "Es gibt ein blaues Kreuz links."),
        (STRIPED, {}, "gestreifter Hintergrund"),
        (Query(Item("star", "red", None), None, "phrase"), {"form:phrase": 2}, "Bild mit einem roten Stern"),
        (Query(Item("diamond", "red", None), None, "phrase"), {}, "rote Raute"),
    ],
    "fr": [
        (RED_STAR, {}, "Y a-t-il une étoile rouge ?"),
        (SMALL_PURPLE_HEART, {}, "Montre-moi un petit cœur violet."),
        (TWO_GREEN_CIRCLES, {}, "Y a-t-il deux cercles verts ?"),
        (BLUE_CROSS_LEFT, {}, "Il y a une croix bleue à gauche."),
        (STRIPED, {}, "fond rayé"),
    ],
    "es": [
        (RED_STAR, {}, "¿Hay una estrella roja?"),
        (SMALL_PURPLE_HEART, {}, "Muéstrame un corazón morado pequeño."),
        (TWO_GREEN_CIRCLES, {}, "¿Hay dos círculos verdes?"),
        (BLUE_CROSS_LEFT, {}, "Hay una cruz azul a la izquierda."),
        (STRIPED, {}, "fondo a rayas"),
    ],
    "cs": [
        (RED_STAR, {}, "Je tam červená hvězda?"),
        (RED_STAR_REQUEST, {}, "Ukaž mi červenou hvězdu."),
        (SMALL_PURPLE_HEART, {}, "Ukaž mi malé fialové srdce."),
        (TWO_GREEN_CIRCLES, {}, "Jsou tam dva zelené kruhy?"),
        (Query(Item("circle", "green", None, 2), None, "phrase"), {"form:phrase": 1},
         "obrázek se dvěma zelenými kruhy"),
        (BLUE_CROSS_LEFT, {}, "Je tam modrý kříž vlevo."),
        (STRIPED, {}, "pruhované pozadí"),
    ],
    "ru": [
        (RED_STAR, {}, "Есть ли красная звезда?"),
        (RED_STAR_REQUEST, {}, "Покажи красную звезду."),
        (Query(Item("star", "blue", "small"), None, "request"), {}, "Покажи маленькую синюю звезду."),
        (SMALL_PURPLE_HEART, {}, "Покажи маленькое фиолетовое сердце."),
        (TWO_GREEN_CIRCLES, {}, "Есть ли два зелёных круга?"),
        (BLUE_CROSS_LEFT, {}, "На картинке синий крест слева."),
        (STRIPED, {}, "полосатый фон"),
    ],
    "zh": [
        (RED_STAR, {}, "有一颗红色的五角星吗？"),
        (RED_STAR, {"form:question": 1}, "有没有一颗红色的五角星？"),
        (SMALL_PURPLE_HEART, {}, "给我看小的紫色爱心。"),
        (TWO_GREEN_CIRCLES, {}, "有两个绿色的圆形吗？"),
        (BLUE_CROSS_LEFT, {}, "左边有一个蓝色的十字形。"),
        (STRIPED, {}, "条纹的背景"),
    ],
    "ja": [
        (RED_STAR, {}, "赤い星はありますか？"),
        (SMALL_PURPLE_HEART, {}, "小さい紫のハートがある画像を見せて。"),
        (TWO_GREEN_CIRCLES, {}, "緑の丸は二つありますか？"),
        (BLUE_CROSS_LEFT, {}, "左に青い十字があります。"),
        (STRIPED, {}, "縞模様の背景"),
    ],
    "id": [
        (RED_STAR, {}, "Apakah ada sebuah bintang merah?"),
        (SMALL_PURPLE_HEART, {}, "Tunjukkan hati ungu kecil."),
        (TWO_GREEN_CIRCLES, {}, "Apakah ada dua lingkaran hijau?"),
        (BLUE_CROSS_LEFT, {}, "Ada sebuah tanda plus biru di kiri."),
        (STRIPED, {}, "latar belakang bergaris"),
    ],
    "tr": [
        (RED_STAR, {}, "Kırmızı bir yıldız var mı?"),
        (SMALL_PURPLE_HEART, {}, "Küçük mor bir kalp göster."),
        (TWO_GREEN_CIRCLES, {}, "İki yeşil daire var mı?"),
        (BLUE_CROSS_LEFT, {}, "Solda mavi bir artı işareti var."),
        (STRIPED, {}, "çizgili arka plan"),
    ],
}


@pytest.mark.parametrize(
    "lang, query, choice, expected",
    [(lang, *case) for lang, cases in CASES.items() for case in cases],
    ids=[f"{lang}-{i}" for lang, cases in CASES.items() for i in range(len(cases))],
)
def test_exact_query(lang, query, choice, expected):
    assert describe_query(query, lang, choice) == expected


def test_every_language_has_query_cases():
    assert set(CASES) == set(LANGUAGES)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_form_has_held_out_phrasings_and_training_ones(lang):
    grammar = GRAMMARS[lang]
    for form in FORMS:
        held = grammar.HELD_OUT.get(f"form:{form}", set())
        n = len(grammar.QUERY_FORMS[form])
        assert held and 0 not in held and max(held) < n, (lang, form)
        assert n - len(held) >= 2, f"{lang} {form}: training needs at least two phrasings"
    for slot, held in grammar.HELD_OUT.items():
        assert 0 not in held, f"{lang} {slot}: option 0 is the default wording and must stay in training"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_training_draws_never_use_held_out_options_and_the_test_split_uses_held_out_phrasings(lang):
    grammar = GRAMMARS[lang]
    rng = np.random.default_rng(7)
    queries = [Query(Item(s, c, z, n, p), bg, f)
               for s, c, z, n, p, bg in [("circle", "red", "small", 1, None, None), ("cross", None, "large", 1, "left", None),
                                         ("star", "purple", None, 2, None, None), ("heart", "blue", None, 1, None, "black"),
                                         ("diamond", None, None, 1, None, None), ("hexagon", "white", "small", 1, "centre", None)]
               for f in FORMS]
    queries += [Query(None, "checkered", f) for f in FORMS]
    for _ in range(8):
        for q in queries:
            train = Choices(rng=rng, held_out=grammar.HELD_OUT)
            grammar.query(q, train)
            for slot, index in train.made.items():
                assert index not in grammar.HELD_OUT.get(slot, ()), (lang, slot, index)
            test = Choices(rng=rng, held_out=grammar.HELD_OUT, query_test=True)
            grammar.query(q, test)
            assert test.made[f"form:{q.form}"] in grammar.HELD_OUT[f"form:{q.form}"]


def _two_object_queries(form: str) -> list[Query]:
    """One query of each two-object kind (side by side, each in its place, related), plus the
    same shape twice and a relation in each direction."""
    def pair(first: Item, second: Item, relation: str | None = None) -> Query:
        return Query(first, None, form, second=second, relation=relation)

    return [pair(Item("square", "red", None), Item("circle", "blue", None)),
            pair(Item("star", "red", None, 1, "left"), Item("heart", "blue", None, 1, "top")),
            pair(Item("heart", "blue", None, 1, "bottom"), Item("heart", "blue", None, 1, "centre")),
            pair(Item("cross", "white", None), Item("diamond", "orange", None), "right_of"),
            pair(Item("hexagon", "green", None), Item("hexagon", "purple", None), "below")]


@pytest.mark.parametrize("lang", ["zh", "ja"])
def test_no_spaces_in_chinese_and_japanese_queries(lang):
    rng = np.random.default_rng(0)
    for form in FORMS:
        for q in (Query(Item("star", "red", "large", 1, "top"), None, form), Query(Item("circle", "blue", None, 3), None, form),
                  Query(None, "grey", form), Query(Item("heart", None, "small"), "white", form),
                  *_two_object_queries(form)):
            text = describe_query(q, lang, rng)
            assert " " not in text, text


# --- Two objects in one picture ------------------------------------------------------------
TWO = Query(Item("square", "red", None), None, "question", second=Item("circle", "blue", None))
PLACED = Query(Item("star", "red", None, 1, "left"), None, "sentence", second=Item("heart", "blue", None, 1, "top"))
LEFT_OF = Query(Item("square", "red", None), None, "request", second=Item("star", "blue", None), relation="left_of")
LEFT_OF_BARE = Query(Item("square", "red", None), None, "phrase", second=Item("star", "blue", None), relation="left_of")
ABOVE = Query(Item("heart", "green", None), None, "phrase", second=Item("diamond", "purple", None), relation="above")

# Written by hand: agreement with two subjects (de "sind", cs "jsou", es "se ven"), the case a
# relation's landmark takes (de dative, cs/ru genitive after "vlevo od"/"слева от" and
# instrumental after "nad"/"над"), fr elision onto the landmark's article, tr head-final
# genitive landmarks, ja locatives on the landmark, zh clauses and 的 modifiers.
PAIR_CASES = {
    "en": [(TWO, {}, "Is there a red square and a blue circle?"),
           (PLACED, {}, "There is a red star on the left and a blue heart at the top."),
           (LEFT_OF, {}, "Show me a red square to the left of a blue star."),
           (LEFT_OF_BARE, {}, "red square to the left of a blue star")],
    "de": [(TWO, {}, "Gibt es ein rotes Quadrat und einen blauen Kreis?"),
           (TWO, {"form:question": 1}, "Sind da ein rotes Quadrat und ein blauer Kreis?"),
           (PLACED, {}, "Es gibt einen roten Stern links und ein blaues Herz oben."),
           (LEFT_OF, {}, "Zeig mir ein rotes Quadrat links von einem blauen Stern."),
           (ABOVE, {}, "grünes Herz über einer violetten Raute")],
    "fr": [(TWO, {}, "Y a-t-il un carré rouge et un cercle bleu ?"),
           (PLACED, {}, "Il y a une étoile rouge à gauche et un cœur bleu en haut."),
           (LEFT_OF, {}, "Montre-moi un carré rouge à gauche d'une étoile bleue."),
           (ABOVE, {}, "cœur vert au-dessus d'un losange violet")],
    "cs": [(TWO, {}, "Jsou tam červený čtverec a modrý kruh?"),
           (PLACED, {}, "Jsou tam červená hvězda vlevo a modré srdce nahoře."),
           (LEFT_OF, {}, "Ukaž mi červený čtverec vlevo od modré hvězdy."),
           (ABOVE, {"form:phrase": 1}, "obrázek se zeleným srdcem nad fialovým kosočtvercem")],
    "zh": [(TWO, {}, "有一个红色的正方形和一个蓝色的圆形吗？"),
           (PLACED, {}, "左边有一颗红色的五角星，顶部有一颗蓝色的爱心。"),
           (LEFT_OF, {}, "给我看红色的正方形在蓝色的五角星左边的图片。"),
           (ABOVE, {}, "绿色的爱心在紫色的菱形上方")],
    "ja": [(TWO, {}, "赤い四角と青い丸はありますか？"),
           (PLACED, {}, "左の赤い星と上部の青いハートがあります。"),
           (LEFT_OF, {}, "青い星の左に赤い四角がある画像を見せて。"),
           (ABOVE, {}, "紫のひし形の上の緑のハート")],
    "id": [(TWO, {}, "Apakah ada sebuah persegi merah dan sebuah lingkaran biru?"),
           (PLACED, {}, "Ada sebuah bintang merah di kiri dan sebuah hati biru di bagian atas."),
           (LEFT_OF, {}, "Tunjukkan persegi merah di sebelah kiri bintang biru.")],
    "es": [(TWO, {}, "¿Hay un cuadrado rojo y un círculo azul?"),
           (PLACED, {"form:sentence": 1}, "Se ven una estrella roja a la izquierda y un corazón azul arriba."),
           (LEFT_OF, {}, "Muéstrame un cuadrado rojo a la izquierda de una estrella azul."),
           (Query(LEFT_OF.item, None, "sentence", second=LEFT_OF.second, relation="left_of"), {"form:sentence": 1},
            "Se ve un cuadrado rojo a la izquierda de una estrella azul.")],
    "ru": [(TWO, {}, "Есть ли красный квадрат и синий круг?"),
           (PLACED, {}, "На картинке красная звезда слева и синее сердце вверху."),
           (LEFT_OF, {}, "Покажи красный квадрат слева от синей звезды."),
           (ABOVE, {}, "зелёное сердце над фиолетовым ромбом")],
    "tr": [(TWO, {}, "Kırmızı bir kare ve mavi bir daire var mı?"),
           (PLACED, {}, "Solda kırmızı bir yıldız ve yukarıda mavi bir kalp var."),
           (LEFT_OF, {}, "Mavi bir yıldızın solunda kırmızı bir kare göster."),
           (LEFT_OF_BARE, {}, "mavi yıldızın solunda kırmızı kare")],
}


@pytest.mark.parametrize(
    "lang, query, choice, expected",
    [(lang, *case) for lang, cases in PAIR_CASES.items() for case in cases],
    ids=[f"{lang}-{i}" for lang, cases in PAIR_CASES.items() for i in range(len(cases))],
)
def test_exact_two_object_query(lang, query, choice, expected):
    assert describe_query(query, lang, choice) == expected


def test_every_language_has_two_object_cases():
    assert set(PAIR_CASES) == set(LANGUAGES)


def _colour_words(option) -> list[str]:
    """A grammar's colour option as the strings that show in text: a word, a stem (cs, de;
    ru's is paired with its declension) or a romance adjective's four forms (fr, es)."""
    if isinstance(option, dict):
        return list(option.values())
    return [option[0] if isinstance(option, tuple) else option]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_two_object_query_renders_in_every_form_and_wording(lang):
    """No placeholder, no None, both objects named, for training draws and the test split's."""
    grammar = GRAMMARS[lang]
    rng = np.random.default_rng(11)
    for form in FORMS:
        for q in _two_object_queries(form):
            for query_test in (False, True):
                for _ in range(6):
                    text = describe_query(q, lang, rng, query_test=query_test)
                    assert text and "None" not in text and "{" not in text and "}" not in text, text
                    assert "  " not in text and text == text.strip(), text
                    for item in (q.item, q.second):  # both objects are named: each one's colour word
                        words = [w for option in grammar.COLOURS[item.colour] for w in _colour_words(option)]
                        assert any(w in text.lower() for w in words), (text, item)


def test_chinese_two_object_phrasings_keep_the_slots_and_held_out_indices():
    zh = GRAMMARS["zh"]
    for form in FORMS:
        assert len(zh.PAIR_QUERY_FORMS[form]) == len(zh.QUERY_FORMS[form]), form


@pytest.mark.parametrize("lang", LANGUAGES)
def test_two_object_queries_keep_held_out_phrasings_out_of_training(lang):
    grammar = GRAMMARS[lang]
    rng = np.random.default_rng(3)
    for form in FORMS:
        for q in _two_object_queries(form):
            for _ in range(6):
                train = Choices(rng=rng, held_out=grammar.HELD_OUT)
                grammar.query(q, train)
                for slot, index in train.made.items():
                    assert index not in grammar.HELD_OUT.get(slot, ()), (lang, slot, index)
                test = Choices(rng=rng, held_out=grammar.HELD_OUT, query_test=True)
                grammar.query(q, test)
                assert test.made[f"form:{form}"] in grammar.HELD_OUT[f"form:{form}"]


def test_a_two_object_query_must_be_well_formed():
    red_square, blue_circle = Item("square", "red", None), Item("circle", "blue", None)
    with pytest.raises(ValueError, match="first object"):
        Query(None, "grey", "phrase", second=blue_circle)
    with pytest.raises(ValueError, match="first object"):
        Query(red_square, "grey", "phrase", second=blue_circle)
    with pytest.raises(ValueError, match="relation"):
        Query(red_square, None, "phrase", relation="left_of")
    with pytest.raises(ValueError, match="relation"):
        Query(Item("square", "red", None, 1, "left"), None, "phrase", second=blue_circle, relation="left_of")
    assert Query(red_square, None, "phrase", second=blue_circle).plural_subject
    assert not Query(red_square, None, "phrase", second=blue_circle, relation="above").plural_subject

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


@pytest.mark.parametrize("lang", ["zh", "ja"])
def test_no_spaces_in_chinese_and_japanese_queries(lang):
    rng = np.random.default_rng(0)
    for form in FORMS:
        for q in (Query(Item("star", "red", "large", 1, "top"), None, form), Query(Item("circle", "blue", None, 3), None, form),
                  Query(None, "grey", form), Query(Item("heart", None, "small"), "white", form)):
            text = describe_query(q, lang, rng)
            assert " " not in text, text

"""Spanish captions: gender and number agreement, adjectives after the noun.

Order noun + colour + size ("un círculo rojo pequeño"): the colour, the more inherent
property, stays next to the noun. "naranja" is left invariable, the form the Diccionario
panhispánico de dudas calls the usual one ("cruces naranja"). "de" + "un" does not contract
(only "de el" becomes "del").
"""

from __future__ import annotations

from . import common
from .common import Choices, Item, Plan, Query, with_position
from .common import romance_adjective as A

NOUNS = {  # shape -> synonyms as (gender, singular, plural)
    "circle": [("m", "círculo", "círculos"), ("m", "disco", "discos")],
    "square": [("m", "cuadrado", "cuadrados")],
    "triangle": [("m", "triángulo", "triángulos")],
    "star": [("f", "estrella", "estrellas")],
    "heart": [("m", "corazón", "corazones")],
    "cross": [("f", "cruz", "cruces"), ("m", "signo más", "signos más")],
    "hexagon": [("m", "hexágono", "hexágonos")],
    "diamond": [("m", "rombo", "rombos")],
}
COLOURS = {
    "red": [A("rojo", "roja", "rojos", "rojas")],
    "green": [A("verde", "verde", "verdes", "verdes")],
    "blue": [A("azul", "azul", "azules", "azules")],
    "yellow": [A("amarillo", "amarilla", "amarillos", "amarillas")],
    "orange": [A("naranja", "naranja", "naranja", "naranja")],
    "purple": [A("morado", "morada", "morados", "moradas"), A("violeta", "violeta", "violeta", "violeta")],
    "white": [A("blanco", "blanca", "blancos", "blancas")],
    "black": [A("negro", "negra", "negros", "negras")],
}
SIZES = {
    "small": [A("pequeño", "pequeña", "pequeños", "pequeñas"), A("chico", "chica", "chicos", "chicas")],
    "large": [A("grande", "grande", "grandes", "grandes")],
}
DETERMINERS = {(1, "m"): "un", (1, "f"): "una", (2, "m"): "dos", (2, "f"): "dos",
               (3, "m"): "tres", (3, "f"): "tres"}
POSITIONS = {
    "left": ["a la izquierda"], "right": ["a la derecha"], "top": ["arriba", "en la parte superior"],
    "bottom": ["abajo", "en la parte inferior"], "centre": ["en el centro", "en el medio"],
}
RELATIONS = {
    "left_of": ["a la izquierda de"], "right_of": ["a la derecha de"],
    "above": ["encima de"], "below": ["debajo de"],
}
BACKGROUNDS = {  # agreeing with "fondo" (masculine singular)
    "white": ["blanco"], "grey": ["gris"], "black": ["negro"],
    "striped": ["a rayas"], "checkered": ["a cuadros"],
}
TEMPLATES = [
    "{items} sobre un fondo {bg}.",
    "Hay {items} sobre un fondo {bg}.",
    "Un fondo {bg} con {items}.",
    "Una imagen con {items} sobre fondo {bg}.",
]


QUERY_FORMS = {
    "phrase": ["{tb}", "{t}", "imagen con {t}", "foto con {t}"],
    "sentence": ["Hay {t}.", "Se {ve} {t}.", "La imagen muestra {t}."],
    "question": ["¿Hay {t}?", "¿Hay alguna imagen con {t}?", "¿Tienes una foto con {t}?"],
    "request": ["Muéstrame {t}.", "Busca {t}.", "Encuéntrame una imagen con {t}."],
}
# Option indices that training text never uses; only the typed-query test split does.
HELD_OUT = {
    "shape:circle": {1}, "shape:cross": {1}, "colour:purple": {1}, "size:small": {1},
    "form:phrase": {3}, "form:sentence": {2}, "form:question": {2}, "form:request": {2},
}


def noun_phrase(item: Item, choose: Choices, article: bool = True) -> str:
    gender, singular, plural = choose(f"shape:{item.shape}", NOUNS[item.shape])
    key = (gender, item.count > 1)
    words = [DETERMINERS[item.count, gender]] if article or item.count > 1 else []
    words.append(singular if item.count == 1 else plural)
    if item.colour is not None:
        words.append(choose(f"colour:{item.colour}", COLOURS[item.colour])[key])
    if item.size is not None:
        words.append(choose(f"size:{item.size}", SIZES[item.size])[key])
    return with_position(words, item, choose, POSITIONS)


def describe(plan: Plan, choose: Choices) -> str:
    # "y" would become "e" before an i- sound; every item starts with un/una/dos/tres.
    return common.describe(plan, choose, noun_phrase, RELATIONS, BACKGROUNDS, TEMPLATES, " y ")


def query(q: Query, choose: Choices) -> str:
    ve = "ven" if q.plural_subject else "ve"
    # "y" stays "y": no noun starts with an i- sound, so a bare "y hexágono" never needs "e".
    return common.noun_first_query(q, choose, QUERY_FORMS, noun_phrase, BACKGROUNDS,
                                   lambda bg, article: f"un fondo {bg}" if article else f"fondo {bg}",
                                   "sobre fondo {bg}", relations=RELATIONS, conjunction=" y ", ve=ve)

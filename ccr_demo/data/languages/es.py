"""Spanish captions: gender and number agreement, adjectives after the noun.

Order noun + colour + size ("un círculo rojo pequeño"): the colour, the more inherent
property, stays next to the noun. "naranja" is left invariable, the form the Diccionario
panhispánico de dudas calls the usual one ("cruces naranja"). "de" + "un" does not contract
(only "de el" becomes "del").
"""

from __future__ import annotations

from . import common
from .common import Choices, Item, Plan, romance_adjective as A, with_position

NOUNS = {  # shape -> synonyms as (gender, singular, plural)
    "circle": [("m", "círculo", "círculos")],
    "square": [("m", "cuadrado", "cuadrados")],
    "triangle": [("m", "triángulo", "triángulos")],
    "star": [("f", "estrella", "estrellas")],
    "heart": [("m", "corazón", "corazones")],
    "cross": [("f", "cruz", "cruces")],
    "hexagon": [("m", "hexágono", "hexágonos")],
    "diamond": [("m", "rombo", "rombos")],
}
COLOURS = {
    "red": [A("rojo", "roja", "rojos", "rojas")],
    "green": [A("verde", "verde", "verdes", "verdes")],
    "blue": [A("azul", "azul", "azules", "azules")],
    "yellow": [A("amarillo", "amarilla", "amarillos", "amarillas")],
    "orange": [A("naranja", "naranja", "naranja", "naranja")],
    "purple": [A("morado", "morada", "morados", "moradas")],
    "white": [A("blanco", "blanca", "blancos", "blancas")],
    "black": [A("negro", "negra", "negros", "negras")],
}
SIZES = {
    "small": [A("pequeño", "pequeña", "pequeños", "pequeñas")],
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


def noun_phrase(item: Item, choose: Choices) -> str:
    gender, singular, plural = choose(f"shape:{item.shape}", NOUNS[item.shape])
    key = (gender, item.count > 1)
    return with_position([
        DETERMINERS[item.count, gender],
        singular if item.count == 1 else plural,
        choose(f"colour:{item.colour}", COLOURS[item.colour])[key],
        choose(f"size:{item.size}", SIZES[item.size])[key],
    ], item, choose, POSITIONS)


def describe(plan: Plan, choose: Choices) -> str:
    # "y" would become "e" before an i- sound; every item starts with un/una/dos/tres.
    return common.describe(plan, choose, noun_phrase, RELATIONS, BACKGROUNDS, TEMPLATES, " y ")

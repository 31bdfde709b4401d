"""Indonesian captions: noun first, then colour and size; no plural after numerals.

"sebuah lingkaran merah kecil" or, as a variant, "sebuah lingkaran kecil berwarna merah";
"dua lingkaran merah kecil" (a numeral makes reduplication unnecessary). Lists of three
take the serial comma, as EYD spelling rules ask ("A, B, dan C").
"""

from __future__ import annotations

from . import common
from .common import Choices, Item, Plan, with_position

NOUNS = {
    "circle": ["lingkaran"], "square": ["persegi", "bujur sangkar"], "triangle": ["segitiga"],
    "star": ["bintang"], "heart": ["hati"], "cross": ["salib"],
    "hexagon": ["segi enam", "heksagon"], "diamond": ["belah ketupat"],
}
COLOURS = {
    "red": ["merah"], "green": ["hijau"], "blue": ["biru"], "yellow": ["kuning"],
    "orange": ["oranye", "jingga"], "purple": ["ungu"], "white": ["putih"], "black": ["hitam"],
}
SIZES = {"small": ["kecil"], "large": ["besar"]}
COUNTS = {1: "sebuah", 2: "dua", 3: "tiga"}
NOUN_PHRASES = ["{count} {noun} {colour} {size}", "{count} {noun} {size} berwarna {colour}"]
POSITIONS = {
    "left": ["di kiri", "di sebelah kiri"], "right": ["di kanan", "di sebelah kanan"],
    "top": ["di bagian atas"], "bottom": ["di bagian bawah"], "centre": ["di tengah"],
}
RELATIONS = {
    "left_of": ["di sebelah kiri"], "right_of": ["di sebelah kanan"],
    "above": ["di atas"], "below": ["di bawah"],
}
BACKGROUNDS = {
    "white": ["putih"], "grey": ["abu-abu"], "black": ["hitam"],
    "striped": ["bergaris"], "checkered": ["kotak-kotak"],
}
TEMPLATES = [
    "{items} dengan latar belakang {bg}.",
    "Ada {items} pada latar belakang {bg}.",
    "Latar belakang {bg} dengan {items}.",
    "Gambar berisi {items} dengan latar belakang {bg}.",
]


def noun_phrase(item: Item, choose: Choices) -> str:
    text = choose("noun_phrase", NOUN_PHRASES).format(
        count=COUNTS[item.count],
        noun=choose(f"shape:{item.shape}", NOUNS[item.shape]),
        colour=choose(f"colour:{item.colour}", COLOURS[item.colour]),
        size=choose(f"size:{item.size}", SIZES[item.size]),
    )
    return with_position([text], item, choose, POSITIONS)


def describe(plan: Plan, choose: Choices) -> str:
    return common.describe(plan, choose, noun_phrase, RELATIONS, BACKGROUNDS, TEMPLATES, " dan ", serial=True)

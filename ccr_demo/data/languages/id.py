"""Indonesian captions: noun first, then colour and size; no plural after numerals.

"sebuah lingkaran merah kecil" or, as a variant, "sebuah lingkaran kecil berwarna merah";
"dua lingkaran merah kecil" (a numeral makes reduplication unnecessary). Lists of three
take the serial comma, as EYD spelling rules ask ("A, B, dan C").
"""

from __future__ import annotations

from . import common
from .common import Choices, Item, Plan, Query, with_position

NOUNS = {
    "circle": ["lingkaran", "bulatan"], "square": ["persegi", "bujur sangkar", "kotak"],
    "triangle": ["segitiga"], "star": ["bintang"], "heart": ["hati", "bentuk hati"],
    "cross": ["tanda plus", "palang", "tanda tambah"],
    "hexagon": ["segi enam", "heksagon"], "diamond": ["belah ketupat"],
}
COLOURS = {
    "red": ["merah"], "green": ["hijau"], "blue": ["biru"], "yellow": ["kuning"],
    "orange": ["oranye", "jingga"], "purple": ["ungu"], "white": ["putih"], "black": ["hitam"],
}
SIZES = {"small": ["kecil"], "large": ["besar"]}
COUNTS = {1: "sebuah", 2: "dua", 3: "tiga"}
NOUN_PHRASES = ["{count} {noun} {colour} {size}", "{count} {noun} {size} berwarna {colour}"]
# Typed queries state fewer attributes; "sebuah" is optional there ("bintang merah").
QUERY_FORMS = {
    "phrase": ["{tb}", "gambar {tb}", "foto {tb}"],
    "sentence": ["Ada {t}.", "Terlihat {t}.", "Gambar ini menunjukkan {t}."],
    "question": ["Apakah ada {t}?", "Ada {tb}?", "Ada gambar dengan {tb}?"],
    "request": ["Tunjukkan {tb}.", "Cari {tb}.", "Carikan gambar dengan {tb}."],
}
# Option indices that training text never uses; only the typed-query test split does.
HELD_OUT = {
    "shape:circle": {1}, "shape:square": {2}, "shape:cross": {2},
    "form:phrase": {2}, "form:sentence": {2}, "form:question": {2}, "form:request": {2},
}
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


def noun_phrase(item: Item, choose: Choices, article: bool = True) -> str:
    noun = choose(f"shape:{item.shape}", NOUNS[item.shape])
    colour = choose(f"colour:{item.colour}", COLOURS[item.colour]) if item.colour is not None else None
    size = choose(f"size:{item.size}", SIZES[item.size]) if item.size is not None else None
    if colour and size:
        text = choose("noun_phrase", NOUN_PHRASES).format(count=COUNTS[item.count], noun=noun,
                                                           colour=colour, size=size)
    else:
        text = " ".join(w for w in (COUNTS[item.count], noun, colour, size) if w)
    if not article and item.count == 1:
        text = text.removeprefix(COUNTS[1] + " ")
    return with_position([text], item, choose, POSITIONS)


def describe(plan: Plan, choose: Choices) -> str:
    return common.describe(plan, choose, noun_phrase, RELATIONS, BACKGROUNDS, TEMPLATES, " dan ", serial=True)


def query(q: Query, choose: Choices) -> str:
    return common.noun_first_query(q, choose, QUERY_FORMS, noun_phrase, BACKGROUNDS,
                                   lambda bg, _article: f"latar belakang {bg}", "dengan latar belakang {bg}",
                                   # a bare phrase drops "sebuah" on both objects, as people type it
                                   relations=RELATIONS, conjunction=" dan ", landmark_article=False)

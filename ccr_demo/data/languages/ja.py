"""Japanese captions: existential ある/あります, counters after the noun, no spaces.

Counted groups use a floating quantifier ("小さい赤い丸が二つ"), with つ or 個 as the
counter; positions and relations are locatives with に ("左に", "大きい青い四角の左に").
Template 2 turns the clause into a relative clause, so it takes the plain verb form.
"""

from __future__ import annotations

from .common import Choices, Item, Plan, Query, query_text, statement

NOUNS = {
    "circle": ["丸", "円", "まる"], "square": ["四角", "正方形"], "triangle": ["三角", "三角形"],
    "star": ["星", "星形", "スター"], "heart": ["ハート", "ハート形"], "cross": ["十字", "十字形", "プラス記号"],
    "hexagon": ["六角形"], "diamond": ["ひし形", "菱形"],
}
COLOURS = {  # attributive forms (i-adjectives, or noun + の)
    "red": ["赤い"], "green": ["緑の"], "blue": ["青い"], "yellow": ["黄色い"],
    "orange": ["オレンジ色の"], "purple": ["紫の", "紫色の"], "white": ["白い"], "black": ["黒い"],
}
SIZES = {"small": ["小さい", "小さな"], "large": ["大きい", "大きな"]}
COUNTERS = [{1: "一つ", 2: "二つ", 3: "三つ"}, {1: "1個", 2: "2個", 3: "3個"}]
POSITIONS = {  # regions of the picture; bare 上/下 would read as "on/under the previous one"
    "left": ["左", "左側"], "right": ["右", "右側"], "top": ["上部", "上の方"],
    "bottom": ["下部", "下の方"], "centre": ["中央", "真ん中"],
}
RELATIONS = {"left_of": ["左"], "right_of": ["右"], "above": ["上"], "below": ["下"]}
BACKGROUNDS = {  # (noun, attributive)
    "white": [("白", "白い")], "grey": [("灰色", "灰色の"), ("グレー", "グレーの")],
    "black": [("黒", "黒い")], "striped": [("縞模様", "縞模様の"), ("ストライプ", "ストライプの")],
    "checkered": [("チェック柄", "チェック柄の"), ("市松模様", "市松模様の")],
}
VERBS = [("あります", "ある"), ("描かれています", "描かれた")]  # (polite, plain)
TEMPLATES = [  # (template, verb form: 0 polite, 1 plain)
    ("背景は{bg}で、{clause}。", 0),
    ("{clause}。背景は{bg}です。", 0),
    ("{clause}{bg_attr}背景の画像。", 1),
]


QUERY_FORMS = {  # {loc}/{locno}: where, as a locative (左に) or a modifier (左の)
    "phrase": ["{locno}{np}", "{locno}{np}の画像", "{locno}{np}の写真"],
    "sentence": ["{loc}{np}が{count}あります。", "{loc}{np}が{count}描かれています。", "{loc}{np}が{count}見えます。"],
    "question": ["{loc}{np}は{count}ありますか？", "{loc}{np}が{count}ある画像はありますか？",
                 "{loc}{np}が{count}ある写真はありますか？"],
    "request": ["{loc}{np}が{count}ある画像を見せて。", "{loc}{np}が{count}ある画像を探して。",
                "{loc}{np}が{count}ある写真を探してください。"],
}
# Option indices that training text never uses; only the typed-query test split does.
HELD_OUT = {
    "shape:circle": {2}, "shape:star": {2}, "shape:cross": {2}, "shape:diamond": {1},
    "form:phrase": {2}, "form:sentence": {2}, "form:question": {2}, "form:request": {2},
}


def noun_phrase(item: Item, choose: Choices) -> str:
    size = choose(f"size:{item.size}", SIZES[item.size]) if item.size is not None else ""
    colour = choose(f"colour:{item.colour}", COLOURS[item.colour]) if item.colour is not None else ""
    return size + colour + choose(f"shape:{item.shape}", NOUNS[item.shape])


def describe(plan: Plan, choose: Choices) -> str:
    template, form = choose("template", TEMPLATES)
    verb = choose("verb", VERBS)[form]

    def np(item: Item) -> str:
        return noun_phrase(item, choose)

    def counted(items) -> str:
        counter = choose("counter", COUNTERS)
        return "、".join(f"{np(i)}が{counter[i.count]}" for i in items) + verb

    clause = statement(
        plan, choose, RELATIONS,
        related=lambda s, rel, l: f"{np(l)}の{rel}に{np(s)}が{verb}",
        placed=lambda items: "、".join(f"{choose(f'position:{i.position}', POSITIONS[i.position])}に{np(i)}"
                                      for i in items) + f"が{verb}",
        listed=counted)
    bg, bg_attr = choose(f"background:{plan.background}", BACKGROUNDS[plan.background])
    return template.format(clause=clause, bg=bg, bg_attr=bg_attr)


def pair_query_parts(q: Query, choose: Choices) -> tuple[str, str, str]:
    """(np, loc, locno) of a two-object query: a relation is a locative on the landmark
    ("青い丸の左に赤い四角"), as in describe; two objects are joined by と, each with its place
    as a の modifier ("左の赤い四角と上部の青い丸"), which reads well in every form."""
    if q.relation is not None:
        rel = choose(f"relation:{q.relation}", RELATIONS[q.relation])
        landmark = noun_phrase(q.second, choose)
        return noun_phrase(q.item, choose), f"{landmark}の{rel}に", f"{landmark}の{rel}の"

    def placed(item: Item) -> str:
        where = choose(f"position:{item.position}", POSITIONS[item.position]) + "の" if item.position else ""
        return where + noun_phrase(item, choose)

    first = placed(q.item)  # before the second: slot order fixes the output
    return f"{first}と{placed(q.second)}", "", ""


def query(q: Query, choose: Choices) -> str:
    count = ""
    if q.second is not None:
        np, loc, locno = pair_query_parts(q, choose)
    elif q.item is None:
        _, attr = choose(f"background:{q.background}", BACKGROUNDS[q.background])
        np, loc, locno = f"{attr}背景", "", ""
    else:
        np = noun_phrase(q.item, choose)
        if q.item.count > 1:
            count = choose("counter", COUNTERS)[q.item.count]
        if q.item.position is not None:
            where = choose(f"position:{q.item.position}", POSITIONS[q.item.position])
            loc, locno = where + "に", where + "の"
        elif q.background is not None:
            _, attr = choose(f"background:{q.background}", BACKGROUNDS[q.background])
            loc, locno = f"{attr}背景に", f"{attr}背景の"
        else:
            loc = locno = ""
    if q.form == "phrase" and count:  # "赤い丸二つ"
        np += count
    return query_text(q, choose, QUERY_FORMS, lambda *_: "", capitalise=lambda t: t,
                      np=np, loc=loc, locno=locno, count=count)

"""Chinese captions: numeral + measure word, no spaces.

个 for most shapes, 颗 where it is the natural measure word (五角星, 爱心); 两 (not 二)
before a measure word. Two equally natural orders of the modifiers: 小的红色圆形 and
红色的小圆形 (no noun starts with 心, so 小 never runs into 小心 "careful"). Typed
queries drop the numeral where people do ("左边的红色五角星").
"""

from __future__ import annotations

from .common import Choices, Item, Plan, Query, join, query_text, statement

NOUNS = {  # shape -> synonyms as (noun, measure word)
    "circle": [("圆形", "个"), ("圆圈", "个"), ("圆", "个")],
    "square": [("正方形", "个"), ("方形", "个")],
    "triangle": [("三角形", "个")],
    "star": [("五角星", "颗"), ("星形", "个"), ("星星", "颗")],
    "heart": [("爱心", "颗"), ("桃心", "颗")],
    "cross": [("十字形", "个"), ("十字", "个"), ("加号", "个")],
    "hexagon": [("六边形", "个")],
    "diamond": [("菱形", "个")],
}
COLOURS = {
    "red": ["红色"], "green": ["绿色"], "blue": ["蓝色"], "yellow": ["黄色"],
    "orange": ["橙色"], "purple": ["紫色"], "white": ["白色"], "black": ["黑色"],
}
SIZES = {"small": ["小"], "large": ["大"]}
NUMERALS = {1: "一", 2: "两", 3: "三"}
NOUN_PHRASES = ["{num}{mw}{size}的{colour}{noun}", "{num}{mw}{colour}的{size}{noun}"]
# One modifier (or none): colour + 的 is optional before a noun, size never takes 的.
COLOUR_PHRASES = ["{num}{mw}{colour}的{noun}", "{num}{mw}{colour}{noun}"]
POSITIONS = {
    "left": ["左边", "左侧"], "right": ["右边", "右侧"], "top": ["顶部", "上部"],
    "bottom": ["底部", "下部"], "centre": ["正中间", "中央"],
}
RELATIONS = {"left_of": ["左边", "左侧"], "right_of": ["右边", "右侧"], "above": ["上方"], "below": ["下方"]}
BACKGROUNDS = {  # (before 背景, after 背景是/背景为)
    "white": [("白色", "白色")], "grey": [("灰色", "灰色")], "black": [("黑色", "黑色")],
    "striped": [("条纹", "条纹图案")], "checkered": [("格子", "格子图案")],
}
TEMPLATES = [
    "{bg}背景上，{clause}。",
    "在{bg}背景上，{clause}。",
    "{clause}，背景是{bg_pred}。",
    "图片中，{clause}，背景为{bg_pred}。",
]
QUERY_FORMS = {  # {loc}: where ("左边", "黑色背景上"); {np}: with numeral, {npb}: without
    "phrase": ["{locde}{npb}", "{locde}{npb}的图片", "有{locde}{npb}的照片"],
    "sentence": ["{loc}有{np}。", "图里{loc}有{np}。", "我看到{loc}有{np}。"],
    "question": ["{loc}有{np}吗？", "{loc}有没有{np}？", "有没有{locde}{npb}的图片？"],
    "request": ["给我看{locde}{npb}。", "找{locde}{npb}。", "帮我找一张有{locde}{npb}的图片。"],
}
# Two objects: {clause} states them ("有一个红色的正方形和一个蓝色的圆形",
# "左边有…，顶部有…", "一个红色的正方形在一个蓝色的圆形的左边"); {npb} names them without
# numerals, to go before 的.
# Same slots and held-out indices as QUERY_FORMS.
PAIR_QUERY_FORMS = {
    "phrase": ["{npb}", "{npb}的图片", "有{npb}的照片"],
    "sentence": ["{clause}。", "图里{clause}。", "我看到{clause}。"],
    "question": ["{clause}吗？", "图里{clause}吗？", "有没有{npb}的图片？"],
    "request": ["给我看{npb}的图片。", "找{npb}的图片。", "帮我找一张有{npb}的图片。"],
}
# Option indices that training text never uses; only the typed-query test split does.
HELD_OUT = {
    "shape:circle": {2}, "shape:star": {2}, "shape:cross": {2},
    "form:phrase": {2}, "form:sentence": {2}, "form:question": {2}, "form:request": {2},
}


def noun_phrase(item: Item, choose: Choices, numeral: bool = True) -> str:
    noun, measure = choose(f"shape:{item.shape}", NOUNS[item.shape])
    size = choose(f"size:{item.size}", SIZES[item.size]) if item.size is not None else ""
    colour = choose(f"colour:{item.colour}", COLOURS[item.colour]) if item.colour is not None else ""
    if size and colour:
        template = choose("noun_phrase", NOUN_PHRASES)
    elif colour:
        template = choose("colour_phrase", COLOUR_PHRASES)
    else:
        template = "{num}{mw}{size}{noun}"
    if not numeral and item.count == 1:
        template = template.replace("{num}{mw}", "")
    return template.format(num=NUMERALS[item.count], mw=measure, noun=noun, size=size, colour=colour)


def describe(plan: Plan, choose: Choices) -> str:
    def np(item: Item) -> str:
        return noun_phrase(item, choose)

    clause = statement(
        plan, choose, RELATIONS,
        related=lambda s, rel, l: f"{np(s)}在{np(l)}的{rel}",
        placed=lambda items: "，".join(f"{choose(f'position:{i.position}', POSITIONS[i.position])}有{np(i)}"
                                      for i in items),
        listed=lambda items: "有" + join([np(i) for i in items], "、", "和"))
    bg, bg_pred = choose(f"background:{plan.background}", BACKGROUNDS[plan.background])
    return choose("template", TEMPLATES).format(clause=clause, bg=bg, bg_pred=bg_pred)


def pair_query(q: Query, choose: Choices) -> str:
    """A two-object query: a relation as describe words it, without numerals before 的
    ("红色的正方形在蓝色的圆形左边的图片"); two objects joined by 和, each with its place as a
    clause of its own ("左边有…，顶部有…") or, named, as a 的 modifier ("左边的红色正方形")."""
    def np(item: Item, numeral: bool) -> str:
        return noun_phrase(item, choose, numeral=numeral)

    if q.relation is not None:
        rel = choose(f"relation:{q.relation}", RELATIONS[q.relation])
        clause = f"{np(q.item, True)}在{np(q.second, True)}的{rel}"
        npb = f"{np(q.item, False)}在{np(q.second, False)}{rel}"
    else:
        items = (q.item, q.second)
        where = [choose(f"position:{i.position}", POSITIONS[i.position]) if i.position else "" for i in items]
        with_numeral = [np(i, True) for i in items]
        bare = [np(i, False) for i in items]
        if all(where):
            clause = "，".join(f"{w}有{n}" for w, n in zip(where, with_numeral))
            npb = "和".join(f"{w}的{n}" for w, n in zip(where, bare))
        else:
            clause, npb = "有" + "和".join(with_numeral), "和".join(bare)
    return query_text(q, choose, PAIR_QUERY_FORMS, lambda *_: "", capitalise=lambda t: t, clause=clause, npb=npb)


def query(q: Query, choose: Choices) -> str:
    if q.second is not None:
        return pair_query(q, choose)
    if q.item is None:
        bg, _ = choose(f"background:{q.background}", BACKGROUNDS[q.background])
        np = npb = f"{bg}的背景"
        loc = ""
    else:
        np, npb = noun_phrase(q.item, choose), noun_phrase(q.item, choose, numeral=False)
        if q.item.position is not None:
            loc = choose(f"position:{q.item.position}", POSITIONS[q.item.position])
        elif q.background is not None:
            loc = choose(f"background:{q.background}", BACKGROUNDS[q.background])[0] + "背景上"
        else:
            loc = ""
    locde = loc + "的" if loc else ""
    return query_text(q, choose, QUERY_FORMS, lambda *_: "", capitalise=lambda t: t,
                      np=np, npb=npb, loc=loc, locde=locde)

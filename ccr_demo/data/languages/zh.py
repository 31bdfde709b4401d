"""Chinese captions: numeral + measure word, no spaces.

个 for most shapes, 颗 where it is the natural measure word (五角星, 爱心); 两 (not 二)
before a measure word. Two equally natural orders of the modifiers: 小的红色圆形 and
红色的小圆形.
"""

from __future__ import annotations

from .common import Choices, Item, Plan, join, statement

NOUNS = {  # shape -> synonyms as (noun, measure word)
    "circle": [("圆形", "个")],
    "square": [("正方形", "个"), ("方块", "个")],
    "triangle": [("三角形", "个")],
    "star": [("五角星", "颗"), ("星形", "个")],
    "heart": [("爱心", "颗"), ("心形", "个")],
    "cross": [("十字形", "个"), ("十字", "个")],
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
POSITIONS = {
    "left": ["左边", "左侧"], "right": ["右边", "右侧"], "top": ["顶部", "上部"],
    "bottom": ["底部", "下部"], "centre": ["中间", "正中间"],
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
    "图中{clause}，背景为{bg_pred}。",
]


def noun_phrase(item: Item, choose: Choices) -> str:
    noun, measure = choose(f"shape:{item.shape}", NOUNS[item.shape])
    return choose("noun_phrase", NOUN_PHRASES).format(
        num=NUMERALS[item.count], mw=measure, noun=noun,
        size=choose(f"size:{item.size}", SIZES[item.size]),
        colour=choose(f"colour:{item.colour}", COLOURS[item.colour]),
    )


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

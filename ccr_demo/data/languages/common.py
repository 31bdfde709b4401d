"""What every caption grammar shares: the content plan, slot choices, the sentence skeleton.

A scene is first reduced to a language-independent :class:`Plan` (what a caption states);
each language then only decides how to say it. That is what keeps the ten captions of a
scene parallel, like translations of one sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class Item:
    """One mentioned thing: ``count`` identical objects, with a position when it is stated."""

    shape: str
    colour: str
    size: str
    count: int = 1
    position: str | None = None


@dataclass(frozen=True)
class Plan:
    """What a caption says, in whatever language.

    Three forms: ``relation`` set (items are subject and landmark, "A left of B");
    every item with a position ("A on the left, B at the top"); or counted items without
    positions ("two red circles and a blue star").
    """

    items: tuple[Item, ...]
    background: str
    relation: str | None = None

    @property
    def plural_subject(self) -> bool:
        """Whether the grammatical subject is plural (verb agreement, e.g. de "sind")."""
        if self.relation is not None:
            return False  # the subject of a relation is one object
        return sum(item.count for item in self.items) > 1


def plan_from_scene(scene) -> Plan:
    """Group identical objects (same shape, colour, size) and pick the caption's form.

    ``scene`` is duck-typed (``objects``, ``background``, ``relation``) so that this
    package does not import the generator.
    """
    objs = scene.objects
    if scene.relation is not None:
        a, b = objs[0], objs[1]
        return Plan((Item(a.shape, a.colour, a.size), Item(b.shape, b.colour, b.size)),
                    scene.background, scene.relation)
    counts: dict[tuple[str, str, str], int] = {}
    for o in objs:
        key = (o.shape, o.colour, o.size)
        counts[key] = counts.get(key, 0) + 1
    if all(c == 1 for c in counts.values()):
        items = tuple(Item(o.shape, o.colour, o.size, 1, o.position) for o in objs)
    else:
        items = tuple(Item(s, c, z, n) for (s, c, z), n in counts.items())
    return Plan(items, scene.background)


class Choices:
    """Decides each free slot of a caption (template, synonyms): at random or fixed.

    A slot is decided once per caption, so a word repeated in one caption keeps one
    synonym. ``fixed`` maps slot names to option indices (taken modulo the number of
    options); slots it does not name are drawn from ``rng``, or take option 0 without one.
    """

    def __init__(self, rng: np.random.Generator | None = None, fixed: Mapping[str, int] | None = None):
        self._rng = rng
        self._fixed = dict(fixed or {})
        self._made: dict[str, int] = {}

    def __call__(self, slot: str, options: Sequence[T]) -> T:
        if slot not in self._made:
            if slot in self._fixed:
                self._made[slot] = int(self._fixed[slot])
            elif self._rng is not None:
                self._made[slot] = int(self._rng.integers(len(options)))
            else:
                self._made[slot] = 0
        return options[self._made[slot] % len(options)]

    @property
    def made(self) -> dict[str, int]:
        """The slots decided so far (to reproduce a caption with ``fixed=``)."""
        return dict(self._made)


def romance_adjective(ms: str, fs: str, mp: str, fp: str) -> dict[tuple[str, bool], str]:
    """A French or Spanish adjective's four forms keyed by (gender, plural?)."""
    return {("m", False): ms, ("f", False): fs, ("m", True): mp, ("f", True): fp}


def join(parts: Sequence[str], sep: str, last: str, serial: bool = False) -> str:
    """"a, b and c": ``sep`` between all but the last two, ``last`` before the last.

    ``serial`` keeps ``sep`` before ``last`` too when there are three or more ("a, b, dan c").
    """
    if len(parts) == 1:
        return parts[0]
    if serial and len(parts) > 2:
        last = sep.rstrip() + last
    return sep.join(parts[:-1]) + last + parts[-1]


def capitalise(text: str) -> str:
    """Upper-case the first letter only (str.capitalize would lower-case the rest)."""
    return text[:1].upper() + text[1:]


def with_position(words: Sequence[str], item: Item, choose: Choices, positions: Mapping[str, Sequence[str]]) -> str:
    """Space-join a noun phrase's words, followed by the item's position when the plan states one."""
    if item.position is not None:
        words = [*words, choose(f"position:{item.position}", positions[item.position])]
    return " ".join(words)


def statement(plan: Plan, choose: Choices, relations: Mapping[str, Sequence[Any]],
              related: Callable[[Item, Any, Item], str], listed: Callable[[Sequence[Item]], str],
              placed: Callable[[Sequence[Item]], str] | None = None) -> str:
    """What a caption says about its objects, worded by one hook per form of :class:`Plan`.

    ``related(subject, rel, landmark)`` gets ``rel`` chosen from ``relations`` before any
    noun phrase is built (slots are drawn in the order they are first asked for, so this
    order is part of the output); ``placed`` words items that each have a position (default:
    ``listed``, for languages that put the position inside the noun phrase).
    """
    if plan.relation is not None:
        subject, landmark = plan.items
        return related(subject, choose(f"relation:{plan.relation}", relations[plan.relation]), landmark)
    if placed is not None and plan.items[0].position is not None:
        return placed(plan.items)
    return listed(plan.items)


def listing(noun_phrase: Callable[[Item], str], conjunction: str, serial: bool = False) -> Callable[[Sequence[Item]], str]:
    """A ``listed`` hook for :func:`statement`: the noun phrases as "A, B <conjunction> C"."""
    return lambda items: join([noun_phrase(i) for i in items], ", ", conjunction, serial=serial)


def case_statement(plan: Plan, choose: Choices, noun_phrase: Callable[[Item, str, Choices], str],
                   relations: Mapping[str, Sequence[tuple[str, str]]], case: str, conjunction: str) -> str:
    """:func:`statement` for the languages with case (de, cs, ru).

    Subject and listed items take ``case``; a relation's landmark takes the case its
    preposition governs (``relations`` give (preposition, case) pairs).
    """
    def np(item: Item, c: str) -> str:
        return noun_phrase(item, c, choose)
    return statement(plan, choose, relations,
                     related=lambda s, rel, l: f"{np(s, case)} {rel[0]} {np(l, rel[1])}",
                     listed=listing(lambda i: np(i, case), conjunction))


def describe(plan: Plan, choose: Choices, noun_phrase: Callable[[Item, Choices], str],
             relations: Mapping[str, Sequence[Any]], backgrounds: Mapping[str, Sequence[str]],
             templates: Sequence[str], conjunction: str, *,
             related: Callable[[Item, Any, Item], str] | None = None, serial: bool = False,
             capitalise: Callable[[str], str] = capitalise, **slots: str) -> str:
    """The caption skeleton of en, es, fr, id, tr: statement, background word, template.

    The statement fills ``{items}``, the chosen background word ``{bg}``, ``slots`` any
    other field; by default a relation reads "subject rel landmark". Slots are chosen in
    this order (relation, noun phrases, background, template), which fixes the captions.
    """
    def np(item: Item) -> str:
        return noun_phrase(item, choose)
    if related is None:
        related = lambda s, rel, l: f"{np(s)} {rel} {np(l)}"  # noqa: E731
    items = statement(plan, choose, relations, related, listing(np, conjunction, serial))
    bg = choose(f"background:{plan.background}", backgrounds[plan.background])
    return capitalise(choose("template", templates).format(items=items, bg=bg, **slots))

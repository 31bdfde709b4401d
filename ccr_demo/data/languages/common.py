"""What every caption grammar shares: the content plan, slot choices, the sentence skeleton.

A scene is first reduced to a language-independent :class:`Plan` (what a caption states);
each language then only decides how to say it. That is what keeps the ten captions of a
scene parallel, like translations of one sentence.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class Item:
    """One mentioned thing: ``count`` identical objects, with a position when it is stated.

    ``colour`` and ``size`` are None when a caption does not state them (a typed query
    such as "a star" or "two red circles"); full-scene captions state both.
    """

    shape: str
    colour: str | None
    size: str | None
    count: int = 1
    position: str | None = None


FORMS = ("phrase", "sentence", "question", "request")


@dataclass(frozen=True)
class Query:
    """What a partial caption (a query as people type it) says, in whatever language.

    ``item``: the object asked for (attributes it does not state are None), or None when
    the query names only the background. ``form`` is how it is phrased: a bare noun phrase,
    a statement, a question ("is there ...?") or a request ("show me ...").

    ``second``: another object of the same picture ("a red square and a blue circle", each
    with its own position when stated); with ``relation`` ("left_of"), ``item`` stands in
    that relation to ``second``, its landmark ("a red square to the left of a blue circle").
    A two-object query states no background, as a position and a background are never
    combined either: one locative per query keeps every language's phrasing natural.
    """

    item: Item | None
    background: str | None
    form: str
    second: Item | None = None
    relation: str | None = None

    def __post_init__(self):
        if self.form not in FORMS:
            raise ValueError(f"query form must be one of {FORMS}, got {self.form!r}")
        if self.item is None and self.background is None:
            raise ValueError("a query states an object, a background or both")
        if self.second is not None and (self.item is None or self.background is not None):
            raise ValueError("a two-object query states a first object and no background")
        if self.relation is not None and (self.second is None or self.item.position or self.second.position):
            raise ValueError("a relation relates two objects whose positions are not stated")

    @property
    def plural_subject(self) -> bool:
        """Whether what the query asks for is grammatically plural (verb agreement, e.g. de
        "sind"): a count, or two objects joined by "and" (a relation's subject is one object)."""
        if self.item is None:
            return False
        return self.item.count > 1 or (self.second is not None and self.relation is None)


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


def plan_from_scene(scene, group_identical: bool = False) -> Plan:
    """The caption's content: a relation, or every object with its position.

    Every object is placed, identical ones too ("a small red heart at the top, a small red
    heart at the bottom"), so a scene's full caption identifies it. ``group_identical``
    counts identical objects instead, without positions ("two small red hearts"): the
    older, ambiguous form, kept for the grammars' counted noun phrases.
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
    if not group_identical or all(c == 1 for c in counts.values()):
        items = tuple(Item(o.shape, o.colour, o.size, 1, o.position) for o in objs)
    else:
        items = tuple(Item(s, c, z, n) for (s, c, z), n in counts.items())
    return Plan(items, scene.background)


class Choices:
    """Decides each free slot of a caption (template, synonyms): at random or fixed.

    A slot is decided once per caption, so a word repeated in one caption keeps one
    synonym. ``fixed`` maps slot names to option indices (taken modulo the number of
    options); slots it does not name are drawn from ``rng``, or take option 0 without one.

    ``held_out`` maps slot names to option indices that training text never uses (a
    language's ``HELD_OUT``): random draws skip them, unless ``query_test`` is set, the
    typed-query test split, which draws words from all options and phrasings
    (``form:*`` slots) from the held-out ones only, so it measures generalisation.
    """

    def __init__(self, rng: np.random.Generator | None = None, fixed: Mapping[str, int] | None = None,
                 held_out: Mapping[str, Collection[int]] | None = None, query_test: bool = False):
        self._rng = rng
        self._fixed = dict(fixed or {})
        self._held_out = {slot: frozenset(ix) for slot, ix in (held_out or {}).items()}
        self._query_test = query_test
        self._made: dict[str, int] = {}

    def allowed(self, slot: str, n: int) -> list[int]:
        """The option indices a random draw of ``slot`` (with ``n`` options) may take."""
        held = self._held_out.get(slot, frozenset())
        if self._query_test:
            if slot.startswith("form:") and any(i < n for i in held):
                return [i for i in range(n) if i in held]
            return list(range(n))
        keep = [i for i in range(n) if i not in held]
        return keep or list(range(n))

    def __call__(self, slot: str, options: Sequence[T]) -> T:
        if slot not in self._made:
            if slot in self._fixed:
                self._made[slot] = int(self._fixed[slot])
            elif self._rng is not None:
                allowed = self.allowed(slot, len(options))
                self._made[slot] = allowed[int(self._rng.integers(len(allowed)))]
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


def size_and_colour(item: Item, choose: Choices, sizes: Mapping[str, Any],
                    colours: Mapping[str, Any]) -> list:
    """The item's size word then its colour word (those it has), chosen in that order so a
    scene's captions stay the same for a seed."""
    words = []
    if item.size is not None:
        words.append(choose(f"size:{item.size}", sizes[item.size]))
    if item.colour is not None:
        words.append(choose(f"colour:{item.colour}", colours[item.colour]))
    return words


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


def objects_phrase(query: Query, choose: Choices, noun_phrase: Callable[[Item], str],
                   relations: Mapping[str, Sequence[Any]], related: Callable[[Item, Any, Item], str],
                   conjunction: str) -> str:
    """What a query says about its object(s): one noun phrase, two joined by ``conjunction``
    (each with its own position when stated), or ``related(subject, rel, landmark)`` with
    ``rel`` chosen from ``relations`` first, as :func:`statement` does for captions."""
    if query.second is None:
        return noun_phrase(query.item)
    if query.relation is not None:
        return related(query.item, choose(f"relation:{query.relation}", relations[query.relation]), query.second)
    first = noun_phrase(query.item)  # before the second: slot order fixes the output
    return first + conjunction + noun_phrase(query.second)


def query_text(query: Query, choose: Choices, forms: Mapping[str, Sequence[Any]],
               target: Callable[[Any, bool], str], *, capitalise: Callable[[str], str] = capitalise,
               **slots: str) -> str:
    """A typed query: the phrasing chosen for ``query.form`` wrapped round its target.

    ``forms[form]`` lists templates, or (template, case) pairs for languages with case;
    ``{t}`` is the target noun phrase with its article (``target(case, True)``), ``{tb}``
    the bare one, as people type it ("red star"). Only the fields a template uses are
    built. Bare phrases stay lower-case and unpunctuated; the other forms are sentences.
    """
    option = choose(f"form:{query.form}", forms[query.form])
    template, case = option if isinstance(option, tuple) else (option, None)
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    values = dict(slots)
    if "t" in fields:
        values["t"] = target(case, True)
    if "tb" in fields:
        values["tb"] = target(case, False)
    text = template.format(**values)
    return text if query.form == "phrase" else capitalise(text)


def noun_first_query(query: Query, choose: Choices, forms: Mapping[str, Sequence[Any]],
                     noun_phrase: Callable[[Item, Choices, bool], str], backgrounds: Mapping[str, Sequence[str]],
                     background_alone: Callable[[str, bool], str], on_background: str, *,
                     relations: Mapping[str, Sequence[str]], conjunction: str,
                     relation_pattern: str = "{s} {rel} {l}", landmark_article: bool = True,
                     **slots: str) -> str:
    """:func:`query_text` for the languages without case whose target is the object's noun
    phrase, then "on a <bg> background" (en, es, fr, id).

    ``background_alone(word, article)`` words a query about the background only;
    ``on_background`` (with ``{bg}``) follows the object when a background is stated. Two
    objects are joined by ``conjunction``, or related as ``relation_pattern`` says; with
    ``landmark_article`` a relation's landmark keeps its article even in a bare phrase ("red
    square to the left of a blue circle"), as the French elision onto "un/une" needs.
    """
    def background() -> str:
        return choose(f"background:{query.background}", backgrounds[query.background])

    def target(_case, article: bool) -> str:
        if query.item is None:
            return background_alone(background(), article)

        def related(subject: Item, rel: str, landmark: Item) -> str:
            return relation_pattern.format(s=noun_phrase(subject, choose, article), rel=rel,
                                           l=noun_phrase(landmark, choose, article or landmark_article))

        # the objects before the background: slot order fixes the output
        text = objects_phrase(query, choose, lambda item: noun_phrase(item, choose, article), relations,
                              related, conjunction)
        return text + " " + on_background.format(bg=background()) if query.background is not None else text

    return query_text(query, choose, forms, target, **slots)

"""Several models over one image list, side by side (issue 9): plain functions, no Gradio.

Why a room of its own: ``callbacks.search`` answers for one model. This runs it once per chosen
model, each on its own view of the app (``AppState.view``: that model and its gallery, the same
test set), and lays the answers side by side: each model's top k per language, the rank per
language of the image its MRV is about (the gold image in gold mode, else that model's consensus
image), its per-query MRV, and a one-line verdict naming the more consistent model. Evaluation
runs ``eval_callbacks.evaluate`` per model and puts per-language R@1 and MRV in one table and one
chart. Every number is the one-model callback's, so the two views cannot disagree.

Models are picked by their configured names only: a request cannot name a path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from ccr_demo.ui import callbacks as cb
from ccr_demo.ui import eval_callbacks as eval_cb
from ccr_demo.ui.ranges import shown_value, whole_number
from ccr_demo.ui.state import AppState


def check_models(app: AppState, models: Any) -> list[str]:
    """The configured names to compare, in configured order (None: all of them); ValueError
    naming the input for anything else (none, a path, an unknown name, not a list)."""
    names = app.model_names
    if models is None:
        return list(names)
    if isinstance(models, (list, tuple)) and not models:
        raise ValueError(f"models: none chosen; choose one or more of {names}")
    if not isinstance(models, (list, tuple)) or not all(isinstance(m, str) for m in models) \
            or any(m not in names for m in models):
        raise ValueError(f"models: got {shown_value(models)}; expected a list drawn from {names}")
    return [n for n in names if n in models]


@dataclass
class Comparison:
    """Each chosen model's SearchResult for the same queries, and what they add up to."""

    ok: bool
    message: str
    models: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    queries: dict[str, str] = field(default_factory=dict)
    results: dict[str, cb.SearchResult] = field(default_factory=dict)
    gold_id: str | None = None
    verdict: str = ""
    table: pd.DataFrame = field(default_factory=pd.DataFrame)

    def mrv(self, name: str) -> float | None:
        """The MRV the verdict compares: the gold image's in gold mode, else the query's."""
        res = self.results[name]
        if len(self.languages) < 2:
            return None
        return res.gold["mrv"] if self.gold_id is not None else res.mrv

    def ranks(self, name: str) -> dict[str, int]:
        """1-based rank per language of the image the model's MRV is about."""
        res = self.results[name]
        if self.gold_id is not None:
            return dict(res.gold["ranks"])
        row = res.table.set_index("image").loc[res.consensus]
        return {lg: int(row[f"rank {lg}"]) for lg in self.languages}

    def summary(self) -> dict:
        """JSON-ready numbers (the API's view): per model its results, ranks and MRV, and the verdict."""
        return {
            "languages": self.languages, "queries": self.queries, "gold": self.gold_id, "verdict": self.verdict,
            "mrv_of": "gold image" if self.gold_id is not None else "each model's consensus image",
            "models": {name: {"mrv": self.mrv(name), "query_mrv": res.mrv, "consensus": res.consensus,
                              "ranks": self.ranks(name), "gold": res.gold, "results": res.hits}
                       for name, res in self.results.items()},
        }


def compare(app: AppState, texts: Mapping[str, Any], k: Any = 5, models: Any = None,
            gold: Mapping | None = None) -> Comparison:
    """Search every chosen model's gallery with the same query per language (``callbacks.search``)."""
    if not app.comparing:
        return Comparison(False, "Model comparison needs two or more models over the same images; this app has "
                          f"{len(app.models) or 1}. Configure them with CCR_MODELS or assets/models.json.")
    try:
        names = check_models(app, models)
    except ValueError as e:
        return Comparison(False, str(e))
    results = {}
    for name in names:
        res = cb.search(app.view(name), texts, k, gold=gold)
        if not res.ok:  # the same input problem for every model: say it once
            return Comparison(False, res.message, models=names)
        results[name] = res
    first = results[names[0]]
    gold_id = first.gold["image_id"] if first.gold else None
    out = Comparison(True, first.message, models=names, languages=first.languages, queries=first.queries,
                     results=results, gold_id=gold_id)
    out.verdict = verdict(out)
    out.table = rank_table(out)
    return out


def compare_gold(app: AppState, languages: Any, k: Any = 5, instance: Any = -1,
                 models: Any = None) -> tuple[Comparison, cb.Instance]:
    """Gold mode for every chosen model: one test instance's captions (``instance``; -1 or None
    draws one) searched by each, the gold image marked. ValueError naming a malformed input; k
    and instance are checked as ``/search`` and ``/gold`` check them (``ranges.whole_number``)."""
    if not isinstance(languages, (list, tuple)) or not all(isinstance(x, str) for x in languages):
        raise ValueError(f"languages: got {shown_value(languages)}; expected a list drawn from {list(cb.LANGUAGES)}")
    whole_number(k, 1, app.limits.max_k, "k")
    cb.check_instance(app, instance)
    inst = cb.random_instance(app, list(languages), instance)
    if inst.gold is None:
        return Comparison(False, inst.message), inst
    c = compare(app, inst.texts, k, models, gold=inst.gold)
    if c.ok:
        c.message = inst.message + ("\n\n" + c.message if c.message else "")
    return c, inst


def mean_rank(c: Comparison, name: str) -> float:
    """Mean rank over the languages of the image the model's MRV is about: how high, not how alike."""
    ranks = list(c.ranks(name).values())
    return sum(ranks) / len(ranks)


def lowest(mrvs: Mapping[str, float]) -> list[str]:
    """The models whose MRV is the lowest as shown (3 decimals): every one of them when tied."""
    best = round(min(mrvs.values()), 3)
    return [name for name, m in mrvs.items() if round(m, 3) == best]


def verdict(c: Comparison) -> str:
    """One line: each model's MRV and mean rank, and which is more consistent (lower MRV).

    MRV only measures agreement across languages: a model can rank the gold image alike and
    low. The mean rank beside it, and a caveat when the more consistent model ranks the gold
    image lower, keep a reader from taking consistency for accuracy."""
    if len(c.languages) < 2:
        return "MRV needs the query in two or more languages: type it in another language too."
    mrvs = {name: c.mrv(name) for name in c.models}
    means = {name: mean_rank(c, name) for name in c.models}
    of = "gold image" if c.gold_id else "its consensus image"  # outside gold mode, each model's own image
    line = "; ".join(f"{name}: MRV {mrvs[name]:.3f}, {of} at mean rank {means[name]:.1f}" for name in c.models)
    what = f"the gold image {c.gold_id}" if c.gold_id else "its consensus image"
    if len(c.models) < 2:
        return line
    winners = lowest(mrvs)
    if len(winners) == len(mrvs):
        out = f"{line} — equally consistent across the {len(c.languages)} languages"
    else:
        out = (f"{line} — {' and '.join(winners)} more consistent: ranks {what} more alike across the "
               f"{len(c.languages)} languages (lower MRV)")
    higher = min(means, key=means.get)
    if c.gold_id and higher not in winners and round(means[higher], 1) < min(round(means[w], 1) for w in winners):
        out += (f", but {higher} ranks it higher (mean rank {means[higher]:.1f}): MRV measures agreement "
                "across languages, not accuracy")
    elif not c.gold_id and len({c.results[n].consensus for n in c.models}) > 1:
        out += "; the models' consensus images differ"
    return out


def rank_table(c: Comparison) -> pd.DataFrame:
    """A row per language: per model its top-1 image and the rank of the image its MRV is about;
    the last row is each model's MRV."""
    about = "gold" if c.gold_id else "consensus"
    rows = []
    for lang in c.languages:
        row = {"language": lang}
        for name in c.models:
            hits = c.results[name].hits.get(lang) or [{}]
            row[f"{name}: top 1"] = hits[0].get("image", "")
            row[f"{name}: {about} rank"] = c.ranks(name)[lang]
        rows.append(row)
    last = {"language": "MRV (std)"}
    for name in c.models:
        m = c.mrv(name)
        last[f"{name}: top 1"] = ""
        last[f"{name}: {about} rank"] = "" if m is None else f"{m:.3f}"
    rows.append(last)
    return pd.DataFrame(rows).astype({f"{n}: {about} rank": str for n in c.models})


def model_markdown(c: Comparison, name: str) -> str:
    """A model's header in the side-by-side view: its MRV and the ranks it comes from."""
    res, m = c.results[name], c.mrv(name)
    ranks = " · ".join(f"{lg} **{r}**" for lg, r in c.ranks(name).items())
    what = f"★ gold image **{c.gold_id}**" if c.gold_id else f"◆ consensus image **{res.consensus}**"
    head = f"### {name}: MRV {m:.3f}" if m is not None else f"### {name}"
    lines = [head, f"{what}: {ranks}"]
    if c.gold_id and res.mrv is not None:
        lines.append(f"query MRV (its consensus image **{res.consensus}**): {res.mrv:.3f}")
    return "\n\n".join(lines)


def model_pane(c: Comparison, name: str) -> list[tuple[Any, str]]:
    """(image, caption) pairs for one model's gr.Gallery: a row of k results per language."""
    res = c.results[name]
    out = []
    for lang in c.languages:
        for pos, (hit, (image, _)) in enumerate(zip(res.hits.get(lang, []), res.panes.get(lang, [])), 1):
            mark = "★ " if hit["image"] == c.gold_id else "◆ " if hit["image"] == res.consensus else ""
            out.append((image, f"{lang} #{pos} · {mark}{hit['image']}\nscore {hit['score']:.3f}"))
    return out


# --------------------------------------------------------------------------- evaluation


@dataclass
class EvaluationComparison:
    ok: bool
    message: str
    reports: dict[str, dict] = field(default_factory=dict)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    chart: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["metric", "R@1", "model"]))
    headline: str = ""


def evaluate(app: AppState, max_instances: Any = 100, languages: Sequence[str] = (), models: Any = None,
             progress: Callable | None = None) -> EvaluationComparison:
    """``eval_callbacks.evaluate`` per chosen model on the same instances and languages: per-language
    IR and TR R@1 and both MRVs side by side; the chart has one colour per model."""
    if not app.comparing:
        return EvaluationComparison(False, "Model comparison needs two or more models over the same images.")
    try:
        names = check_models(app, models)
    except ValueError as e:
        return EvaluationComparison(False, str(e))
    reports, notes = {}, []
    for i, name in enumerate(names):
        if progress is not None:
            progress(i / len(names), desc=f"evaluating {name}")
        res = eval_cb.evaluate(app.view(name), max_instances, languages)
        if not res.ok:
            return EvaluationComparison(False, f"{name}: {res.message}")
        reports[name] = res.report
        notes += [line.removeprefix("- ") for line in res.message.splitlines() if line.strip()]
    langs = reports[names[0]]["languages"]
    rows, chart = [], []
    for name in names:
        r = reports[name]
        row = {"model": name, "MRV t2i": round(r["mrv"]["t2i"], 3), "MRV i2t": round(r["mrv"]["i2t"], 3)}
        for direction, label in (("t2i", "IR"), ("i2t", "TR")):
            for lang in langs:
                value = round(r[direction][lang]["1"], 2)
                row[f"{label} R@1 {lang}"] = value
                chart.append({"metric": f"{label} {lang}", "R@1": value, "model": name})
        rows.append(row)
    mrvs = {name: reports[name]["mrv"]["t2i"] for name in names}
    best = lowest(mrvs)
    head = ("### MRV (text-to-image): " + "; ".join(f"{n} {m:.3f}" for n, m in mrvs.items())
            + (f" — {' and '.join(best)} more consistent" if len(best) < len(mrvs) else "")
            + f"\n{reports[names[0]]['n_instances']} instances × {len(langs)} languages, the same for every model.")
    return EvaluationComparison(True, cb.bullets(list(dict.fromkeys(notes))), reports=reports,
                                table=pd.DataFrame(rows), chart=pd.DataFrame(chart), headline=head)

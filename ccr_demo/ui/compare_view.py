"""Several models over one image list, side by side (issue 9): plain functions, no Gradio.

Why a room of its own: ``callbacks.search`` answers for one model. This runs it once per chosen
model, each on its own view of the app (``AppState.view``: that model and its gallery, the same
test set), and lays the answers side by side: each model's top k per language, the rank per
language of the image its MRV is about (the gold image in gold mode, else that model's consensus
image), its per-query MRV, and a one-line verdict naming the more consistent model, with a tie
margin (``tie_margin``) and the "no good match" signal of each model (``callbacks.no_match_line``).
``grid_html`` draws it: a row per language, a column per model. Evaluation runs
``eval_callbacks.evaluate`` per model and puts per-language R@1 in one table and one chart
(grouped bars). Every number is the one-model callback's, so the two views cannot disagree.

Models are picked by their configured names only: a request cannot name a path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ccr_demo.eval import metrics
from ccr_demo.ui import callbacks as cb
from ccr_demo.ui import eval_callbacks as eval_cb
from ccr_demo.ui.charts import grouped_bars
from ccr_demo.ui.examples import LANGUAGE_NAMES
from ccr_demo.ui.ranges import shown_value, whole_number
from ccr_demo.ui.serving import data_uri
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
    app.wait_loaded()
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


def tie_margin(n_languages: int) -> float:
    """Two MRVs closer than this are a tie: the MRV of L ranks that agree but for one language one
    place lower (std of [1, 1, ..., 1, 2]), i.e. the smallest disagreement a query can show.
    Why this: one query's MRV is the std of a handful of whole-number ranks, so a smaller
    difference (3.236 vs 3.266) is less than one language moving by one place, not a difference
    in consistency. 0.373 for 6 languages, 0.5 for 2, 0.3 for 10; 0 for one language."""
    if n_languages < 2:
        return 0.0
    ranks = np.ones((1, n_languages))
    ranks[0, -1] = 2
    return metrics.mean_rank_variance(ranks, "std")


def lowest(mrvs: Mapping[str, float], margin: float = 0.0) -> list[str]:
    """The models whose MRV is the lowest within ``margin`` (as shown, 3 decimals): all of them when tied."""
    best = round(min(mrvs.values()), 3)
    return [name for name, m in mrvs.items() if round(m, 3) - best <= round(margin, 3)]


def verdict(c: Comparison) -> str:
    """One line: which model is more consistent (lower MRV beyond the tie margin), or that they are
    about equally consistent, and what the MRVs must not be taken for.

    MRV only measures agreement across languages: a model can rank the gold image alike and
    low, and a query that matches nothing well has ranks that order poor matches. The numbers
    themselves are in each model's header (``model_markdown``), not repeated here."""
    if len(c.languages) < 2:
        return "MRV needs the query in two or more languages: type it in another language too."
    mrvs = {name: c.mrv(name) for name in c.models}
    means = {name: mean_rank(c, name) for name in c.models}
    what = f"the gold image {c.gold_id}" if c.gold_id else "its consensus image"
    if len(c.models) < 2:
        out = f"{c.models[0]}: MRV {mrvs[c.models[0]]:.3f}"
    else:
        margin = tie_margin(len(c.languages))
        winners = lowest(mrvs, margin)
        spread = max(mrvs.values()) - min(mrvs.values())
        why = (f"MRVs {spread:.3f} apart, within the tie margin {margin:.3f}: less than one language ranking "
               "the image one place lower")
        if len(winners) == len(mrvs):
            out = f"{' and '.join(c.models)}: about equally consistent across the {len(c.languages)} languages ({why})"
        else:
            rest = [n for n in c.models if n not in winners]
            gap = min(mrvs[n] for n in rest) - max(mrvs[w] for w in winners)
            tie = f"; {' and '.join(winners)} about equally" if len(winners) > 1 else ""
            out = (f"{' and '.join(winners)} more consistent than {' and '.join(rest)}: ranks {what} more alike "
                   f"across the {len(c.languages)} languages (MRV lower by {gap:.3f}, beyond the tie margin "
                   f"{margin:.3f}{tie})")
        higher = min(means, key=means.get)
        if c.gold_id and higher not in winners and round(means[higher], 1) < min(round(means[w], 1) for w in winners):
            out += (f", but {higher} ranks it higher (mean rank {means[higher]:.1f}): MRV measures agreement "
                    "across languages, not accuracy")
        elif not c.gold_id and len({c.results[n].consensus for n in c.models}) > 1:
            out += "; the models' consensus images differ"
    poor = {name: c.results[name].no_match for name in c.models if c.results[name].no_match}
    if poor and all(len(poor.get(n, [])) == len(c.languages) for n in c.models):
        out += (". ⚠ No good match for any model in any language (every best score is below its model's "
                "calibrated threshold): nothing in the gallery fits this query, so these MRVs compare orders of "
                "poor matches")
    elif poor:
        out += ". ⚠ No good match for " + "; ".join(f"{n} in {', '.join(langs)}" for n, langs in poor.items()) \
            + " (best score below the model's calibrated threshold): those ranks order poor matches"
    return out


def model_markdown(c: Comparison, name: str) -> str:
    """A model's header in the side-by-side view: its MRV, large, with the mean rank beside it
    (how high, not only how alike), and the ranks they come from."""
    res, m = c.results[name], c.mrv(name)
    ranks = " · ".join(f"{lg} **{r}**" for lg, r in c.ranks(name).items())
    what = f"★ gold image **{c.gold_id}**" if c.gold_id else f"◆ consensus image **{res.consensus}**"
    head = (f"### {name}: MRV {m:.3f} · mean rank {mean_rank(c, name):.1f}" if m is not None
            else f"### {name}: mean rank {mean_rank(c, name):.1f}")
    return "\n\n".join([head, f"{what}: {ranks}"])


def grid_html(c: Comparison, gallery_of: Callable[[str], Any]) -> str:
    """The side-by-side view as HTML (styled by the app's CSS, ``.ccr-grid``): a header per model
    (its MRV, large, and mean rank), then a row per language, labelled with it, holding each
    model's top k (images inline as data URIs: nothing is served from a path).
    ``gallery_of(name)``: the model's gallery (its images)."""
    names = list(c.results)
    k = max((len(c.results[n].hits.get(lg, [])) for n in names for lg in c.languages), default=1) or 1
    out = [f'<div class="ccr-grid" style="grid-template-columns: 7.5em repeat({len(names)}, 1fr)">',
           "<div></div>"]
    for i, name in enumerate(names):
        m = c.mrv(name)
        of = f"★ gold image {c.gold_id}" if c.gold_id else f"◆ consensus image {c.results[name].consensus}"
        mrv = f'MRV <b class="mrv">{m:.3f}</b> · ' if m is not None else ""
        out.append(f'<div class="head" id="compare-head-{i}"><b>{escape(name)}</b><br>{mrv}mean rank '
                   f'<b>{mean_rank(c, name):.1f}</b><br><small>{escape(of)}</small></div>')
    for lang in c.languages:
        out.append(f'<div class="lang" data-lang="{lang}">{lang}<small>{escape(LANGUAGE_NAMES.get(lang, ""))}</small>'
                   "</div>")
        for i, name in enumerate(names):
            res = c.results[name]
            poor = lang in res.no_match
            rank = c.ranks(name).get(lang)
            mark = "★" if c.gold_id else "◆"
            cell = [f'<div class="cell{" poor" if poor else ""}" data-model="{escape(name)}" data-lang="{lang}" '
                    f'style="grid-template-columns: repeat({k}, 1fr)">']
            for pos, (hit, row) in enumerate(zip(res.hits.get(lang, []), res.pane_rows.get(lang, [])), 1):
                sign = "★ " if hit["image"] == c.gold_id else "◆ " if hit["image"] == res.consensus else ""
                src = data_uri(cb.item_image(gallery_of(name), row))
                cell.append(f'<figure><img src="{src}" alt="{escape(hit["image"])}"><figcaption>#{pos} {sign}'
                            f'{escape(hit["image"])}<br>{hit["score"]:.3f}</figcaption></figure>')
            cell.append("</div>")
            note = f"{mark} at rank {rank}" if rank is not None else ""
            if poor:
                note += f" · no good match (best {res.best[lang]:.3f} < {res.no_match_threshold:.3f})"
            out.append(f'<div>{"".join(cell)}<div class="note">{escape(note)}</div></div>')
    out.append("</div>")
    return "".join(out)


# --------------------------------------------------------------------------- evaluation


@dataclass
class EvaluationComparison:
    ok: bool
    message: str
    reports: dict[str, dict] = field(default_factory=dict)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    chart: str = ""  # text -> image R@1 per language, a bar per model (``charts``)
    headline: str = ""


def evaluate(app: AppState, max_instances: Any = 100, languages: Sequence[str] = (), models: Any = None,
             progress: Callable | None = None) -> EvaluationComparison:
    """``eval_callbacks.evaluate`` per chosen model on the same instances and languages: per-language
    IR and TR R@1 side by side, MRVs in the headline; the chart has one colour per model."""
    app.wait_loaded()
    if not app.comparing:
        return EvaluationComparison(False, "Model comparison needs two or more models over the same images.")
    try:
        names = check_models(app, models)
    except ValueError as e:
        return EvaluationComparison(False, str(e))
    reports, notes = {}, []
    for i, name in enumerate(names):
        def step(fraction: float, desc: str = "", i: int = i, name: str = name) -> None:
            progress((i + fraction) / len(names), desc=f"{name}: {desc}")  # this model's share of the bar

        if progress is not None:
            progress(i / len(names), desc=f"evaluating {name}")
        res = eval_cb.evaluate(app.view(name), max_instances, languages, progress=step if progress else None)
        if not res.ok:
            return EvaluationComparison(False, f"{name}: {res.message}")
        reports[name] = res.report
        notes += [line.removeprefix("- ") for line in res.message.splitlines() if line.strip()]
    langs = reports[names[0]]["languages"]
    # a row per language, a column per model and direction: it fits the page for 10 languages
    rows = [{"language": lang, **{f"{name} {label} R@1": round(reports[name][direction][lang]["1"], 2)
                                  for direction, label in (("t2i", "text → image"), ("i2t", "image → text"))
                                  for name in names}} for lang in langs]
    n = reports[names[0]]["n_instances"]
    chart = grouped_bars(f"R@1 (%), text → image: {n} instances among {n} images", langs,
                         {name: {lang: reports[name]["t2i"][lang]["1"] for lang in langs} for name in names},
                         chart_id="eval-compare-chart")
    mrvs = {name: reports[name]["mrv"]["t2i"] for name in names}
    best = lowest(mrvs)
    total = len(app.test_set) if app.test_set is not None else n
    head = ("### MRV (text-to-image): " + "; ".join(f"{n} {m:.3f}" for n, m in mrvs.items())
            + (f" — {' and '.join(best)} more consistent" if len(best) < len(mrvs) else "")
            + f"\n{eval_cb.among(n, total)} × {len(langs)} languages, the same for every model.")
    return EvaluationComparison(True, cb.bullets(list(dict.fromkeys(notes))), reports=reports,
                                table=pd.DataFrame(rows), chart=chart, headline=head)

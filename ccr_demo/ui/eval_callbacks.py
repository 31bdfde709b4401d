"""The Evaluate tab, as plain Python: each model's saved full-gallery figures (its eval report,
``model_info``), and a live evaluation (R@1/5/10 both ways, mean recall, MRV and the typed-query
precision) on the first instances of the test set, as tables and charts (``charts``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pandas as pd

from ccr_demo.ui.callbacks import bullets, not_ready_message
from ccr_demo.ui.charts import grouped_bars
from ccr_demo.ui.ranges import whole_number
from ccr_demo.ui.state import AppState

log = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    ok: bool
    message: str
    report: dict | None = None
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    chart: str = ""  # R@1 both ways per language, grouped bars from 0 (an SVG, ``charts``)
    headline: str = ""  # MRV both ways, instances among how many images, mean recall
    markdown: str = ""  # the full report as model cards print it (ccr_demo.eval.tables.report_table)
    query_table: pd.DataFrame = field(default_factory=pd.DataFrame)  # typed queries: P@1, P@5, mAP@10
    query_headline: str = ""  # typed queries: consistency across languages


def evaluate(app: AppState, max_instances: Any = 100, languages: Sequence[str] = (),
             progress: Callable | None = None, reuse_gallery: bool = True) -> EvaluationResult:
    """Recall@1/5/10 both ways, mean recall and MRV on the first ``max_instances`` of the test set.

    When the gallery holds the test images embedded by this model, their stored vectors are
    reused (only captions are encoded): the same numbers, without re-encoding images.
    Each instance is ranked among the chosen instances' images only (N among N): with fewer
    images R@1 is higher than the saved full-gallery figures; the headline says so.
    """
    import torch  # here, not at import: the page is built and served before torch is loaded

    from ccr_demo.eval.evaluate import evaluate as run_evaluation
    from ccr_demo.eval.evaluate import query_report_from_embeddings, report_from_embeddings
    from ccr_demo.eval.tables import report_table
    from ccr_demo.model.fingerprint import weights_fingerprint

    app.wait_loaded()
    if app.model is None:
        return EvaluationResult(False, not_ready_message(app))
    if app.test_set is None:
        return EvaluationResult(False, "Evaluation needs a parallel test set: none was loaded. "
                                + app.status_markdown())
    ts = app.test_set
    langs = [lang for lang in languages if lang in ts.languages] or list(ts.languages)
    try:
        n = whole_number(max_instances, 1, len(ts), "max_instances")
    except ValueError as e:
        return EvaluationResult(False, str(e))
    sub = ts.with_languages(langs).subset(n)
    notes = []
    dropped = [lang for lang in languages if lang not in ts.languages]
    if dropped:
        notes.append(f"the test set has no {', '.join(dropped)} captions: left out")
    g = app.gallery
    rows = None
    if reuse_gallery and g is not None and g.fingerprint == weights_fingerprint(app.model):
        try:
            rows = [g.position(i) for i in sub.image_ids]
        except KeyError:
            rows = None
    queries = None
    if app.queries is not None and all(lang in app.queries.texts for lang in langs):
        queries = app.queries.with_languages(langs).restricted(sub.image_ids, max_queries=n) or None
    try:
        if rows is not None:
            image_emb = torch.from_numpy(g.vectors[rows])
            text_emb = {}
            for i, lang in enumerate(langs):
                if progress is not None:
                    progress(i / len(langs), desc=f"encoding {lang} captions")
                text_emb[lang] = app.model.encode_texts(sub.captions[lang])
            report = report_from_embeddings(image_emb, text_emb, sub)
            notes.append("image embeddings: the gallery's stored vectors (same model); captions encoded now")
            if queries is not None:
                if progress is not None:
                    progress(0.9, desc=f"encoding {len(queries)} typed queries")
                query_emb = {lang: app.model.encode_texts(queries.texts[lang]) for lang in langs}
                report["queries"] = query_report_from_embeddings(image_emb, query_emb, queries, sub.image_ids)
        else:
            if progress is not None:
                progress(0.0, desc=f"encoding {n} images and their captions")
            report = run_evaluation(app.model, sub, langs, progress=False, queries=queries)
        if queries is not None:
            notes.append(f"typed queries: the {len(queries)} of the test set's typed queries true of at least one of "
                         f"these {n} images, ranked among them")
    except Exception as e:  # noqa: BLE001 - e.g. missing image files
        log.exception("evaluation failed")
        return EvaluationResult(False, f"Evaluation failed: {e}")
    table = pd.DataFrame([{"language": lang,
                           **{f"IR R@{k}": round(report["t2i"][lang][str(k)], 2) for k in (1, 5, 10)},
                           **{f"TR R@{k}": round(report["i2t"][lang][str(k)], 2) for k in (1, 5, 10)},
                           "mean recall": round(report["mean_recall"][lang], 2)} for lang in langs])
    chart = grouped_bars(f"R@1 (%) per language: {n} instances among {n} images",
                         langs, {"text → image": dict(zip(langs, table["IR R@1"])),
                                 "image → text": dict(zip(langs, table["TR R@1"]))}, chart_id="eval-chart")
    mrv = report["mrv"]
    head = (f"### MRV: text-to-image {mrv['t2i']:.3f} · image-to-text {mrv['i2t']:.3f}\n"
            f"{among(n, len(ts))} × {len(langs)} languages; mean recall over languages "
            f"{report['mean_recall']['all']:.2f}.")
    query_table, query_head = pd.DataFrame(), ""
    if report.get("queries"):
        q = report["queries"]
        query_table = pd.DataFrame([{"language": lang, **{m: round(v, 3) for m, v in q["per_language"][lang].items()}}
                                    for lang in langs])
        c = q["consistency"]
        query_head = (f"**Typed queries** ({q['n_queries']} queries, {q['mean_relevant']:.1f} relevant images each): "
                      f"mean P@5 {q['mean']['p@5']:.3f} · first-relevant-rank std across languages "
                      f"{c['first_rank_std']:.3f} · top-5 overlap {c['top5_overlap']:.3f}")
    report = app.shown_json(report)  # the report names the test set's files: no server path in the answer
    return EvaluationResult(True, bullets(notes), report=report, table=table, chart=chart, headline=head,
                            markdown=report_table(report), query_table=query_table, query_headline=query_head)



def among(n: int, total: int) -> str:
    """How a live evaluation's ranking is made, said where its numbers are."""
    return (f"**{n} instances ranked among their {n} images** (not all {total}: with fewer images to "
            "choose from, R@1 is higher than the saved full-gallery figures above)") if n < total else \
        f"**all {n} instances ranked among all {n} images**"


def saved_figures(app: AppState) -> tuple[str, str, str]:
    """(Markdown, R@1 text→image chart, R@1 image→text chart) of every configured model's saved
    evaluation on the full test set (its eval report, ``model_info``): what the models reach,
    without running anything; "" where no model has a report."""
    reports = {name: info.report for name, info in app.infos.items() if info.report is not None}
    if not reports:
        return "", "", ""
    langs = list(dict.fromkeys(lang for r in reports.values() for lang in r.get("languages") or r["t2i"]))
    lines = []
    for name, r in reports.items():
        n, mrv = r.get("n_instances"), r.get("mrv") or {}
        ir = [r["t2i"][lg]["1"] for lg in langs if lg in r["t2i"]]
        lines.append(f"- **{name}**: {n} instances ranked among all {n} images, {len(ir)} languages; text → image "
                     f"R@1 {min(ir):.1f}-{max(ir):.1f}% · MRV text → image {mrv.get('t2i', float('nan')):.3f}, "
                     f"image → text {mrv.get('i2t', float('nan')):.3f}")
    missing = [name for name, info in app.infos.items() if info.report is None]
    if missing:
        lines.append(f"- no saved evaluation for {', '.join(missing)}")
    head = ("### Saved evaluation on the full test set\nEach model's own evaluation report (made when it was "
            "trained or by `python -m ccr_demo.eval`): every instance ranked among every test image.\n\n"
            + "\n".join(lines))

    def chart(direction: str, what: str) -> str:
        return grouped_bars(f"R@1 (%), {what}, full test set", langs,
                            {name: {lg: r[direction][lg]["1"] for lg in langs if lg in r.get(direction, {})}
                             for name, r in reports.items()}, chart_id=f"saved-{direction}")

    return head, chart("t2i", "text → image"), chart("i2t", "image → text")

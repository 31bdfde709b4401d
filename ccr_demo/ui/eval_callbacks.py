"""The Evaluate tab, as plain Python: R@1/5/10 both ways, mean recall, MRV and the typed-query
precision on the first instances of the test set, as tables and chart rows."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pandas as pd
import torch

from ccr_demo.model.fingerprint import weights_fingerprint
from ccr_demo.ui.callbacks import bullets, not_ready_message
from ccr_demo.ui.ranges import whole_number
from ccr_demo.ui.state import AppState

log = logging.getLogger(__name__)


METRIC_ORDER = ["IR R@1", "IR R@5", "IR R@10", "TR R@1", "TR R@5", "TR R@10"]


@dataclass
class EvaluationResult:
    ok: bool
    message: str
    report: dict | None = None
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    chart: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["metric", "recall", "language"]))
    headline: str = ""  # MRV both ways, instances, mean recall
    markdown: str = ""  # the full report as model cards print it (ccr_demo.eval.tables.report_table)
    query_table: pd.DataFrame = field(default_factory=pd.DataFrame)  # typed queries: P@1, P@5, mAP@10
    query_headline: str = ""  # typed queries: consistency across languages


def evaluate(app: AppState, max_instances: Any = 100, languages: Sequence[str] = (),
             progress: Callable | None = None, reuse_gallery: bool = True) -> EvaluationResult:
    """Recall@1/5/10 both ways, mean recall and MRV on the first ``max_instances`` of the test set.

    When the gallery holds the test images embedded by this model, their stored vectors are
    reused (only captions are encoded): the same numbers, without re-encoding images.
    """
    from ccr_demo.eval.evaluate import evaluate as run_evaluation
    from ccr_demo.eval.evaluate import query_report_from_embeddings, report_from_embeddings
    from ccr_demo.eval.tables import report_table

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
            notes.append(f"typed queries: the {len(queries)} of `{app.queries.name}` true of at least one of "
                         f"these {n} images, ranked among them")
    except Exception as e:  # noqa: BLE001 - e.g. missing image files
        log.exception("evaluation failed")
        return EvaluationResult(False, f"Evaluation failed: {e}")
    table = pd.DataFrame([{"language": lang,
                           **{f"IR R@{k}": round(report["t2i"][lang][str(k)], 2) for k in (1, 5, 10)},
                           **{f"TR R@{k}": round(report["i2t"][lang][str(k)], 2) for k in (1, 5, 10)},
                           "mean recall": round(report["mean_recall"][lang], 2)} for lang in langs])
    chart = table.melt(id_vars="language", value_vars=METRIC_ORDER, var_name="metric", value_name="recall")
    mrv = report["mrv"]
    head = (f"### MRV: text-to-image {mrv['t2i']:.3f} · image-to-text {mrv['i2t']:.3f}\n"
            f"{n} instances × {len(langs)} languages of `{ts.name}`; mean recall over languages "
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
    return EvaluationResult(True, bullets(notes), report=report, table=table, chart=chart, headline=head,
                            markdown=report_table(report), query_table=query_table, query_headline=query_head)


"""Model cards and Hub helpers, built on huggingface_hub's ModelCard / ModelCardData.

The card is written from what was measured (sentence-transformers style): the trainer
passes its evaluation report, and the card shows a per-language table plus model-index
metadata so the Hub can display the numbers.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

CODE_URL = "https://github.com/ccr-demo/ccr-demo"
PAPER = ("Nie et al., Improving the Consistency in Cross-Lingual Cross-Modal Retrieval with 1-to-K "
         "Contrastive Learning, KDD 2024 (arXiv 2406.18254)")

_TEMPLATE = """---
{{ card_data }}
---

# {{ model_name }}

A cross-lingual cross-modal retrieval model (image <-> text in {{ n_languages }} languages) made with
[ccr_demo]({{ code_url }}), which implements 1-to-K contrastive learning and Mean Rank Variance (MRV)
from {{ paper }}.

## Architecture
| part | value |
|---|---|
| image tower | `{{ image_tower }}` ({{ image_state }}) |
| text tower | `{{ text_tower }}` ({{ text_pooling }} pooling, {{ text_state }}) |
| embedding size | {{ embed_dim }} |
| fusion encoder | {{ fusion }} |
| temperature | {{ temperature }} |
| languages (K order) | {{ languages }} |

{{ training_section }}
{{ results_section }}
## Use
```python
from ccr_demo.model import CCRModel
model = CCRModel.from_pretrained("{{ repo_or_path }}")
image_emb = model.encode_images([pil_image])           # [1, {{ embed_dim }}], L2-normalised
text_emb = model.encode_texts(["a red circle", "ein roter Kreis"])
scores = text_emb @ image_emb.T
```
"""


def report_table(report: dict) -> str:
    """Markdown table of an evaluation report: per-language R@1/5/10 both ways, mean recall, MRV."""
    langs = report["languages"]
    rows = ["| language | IR R@1 | IR R@5 | IR R@10 | TR R@1 | TR R@5 | TR R@10 | mean recall |",
            "|---|---|---|---|---|---|---|---|"]
    for lang in langs:
        t2i, i2t = report["t2i"][lang], report["i2t"][lang]
        rows.append(f"| {lang} | {t2i['1']:.2f} | {t2i['5']:.2f} | {t2i['10']:.2f} | "
                    f"{i2t['1']:.2f} | {i2t['5']:.2f} | {i2t['10']:.2f} | {report['mean_recall'][lang]:.2f} |")
    rows.append("")
    rows.append("| | text-to-image (IR) | image-to-text (TR) |")
    rows.append("|---|---|---|")
    rows.append(f"| MRV (std of ranks across languages, lower is better) | {report['mrv']['t2i']:.3f} | "
                f"{report['mrv']['i2t']:.3f} |")
    rows.append(f"| rank variance (MRV's variance form) | {report['mrv_var']['t2i']:.3f} | "
                f"{report['mrv_var']['i2t']:.3f} |")
    if report.get("queries"):
        rows += ["", queries_table(report)]
    if report.get("rerank"):
        rows += ["", rerank_table(report)]
    return "\n".join(rows)


def rerank_table(report: dict) -> str:
    """Markdown: R@1 both ways and MRV, contrastive vs exact re-ranking vs the official protocol."""
    if "rerank" not in report:
        return ""
    blocks = [("contrastive", report), ("re-ranked (exact)", report["rerank"]), ("official protocol", report["official"])]
    lines = [f"ITM re-ranking of the contrastive top {report['rerank']['k']}", "",
             "| ranking | language | IR R@1 | IR R@5 | IR R@10 | TR R@1 | TR R@5 | TR R@10 |", "|---" * 8 + "|"]
    for name, b in blocks:
        for lang in report["languages"]:
            t, i = b["t2i"][lang], b["i2t"][lang]
            lines.append(f"| {name} | {lang} | {t['1']:.2f} | {t['5']:.2f} | {t['10']:.2f} | "
                         f"{i['1']:.2f} | {i['5']:.2f} | {i['10']:.2f} |")
    mrv_langs = ",".join(report["rerank"]["mrv_languages"])
    contrastive_mrv = report["mrv_subset"]["mrv"] if "mrv_subset" in report else report["mrv"]
    lines += ["", f"| MRV over {mrv_langs} | IR | TR |", "|---|---|---|",
              f"| contrastive | {contrastive_mrv['t2i']:.3f} | {contrastive_mrv['i2t']:.3f} |",
              f"| re-ranked (exact) | {report['rerank']['mrv']['t2i']:.3f} | {report['rerank']['mrv']['i2t']:.3f} |",
              f"| official protocol | {report['official']['mrv']['t2i']:.3f} | {report['official']['mrv']['i2t']:.3f} |"]
    q = report.get("queries") or {}
    if q.get("rerank"):
        lines += ["", "Typed queries, P@5: " + ", ".join(
            f"{lang} {q['per_language'][lang]['p@5']:.3f} -> {q['rerank']['p@5'][lang]:.3f}" for lang in q["languages"])
            + " (contrastive -> re-ranked)"]
    return "\n".join(lines)


def queries_table(report: dict) -> str:
    """Markdown table of a report's typed-query metrics (empty when it has none)."""
    q = report.get("queries")
    if not q:
        return ""
    names = list(q["mean"])
    lines = [f"Typed queries ({q['n_queries']} queries, {q['mean_relevant']:.1f} relevant images each on average)",
             "", "| language | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for lang in q["languages"]:
        lines.append(f"| {lang} | " + " | ".join(f"{q['per_language'][lang][m]:.3f}" for m in names) + " |")
    lines.append("| mean | " + " | ".join(f"{q['mean'][m]:.3f}" for m in names) + " |")
    c = q["consistency"]
    lines += ["", f"Consistency across languages: first-relevant-rank std {c['first_rank_std']:.3f} "
                  f"(variance {c['first_rank_var']:.3f}), top-5 overlap {c['top5_overlap']:.3f}"]
    return "\n".join(lines)



def eval_results(report: dict, dataset_name: str, dataset_type: str = "parallel-retrieval") -> list[EvalResult]:
    """model-index entries for the Hub: per-language R@1 both ways, and MRV."""
    out = []
    for lang in report["languages"]:
        for direction, task in (("t2i", "text-to-image"), ("i2t", "image-to-text")):
            out.append(EvalResult(task_type=f"{task}-retrieval", dataset_type=dataset_type, dataset_name=dataset_name,
                                  dataset_config=lang, metric_type="recall@1", metric_name=f"R@1 {task} ({lang})",
                                  metric_value=round(report[direction][lang]["1"], 2)))
    for direction, task in (("t2i", "text-to-image"), ("i2t", "image-to-text")):
        out.append(EvalResult(task_type=f"{task}-retrieval", dataset_type=dataset_type, dataset_name=dataset_name,
                              metric_type="mrv", metric_name=f"MRV {task}",
                              metric_value=round(report["mrv"][direction], 4)))
    queries = report.get("queries")
    for lang in (queries or {}).get("languages", []):
        out.append(EvalResult(task_type="text-to-image-retrieval", dataset_type=dataset_type,
                              dataset_name=f"{dataset_name} typed queries", dataset_config=lang,
                              metric_type="precision@5", metric_name=f"typed-query P@5 ({lang})",
                              metric_value=round(queries["per_language"][lang]["p@5"], 4)))
    return out


def render_model_card(model, *, model_name: str | None = None, report: dict | None = None,
                      dataset_name: str = "", training: dict[str, Any] | None = None,
                      repo_or_path: str = "path/to/model", **_: Any) -> ModelCard:
    """A ModelCard for ``model``; ``report`` is an evaluation report (ccr_demo.evaluate)."""
    cfg = model.config
    card_data = ModelCardData(
        library_name="ccr_demo",
        language=list(cfg.languages),
        license="apache-2.0",
        tags=["cross-lingual", "image-text-retrieval", "1-to-k-contrastive", "mrv"],
        pipeline_tag="zero-shot-image-classification",
        model_name=model_name or "ccr_demo model",
        eval_results=eval_results(report, dataset_name) if report else None,
    )
    if training:
        lines = ["## Training", "| setting | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in training.items()]
        training_section = "\n".join(lines) + "\n"
    else:
        training_section = "## Training\nNo training record was given when this card was written.\n"
    if report:
        results_section = (f"## Results\nMeasured on `{dataset_name}` ({report.get('n_instances', '?')} parallel "
                           f"instances) at the end of training.\n\n" + report_table(report) + "\n")
    else:
        results_section = "## Results\nNo evaluation was run for this card.\n"
    return ModelCard.from_template(
        card_data,
        template_str=_TEMPLATE,
        model_name=model_name or "ccr_demo model",
        n_languages=len(cfg.languages),
        code_url=CODE_URL,
        paper=PAPER,
        image_tower=cfg.image_tower,
        image_state="locked" if getattr(model.image_tower, "locked", False) else "trained",
        text_tower=cfg.text_tower,
        text_pooling=cfg.text_pooling,
        text_state="locked" if getattr(model.text_tower, "locked", False) else "trained",
        embed_dim=cfg.embed_dim,
        fusion=(f"{cfg.fusion.layers} layers (width {model.fusion.width}, {cfg.fusion.heads} heads): text states "
                f"cross-attend to {model.fusion.num_image_tokens} image tokens + the pooled one; ITM head (re-ranks "
                "the contrastive top k: `python -m ccr_demo.evaluate --rerank-k 16`) and MLM head"
                if getattr(model, "fusion", None) is not None else "none (dual encoder)"),
        temperature=f"{float(model.logit_temperature.detach()):.4f}",
        languages=", ".join(cfg.languages),
        training_section=training_section,
        results_section=results_section,
        repo_or_path=repo_or_path,
    )


class HubPushError(RuntimeError):
    """Uploading failed (no network, no token, no permission); the local folder is untouched."""


def push_model_folder(folder: str, repo_id: str, token: str | None = None, private: bool | None = None) -> str:
    """Upload a saved model folder to the Hub as is (no re-save, so local and remote are identical)."""
    from pathlib import Path

    from huggingface_hub import HfApi
    import httpx
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    if not (Path(folder) / "config.json").is_file():
        raise HubPushError(f"{folder} is not a saved model folder (no config.json)")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="Upload ccr_demo model")
    except LocalTokenNotFoundError:
        raise HubPushError("no Hugging Face token: run `hf auth login` or set HF_TOKEN") from None
    except HfHubHTTPError as e:
        raise HubPushError(f"the Hub refused the upload to {repo_id!r}: {e}") from None
    except (OSError, httpx.HTTPError, OfflineModeIsEnabled) as e:  # no network, or HF_HUB_OFFLINE=1
        raise HubPushError(f"could not reach the Hub to upload {repo_id!r}: {e}") from None
    return str(getattr(info, "commit_url", info))

"""Model cards and Hub uploads, built on huggingface_hub's ModelCard / ModelCardData / HfApi.

The card is written from what was measured: the trainer passes the evaluation report as
tables and model-index entries (`ccr_demo.eval.tables`), so the Hub can display the numbers.
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


def render_model_card(model, *, model_name: str | None = None, results: str | None = None,
                      eval_results: list[EvalResult] | None = None, dataset_name: str = "",
                      n_instances: int | None = None, training: dict[str, Any] | None = None,
                      repo_or_path: str = "path/to/model", **_: Any) -> ModelCard:
    """A ModelCard for ``model``, written from what was measured: ``results`` is the evaluation
    report as a markdown table and ``eval_results`` its model-index entries (both made by
    ``ccr_demo.eval.tables`` from a report; the trainer passes them), ``training`` the run's
    settings. Other keywords (what huggingface_hub passes along) are ignored."""
    if "report" in _:  # the old signature: a report would silently vanish from the card
        raise TypeError("render_model_card takes results= (eval.tables.report_table(report)) and "
                        "eval_results= (eval.tables.eval_results(report, dataset)), not report=")
    cfg = model.config
    card_data = ModelCardData(
        library_name="ccr_demo",
        language=list(cfg.languages),
        license="apache-2.0",
        tags=["cross-lingual", "image-text-retrieval", "1-to-k-contrastive", "mrv"],
        pipeline_tag="zero-shot-image-classification",
        model_name=model_name or "ccr_demo model",
        eval_results=eval_results or None,
    )
    if training:
        lines = ["## Training", "| setting | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in training.items()]
        training_section = "\n".join(lines) + "\n"
    else:
        training_section = "## Training\nNo training record was given when this card was written.\n"
    if results:
        results_section = (f"## Results\nMeasured on `{dataset_name}` ({n_instances or '?'} parallel "
                           f"instances) at the end of training.\n\n" + results + "\n")
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
                "the contrastive top k: `python -m ccr_demo.eval --rerank-k 16`) and MLM head"
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

    import httpx
    from huggingface_hub import HfApi
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


"""What the app knows of a configured model from its files alone, before (and without) loading it:
its gallery's size and fingerprint, whether it has a fusion encoder, its saved full-gallery
evaluation, and its calibrated "no good match" score.

Why before loading: the page is served before any model is loaded (``loading``), and the
Evaluate tab's saved figures and the re-rank switch's help need none of the weights. Only JSON
files are read here (no torch).

Files, beside a model folder ``<folder>/model<suffix>`` (``assets/model``, ``assets/model-1to1``):

- ``<folder>/eval_report<suffix>.json``: the model's evaluation on the full shipped test set,
  as ``python -m ccr_demo.eval`` writes it (one report) or as a training run writes it
  (``{"reports": [...]}``, the last one is the final evaluation);
- ``<folder>/no_match.json``: per model folder name, the score under which a language's best
  result counts as "no good match" (``calibration``, which makes the file, says how), with the
  weights fingerprint it was computed for: a retrained model's entry no longer applies and the
  app says to run the calibration again instead of using another model's number.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

NO_MATCH_FILE = "no_match.json"
CALIBRATE_COMMAND = "python -m ccr_demo.ui.calibration --assets assets"


@dataclass
class ModelInfo:
    """A configured model as its files describe it (None where a file is missing or unreadable)."""

    name: str
    where: str  # the model's location as configured (a folder or a Hub id)
    gallery: str | None = None  # its gallery's location as configured
    n_images: int | None = None  # from the gallery's gallery.json
    fingerprint: str | None = None  # the weights fingerprint the gallery was built with
    fusion: bool | None = None  # whether config.json gives it a fusion encoder (ITM re-ranking)
    report: dict | None = None  # its saved full-gallery evaluation
    report_file: str | None = None
    no_match: float | None = None  # calibrated "no good match" threshold on the contrastive score
    no_match_about: dict | None = None  # how that threshold was made (the calibration entry)
    note: str = ""  # why there is no threshold, when there is none


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or unreadable (logged)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("cannot read %s: %s", path.name, e)
        return None


def final_report(data: Any) -> dict | None:
    """The evaluation report in an eval_report file: the file itself, or a run's last report."""
    if isinstance(data, dict) and isinstance(data.get("reports"), list) and data["reports"]:
        data = data["reports"][-1]
    return data if isinstance(data, dict) and isinstance(data.get("t2i"), dict) else None


def report_path(model_folder: Path) -> Path | None:
    """``eval_report<suffix>.json`` beside ``model<suffix>`` (None for a folder not so named)."""
    name = model_folder.name
    if not name.startswith("model"):
        return None
    return model_folder.parent / f"eval_report{name[len('model'):]}.json"


def is_folder(where: str | None) -> bool:
    """``Path.is_dir`` that is False, not an exception, for a name the OS refuses (over 255 bytes,
    a NUL byte): a bad setting is reported by the loading, it must not end the app here."""
    try:
        return bool(where) and Path(where).is_dir()
    except (OSError, ValueError):
        return False


def describe(name: str, where: str, gallery: str | None) -> ModelInfo:
    """What the files of a model at ``where`` (and of its gallery) say, read without torch."""
    info = ModelInfo(name, where, gallery)
    folder = Path(where)
    if not is_folder(where):  # a Hub id (nothing to read before it is downloaded), or unusable
        info.note = "not a local folder"
        return info
    config = read_json(folder / "config.json")
    if isinstance(config, dict):
        fusion = (config.get("model") or {}).get("fusion") or {}
        info.fusion = bool(isinstance(fusion, dict) and fusion.get("layers"))
    meta = read_json(Path(gallery) / "gallery.json") if is_folder(gallery) else None
    if isinstance(meta, dict):
        info.n_images = meta.get("count")
        info.fingerprint = meta.get("model_fingerprint")
    path = report_path(folder)
    if path is not None:
        info.report = final_report(read_json(path))
        info.report_file = str(path) if info.report is not None else None
    entries = read_json(folder.parent / NO_MATCH_FILE)
    entry = (entries.get("models") or {}).get(folder.name) if isinstance(entries, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("threshold"), (int, float)):
        info.note = f"not calibrated (no entry for it in {NO_MATCH_FILE}; run `{CALIBRATE_COMMAND}`)"
    elif info.fingerprint is None or entry.get("fingerprint") != info.fingerprint:
        info.note = (f"its entry in {NO_MATCH_FILE} was made for other weights (the model was retrained): "
                     f"run `{CALIBRATE_COMMAND}` again")
    else:
        info.no_match = float(entry["threshold"])
        info.no_match_about = entry
    return info


def mean_r1(section: dict, direction: str = "t2i") -> float | None:
    """Mean R@1 over the languages of a report (or of its ``rerank`` part)."""
    values = [v.get("1") for v in (section.get(direction) or {}).values() if isinstance(v, dict)]
    values = [v for v in values if isinstance(v, (int, float))]
    return sum(values) / len(values) if values else None


def rerank_effect(info: ModelInfo) -> str:
    """What ITM re-ranking measurably does for this model, from its saved report, in one sentence."""
    report = info.report or {}
    rr = report.get("rerank")
    if not isinstance(rr, dict):
        return ("its effect on this model was not measured (no re-ranking figures in its eval report): "
                "compare the → figures after a search")
    before, after = mean_r1(report), mean_r1(rr)
    mrv_before, mrv_after = (report.get("mrv") or {}).get("t2i"), (rr.get("mrv") or {}).get("t2i")
    if before is None or after is None:
        return "its eval report has no R@1 to compare"
    parts = [f"text-to-image R@1 {before:.1f}% → {after:.1f}% (mean over {len(report.get('t2i', {}))} languages)"]
    if isinstance(mrv_before, (int, float)) and isinstance(mrv_after, (int, float)):
        parts.append(f"MRV {mrv_before:.3f} → {mrv_after:.3f}")
    worse = after < before
    verdict = "it makes this model's results worse" if worse else "it improves this model's results"
    n = report.get("n_instances")
    return (f"measured on {n} test instances among all {n} images (its eval report), re-ranking the top "
            f"{rr.get('k', '?')} changes {' and '.join(parts)}: {verdict}")

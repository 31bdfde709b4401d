"""Where the training loop logs its scalars: ``train.log_with`` -> accelerate's trackers
(`build_trackers`), with `JSONLinesTracker`, a built-in one writing ``OUTPUT/logs/train_log.jsonl``
that needs no extra package."""

from __future__ import annotations

import json
import time
from pathlib import Path

from accelerate.tracking import GeneralTracker


class JSONLinesTracker(GeneralTracker):
    """An accelerate tracker writing one JSON object per log call: readable with no extra package."""

    name = "jsonl"
    requires_logging_directory = True
    main_process_only = True

    def __init__(self, run_name: str, logging_dir: str | Path):
        super().__init__()
        self.path = Path(logging_dir) / f"{run_name}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def tracker(self):
        return self.path

    def store_init_configuration(self, values: dict):
        self.log({"config": values})

    def log(self, values: dict, step: int | None = None, **kwargs):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "time": time.time(), **values}, default=str) + "\n")


def build_trackers(tc, out: Path):
    """``train.log_with`` (``tc``: the run's TrainConfig) -> accelerate's ``log_with``: "jsonl" (the
    JSONLinesTracker, writing OUTPUT/logs/train_log.jsonl), any accelerate tracker name, or None."""
    if tc.log_with in ("", "none"):
        return None
    if tc.log_with == "jsonl":
        return [JSONLinesTracker("train_log", out / "logs")]
    return tc.log_with

"""An ablation plan and its runs: which methods, regimes and seeds, and each run's full config.

A plan (a shipped one, ``ablation/quick`` or ``ablation/full`` of `ccr_demo.training.configs`, or
any plan YAML) names the regimes (a base training config each, a shipped name or a path: a
locked, cached text tower; towers trained from scratch), the methods, the seeds, and the extra
parts: the K ablation (``train.caption_num`` k of K languages per image per step) and training
on machine-translation-noisy captions. Kept apart from running and reporting so that the bench
(bench/bench_step_cost.py) and the report build the very configs the runs were trained with.

Fairness is explicit: "1-to-1" sees one caption per image per step, "1-to-K" K of them;
"1-to-1, K x pairs" trains K times the steps, so it sees as many caption-image pairs as 1-to-K.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ccr_demo.training.config import ExperimentConfig
from ccr_demo.training.configs import load_config, resolve_config, shipped_configs
from ccr_demo.utils.config import ConfigError

# method name -> (label, overrides); "epochs_x_k" trains K times the base epochs.
METHODS = {
    "one_to_k": ("1-to-K", ["train.loss=one_to_k", "train.loss_mode=official", "train.caption_num=0"]),
    "one_to_k_balanced": ("1-to-K balanced", ["train.loss=one_to_k", "train.loss_mode=balanced",
                                              "train.caption_num=0"]),
    "one_to_one": ("1-to-1", ["train.loss=one_to_one"]),
    "one_to_one_pairs": ("1-to-1, K x pairs", ["train.loss=one_to_one", "epochs_x_k"]),
    "pivot": ("English pivot", ["train.loss=pivot", "train.pivot_language=en"]),
    # added by a regime's ``equal_time_steps: N`` (N x the steps, "epochs_x:N"): 1-to-1 given about
    # 1-to-K's wall clock where a 1-to-K step costs N times a 1-to-1 step (bench/bench_step_cost.py)
    "one_to_one_time": ("1-to-1, equal wall clock", ["train.loss=one_to_one"]),
}
# The official optimizer details (ccr_demo.training.config.TrainConfig documents each).
OFFICIAL = ["train.adam_betas=[0.9, 0.98]", "train.temperature_clamp=step"]


@dataclass
class RunSpec:
    """One training run of the ablation."""

    part: str  # "methods", "caption_num" or "noise"
    regime: str
    method: str  # a METHODS key, or "caption_num_<k>"
    seed: int
    config: str
    overrides: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.part}/{self.regime}/{self.method}/seed{self.seed}"

    @property
    def label(self) -> str:
        if self.method.startswith("caption_num_"):
            return f"1-to-K, k={self.method.rsplit('_', 1)[1]}"
        if self.method == "one_to_one_time":
            return f"{METHODS[self.method][0]} ({_epochs_factor(self.overrides):g}x steps)"
        return METHODS[self.method][0]


def _epochs_factor(overrides: list) -> float:
    """The ``epochs_x:N`` multiplier among a run's overrides (1 without one)."""
    found = [o for o in overrides if isinstance(o, str) and o.startswith("epochs_x:")]
    return float(found[-1].split(":", 1)[1]) if found else 1


def load_plan(plan: str) -> dict:
    """A plan by its shipped name (``quick``, ``full``, or ``ablation/quick``...) or a YAML path."""
    name = plan if plan.startswith("ablation/") or Path(plan).suffix else f"ablation/{plan}"
    try:
        path = resolve_config(name)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (ConfigError, FileNotFoundError):
        known = [n.split("/", 1)[1] for n in shipped_configs("ablation")]
        raise ConfigError(f"ablation plan {plan!r} not found (shipped plans: {known})") from None
    if not isinstance(data, dict) or not isinstance(data.get("regimes"), dict) or not data.get("seeds"):
        raise ConfigError(f"ablation plan {path}: needs 'regimes' (a mapping) and 'seeds'")
    unknown = [m for m in data.get("methods", []) if m not in METHODS]
    if unknown:
        raise ConfigError(f"ablation plan {path}: unknown methods {unknown}; known: {list(METHODS)}")
    data["path"] = str(path)
    return data


def plan_runs(plan: dict) -> list[RunSpec]:
    """Every run of a plan, in the order they are trained: seeds outermost, and within a seed
    the methods part, then the noise and K-ablation parts. A stopped ablation (the full plan
    takes more than a session on 2 cores) so has every part at some seeds rather than all
    seeds of a few parts."""
    common = list(OFFICIAL)
    if plan.get("languages"):
        common.append(f"data.languages={','.join(plan['languages'])}")
    if plan.get("eval_languages"):
        common.append(f"data.eval_languages={','.join(plan['eval_languages'])}")
    common.append("train.eval_keep_ranks=true")

    def regime(name: str) -> tuple[str, list]:  # its config: a shipped name, or a path from the cwd
        r = plan["regimes"][name]
        return str(r["config"]), common + list(r.get("overrides", []))

    runs = []
    for seed in plan["seeds"]:
        for reg in plan["regimes"]:
            config, over = regime(reg)
            for method in plan.get("methods", []):
                runs.append(RunSpec("methods", reg, method, seed, config, over + METHODS[method][1]))
            times = plan["regimes"][reg].get("equal_time_steps")
            if times:  # 1-to-1 at about 1-to-K's wall clock in this regime
                runs.append(RunSpec("methods", reg, "one_to_one_time", seed, config,
                                    over + METHODS["one_to_one_time"][1] + [f"epochs_x:{times:g}"]))
        if plan.get("noise"):
            part = plan["noise"]
            config, over = regime(part["regime"])
            for method in part["methods"]:
                runs.append(RunSpec("noise", part["regime"], method, seed, config,
                                    over + list(part.get("overrides", [])) + METHODS[method][1]))
        if plan.get("caption_num"):
            part = plan["caption_num"]
            config, over = regime(part["regime"])
            for k in part["k"]:
                runs.append(RunSpec("caption_num", part["regime"], f"caption_num_{k}", seed, config,
                                    over + ["train.loss=one_to_k", "train.loss_mode=official", f"train.caption_num={k}"]))
    return runs


def run_config(spec: RunSpec, out: Path) -> ExperimentConfig:
    """The run's full config: its regime's base config, the plan's and method's overrides."""
    over = [o for o in spec.overrides if o != "epochs_x_k" and not o.startswith("epochs_x:")]
    over += [f"train.seed={spec.seed}", f"train.output_dir={out / spec.name}"]
    cfg = load_config(spec.config, over)
    factor = len(cfg.languages) if "epochs_x_k" in spec.overrides else _epochs_factor(spec.overrides)
    if factor != 1:
        epochs = cfg.train.epochs * factor
        if epochs != int(epochs):
            raise ConfigError(f"{spec.name}: {cfg.train.epochs} epochs x {factor:g} is not a whole number of epochs")
        cfg.train.epochs = int(epochs)
        if cfg.train.max_steps:
            cfg.train.max_steps = int(round(cfg.train.max_steps * factor))
    cfg.train.model_name = f"ablation {spec.label} ({spec.regime}, seed {spec.seed})"
    return cfg.validate()


def check_unchanged(spec: RunSpec, out: Path) -> None:
    """A run folder trained (or started) under another plan would mix budgets in one table:
    its saved config must be the one the plan gives now."""
    from ccr_demo.utils.config import to_dict

    saved = out / spec.name / "config.yaml.json"
    if saved.is_file():
        planned = json.loads(json.dumps(to_dict(run_config(spec, out))))
        if json.loads(saved.read_text(encoding="utf-8")) != planned:
            raise ConfigError(f"{out / spec.name} was trained with another config than the plan now gives (the "
                              "plan or a base config changed): use another --out, or move that folder away")

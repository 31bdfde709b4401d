"""A training run's settings (data, model, optimisation, evaluation) as one typed tree.

Read from YAML with command-line overrides (`ccr_demo.utils.config.load_yaml`); the model's
own section is `ccr_demo.model.configuration.ModelConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ccr_demo.model.configuration import ModelConfig, check_languages
from ccr_demo.utils.config import ConfigError, check_number

LOSSES = ("one_to_k", "one_to_one", "pivot")
OBJECTIVES = ("itc", "itm", "mlm")
ITM_POSITIVES = ("hard", "uniform", "similarity")
MLM_VOCABULARIES = ("full", "corpus")
# Far above any run here (the default recipe trains 60 epochs, the paper 30), so that a slip such
# as epochs: 1.0e+30 is refused instead of training forever.
MAX_EPOCHS = 100_000


@dataclass
class DataConfig:
    """Where training and evaluation data live, and which languages (K order) to use."""

    # A folder of CCRK pretraining part_*.data files.
    train: str = ""
    # Parallel test sets in the IGLUE layout (annotations/{lang}/test.jsonl + images/).
    eval: list[str] = field(default_factory=list)
    # Languages in the K order of the 1-to-K loss; empty means the model's languages.
    languages: list[str] = field(default_factory=list)
    image_root: str = ""  # resolve relative image paths here instead of next to the data files
    # Generate the shapes world into this folder first if it does not exist yet
    # (keys of ccr_demo.data.shapes.generate_dataset, e.g. {n_train: 400, n_test: 100}).
    generate: dict = field(default_factory=dict)
    eval_max_instances: int = 0  # 0 = every instance of each test set
    # Typed-query test splits (ccr_demo.data.queries: a queries.jsonl, or its folder), each
    # scored against the eval test set of the same position in `eval` (its gallery).
    eval_queries: list[str] = field(default_factory=list)
    # Rows with partial captions ("variants"): chance of training on the full caption in a
    # given epoch; otherwise one variant is drawn (all K languages of it, in parallel).
    full_caption_prob: float = 0.34
    num_workers: int = 0
    skip_bad: bool = False
    # Training image augmentation (ccr_demo.model.processing.TrainTransform; the saved eval
    # ImageProcessor is never changed). All off by default, and refused for the shapes world
    # with hflip / crop_scale, whose captions state left / right / position. Official CCRK:
    # crop_scale [0.2, 1.0] in pretraining, [0.5, 1.0] in fine-tuning; hflip; RandAugment(2, 7).
    crop_scale: list[float] = field(default_factory=list)  # RandomResizedCrop scale range; [] = none
    hflip: bool = False  # random horizontal flip, p = 0.5
    randaugment: dict = field(default_factory=dict)  # {num_ops, magnitude}; {} = off
    # The official `pre_caption` on training captions (lowercase, drop ASCII punctuation,
    # '-' and '/' to spaces, collapse whitespace, at most max_words words).
    clean_captions: bool = False
    max_words: int = 30
    # What `train` holds: "ccrk_pretrain" (part_*.data, K languages), "iglue" (a Flickr30K /
    # xFlickr&CO train_ann.jsonl-style JSONL) or "ccrk_json" (CCRK retrieval JSON list); the
    # last two are one language (data.languages: [that language]), one item per caption.
    train_format: str = "ccrk_pretrain"
    # Languages to evaluate on (zero-shot: train on [en], test on all); [] = the training languages.
    eval_languages: list[str] = field(default_factory=list)

    def validate(self) -> "DataConfig":
        check_number(self.full_caption_prob, "data.full_caption_prob", 0, 1)
        check_number(self.eval_max_instances, "data.eval_max_instances", 0)
        check_number(self.num_workers, "data.num_workers", 0)
        if self.languages:  # [] = the model's languages
            check_languages(self.languages, "data.languages")
        if self.eval_languages:  # [] = the training languages
            check_languages(self.eval_languages, "data.eval_languages")
        return self


@dataclass
class TrainConfig:
    """Optimisation as in the paper (AdamW, warmup then linear decay, clipping), all overridable."""

    loss: str = "one_to_k"
    loss_mode: str = "official"  # one_to_k only: "official" or "balanced"
    pivot_language: str = "en"  # pivot loss only
    batch_size: int = 32  # images per process per micro-batch (each image has K captions)
    grad_accum_steps: int = 1
    epochs: int = 1
    max_steps: int = 0  # optimizer steps; 0 = epochs decide
    lr: float = 1e-4  # pretrained tower parameters
    # New parameters (projections, temperature, fusion encoder, towers trained from scratch):
    # ``lr_new`` when set (> 0), else lr x lr_mult (the official optimizer's lr_mult: 2).
    lr_new: float = 0.0
    lr_mult: float = 2.0
    weight_decay: float = 0.01
    # AdamW betas; the official CCRK / X-VLM optimizer uses (0.9, 0.98), torch's default is
    # (0.9, 0.999) (the recipe the shipped config default pins, as its model was trained).
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    # The learnable temperature's [min, max] clamp: "step" clamps the parameter in place after
    # every optimizer step (official), so it can leave a bound again; "read" only clamps where
    # the loss reads it, which leaves a parameter pushed past a bound stuck there with no gradient.
    temperature_clamp: str = "step"
    # 1-to-K with a random subset of k of the K languages per image per step (official
    # caption_num; 0 = all K). k = 1 is 1-to-1 with the 1-to-K loss's form.
    caption_num: int = 0
    warmup_ratio: float = 0.03
    grad_clip: float = 1.0
    mixed_precision: str = "no"  # "no", "fp16", "bf16" (accelerate)
    lock_image: bool = False
    lock_text: bool = False
    # Drop known false negatives from the contrastive softmaxes: another image in the batch
    # that a partial caption is also true of ("a red star"). Not in the paper; off = its loss.
    exclude_false_negatives: bool = False
    # Rows that are twins (data.generate.twins: scenes differing in one bound property, see
    # ccr_demo.data.twins) go into the same global batch, so the loss sees the difference.
    twin_batches: bool = True
    # Caption hard negatives (NegCLIP) per image in the image->text softmax: captions of its
    # scene with one bound property changed (data.generate.hard_negatives writes them), left
    # out for any image of the batch they are true of. 0 = the paper's loss exactly.
    hard_negatives: int = 0
    # With a locked text tower, encode every training caption once and train on cached
    # pooled features (the text tower then costs nothing per step; with ITM / MLM, its token
    # states are cached too).
    cache_text_features: bool = True
    # Objectives and weights: itc (the contrastive loss named by `loss`), itm (image-text
    # matching through the fusion encoder, hard negatives) and mlm (masked language modelling
    # conditioned on the image). Official CCRK: all three, weight 1. itm/mlm need model.fusion.
    losses: dict = field(default_factory=lambda: {"itc": 1.0})
    # ITM positive language per image (official neg_sample_type): "hard" (1, the default: the
    # language the model matches worst is most likely), "uniform" (0), "similarity" (2).
    itm_positive: str = "hard"
    # Share of ITM negatives drawn from the hard (similarity-weighted) rule; the rest uniformly
    # among the allowed items. 1.0 = the official rule. Not in the paper: see ccr_demo.training.losses.
    itm_hard_fraction: float = 1.0
    # Binding negatives for ITM (not in the paper; off = its rule, see ccr_demo.training.objectives):
    # an image's twin in the batch as its negative image (needs data with twins), and its
    # caption hard negatives as extra negative pairs (needs train.hard_negatives >= 1).
    itm_twin_negatives: bool = False
    itm_caption_negatives: bool = False
    mlm_probability: float = 0.4
    mlm_max_masks: int = 12
    # MLM softmax over the text tower's "full" vocabulary (official) or only the tokens the
    # run's captions use ("corpus"; ~50x cheaper on CPU for a 250k-token XLM-R vocabulary).
    mlm_vocabulary: str = "full"
    # Start from a saved model's weights (a folder from save_pretrained); parts it lacks (e.g. a
    # new fusion encoder) keep their fresh initialisation. Empty: towers as model.* says.
    init_from: str = ""
    seed: int = 0
    output_dir: str = "runs/model"
    save_every_steps: int = 0  # a checkpoint every N steps (0 = only at epoch ends)
    # Newest checkpoints kept. 0 = none written: only the final model is saved and a killed run
    # cannot resume (one-off runs where a model-plus-optimizer copy does not fit on disk).
    keep_checkpoints: int = 2
    eval_every_epochs: int = 1
    # ITM re-ranking of the contrastive top k in the FINAL evaluation (models with fusion; 0 =
    # off). Intermediate evaluations stay contrastive: scoring k pairs per query costs time.
    eval_rerank_k: int = 0
    # Keep every instance's and query's rank in the final evaluation's report (eval_report.json),
    # so any slice (e.g. MRV over the languages seen in training only) can be recomputed.
    eval_keep_ranks: bool = False
    log_with: str = "jsonl"  # "jsonl" (logs/train_log.jsonl), an accelerate tracker name, or "none"
    log_every_steps: int = 10
    push_to_hub: str = ""  # a Hub repo id to upload the final model to
    model_name: str = ""  # title of the model card

    def validate(self) -> "TrainConfig":
        if self.loss not in LOSSES:
            raise ConfigError(f"train.loss must be one of {LOSSES}, got {self.loss!r}")
        if self.loss_mode not in ("official", "balanced"):
            raise ConfigError(f"train.loss_mode must be 'official' or 'balanced', got {self.loss_mode!r}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ConfigError(f"train.mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        for name in ("batch_size", "grad_accum_steps", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        check_number(self.epochs, "train.epochs", 1, MAX_EPOCHS)
        check_number(self.max_steps, "train.max_steps", 0)  # 0 = epochs decide
        check_number(self.seed, "train.seed", 0, 2 ** 32 - 1)  # numpy's seed range
        check_number(self.lr, "train.lr", 0, low_open=True)
        check_number(self.lr_new, "train.lr_new", 0)  # 0 = lr x lr_mult
        check_number(self.lr_mult, "train.lr_mult", 0, low_open=True)
        check_number(self.weight_decay, "train.weight_decay", 0)
        check_number(self.grad_clip, "train.grad_clip", 0)  # 0 = no clipping
        check_number(self.eval_rerank_k, "train.eval_rerank_k", 0)
        if len(self.adam_betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool)
                                                 and 0 <= b < 1 for b in self.adam_betas):
            raise ConfigError(f"train.adam_betas must be two numbers in [0, 1), got {self.adam_betas!r}")
        if self.temperature_clamp not in ("step", "read"):
            raise ConfigError(f"train.temperature_clamp must be 'step' or 'read', got {self.temperature_clamp!r}")
        if self.keep_checkpoints < 0 or self.save_every_steps < 0:
            raise ConfigError("train.keep_checkpoints and train.save_every_steps must be >= 0 "
                              f"(0 = no checkpoints / only at epoch ends), got {self.keep_checkpoints} "
                              f"and {self.save_every_steps}")
        if self.caption_num < 0:
            raise ConfigError(f"train.caption_num must be >= 0 (0 = all K languages), got {self.caption_num}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        unknown = sorted(set(self.losses) - set(OBJECTIVES))
        if unknown:
            raise ConfigError(f"train.losses: unknown objective(s) {unknown}; known: {list(OBJECTIVES)}")
        for name, weight in self.losses.items():
            check_number(weight, f"train.losses.{name}", 0)
        if not any(self.losses.values()):
            raise ConfigError("train.losses gives no objective a weight above 0")
        if self.itm_positive not in ITM_POSITIVES:
            raise ConfigError(f"train.itm_positive must be one of {ITM_POSITIVES}, got {self.itm_positive!r}")
        if not 0.0 <= self.itm_hard_fraction <= 1.0:
            raise ConfigError(f"train.itm_hard_fraction must be in [0, 1], got {self.itm_hard_fraction}")
        if not 0 < self.mlm_probability < 1 or self.mlm_max_masks < 1:
            raise ConfigError("train.mlm_probability must be in (0, 1) and mlm_max_masks at least 1")
        if self.mlm_vocabulary not in MLM_VOCABULARIES:
            raise ConfigError(f"train.mlm_vocabulary must be one of {MLM_VOCABULARIES}, got {self.mlm_vocabulary!r}")
        return self

    @property
    def new_lr(self) -> float:
        """The learning rate of new parameters: lr_new, or lr x lr_mult when lr_new is 0."""
        return self.lr_new or self.lr * self.lr_mult

    def weight(self, objective: str) -> float:
        """The weight of an objective (0 when not listed)."""
        return float(self.losses.get(objective, 0.0))


@dataclass
class ExperimentConfig:
    """One training config (a shipped one, see `ccr_demo.training.configs`, or any YAML file): model, data
    and train sections."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> "ExperimentConfig":
        self.model.validate()
        self.data.validate()
        self.train.validate()
        langs = self.languages
        fusion_losses = [o for o in ("itm", "mlm") if self.train.weight(o) > 0]
        if fusion_losses and not self.model.fusion.layers:
            raise ConfigError(f"train.losses has {fusion_losses}, which need the fusion encoder: set model.fusion.layers")
        if fusion_losses and self.train.loss != "one_to_k":
            raise ConfigError(f"train.losses {fusion_losses} are implemented for train.loss one_to_k (CCRK), "
                              f"not {self.train.loss!r}")
        if self.train.caption_num:
            if self.train.loss != "one_to_k":
                raise ConfigError(f"train.caption_num samples languages for the one_to_k loss, not {self.train.loss!r}")
            if self.train.caption_num > len(langs):
                raise ConfigError(f"train.caption_num {self.train.caption_num} is more than the {len(langs)} "
                                  f"languages {langs}")
            if fusion_losses:
                raise ConfigError("train.caption_num with ITM / MLM is not implemented: set train.caption_num=0")
        if self.train.hard_negatives < 0:
            raise ConfigError(f"train.hard_negatives must be >= 0, got {self.train.hard_negatives}")
        cached_states = self.train.lock_text and self.train.cache_text_features
        if self.train.hard_negatives and (self.train.loss != "one_to_k" or (fusion_losses and not cached_states)):
            raise ConfigError("train.hard_negatives is implemented for train.loss one_to_k, with ITM / MLM only over "
                              f"a locked, cached text tower (got loss {self.train.loss!r}, fusion losses "
                              f"{fusion_losses}, lock_text {self.train.lock_text}, "
                              f"cache_text_features {self.train.cache_text_features})")
        if (self.train.itm_twin_negatives or self.train.itm_caption_negatives) and "itm" not in fusion_losses:
            raise ConfigError("train.itm_twin_negatives / itm_caption_negatives need the itm loss (train.losses.itm > 0)")
        if self.train.itm_caption_negatives and not self.train.hard_negatives:
            raise ConfigError("train.itm_caption_negatives reads the caption hard negatives: set train.hard_negatives >= 1")
        if self.train.loss == "pivot" and self.train.pivot_language not in langs:
            raise ConfigError(f"train.pivot_language {self.train.pivot_language!r} is not in the languages {langs}")
        return self

    @property
    def languages(self) -> list:
        return list(self.data.languages or self.model.languages)


def needs_token_states(cfg: ExperimentConfig) -> bool:
    """A cached locked text tower feeding ITM / MLM: its token states are cached as well."""
    return (cfg.train.lock_text and cfg.train.cache_text_features
            and (cfg.train.weight("itm") > 0 or cfg.train.weight("mlm") > 0))

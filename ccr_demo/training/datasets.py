"""Torch datasets over the records of `ccr_demo.data.testset`.

Items carry their index so a training step can look up anything else about a row (scene,
noise, source line) without pushing it through the DataLoader. Errors raised while loading
an item are `DataFormatError`s naming the file and line, so a worker crash is readable.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ccr_demo.data.errors import DataFormatError
from ccr_demo.data.image_batches import load_transformed, pil_to_tensor, stack_images
from ccr_demo.data.languages import plan_from_scene
from ccr_demo.data.queries import QuerySet, is_relevant
from ccr_demo.data.readers.caption_pairs import CAPTION_PAIR_FORMATS, read_caption_pairs
from ccr_demo.data.readers.ccrk_pretrain import (
    PretrainRecord,
    check_languages,
    default_language_order,
    read_ccrk_pretrain,
)
from ccr_demo.data.scene import Scene
from ccr_demo.data.testset import ParallelTestSet

MODES = ("one_to_k", "one_to_one")
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A stateless 64-bit mixer: hash (seed, epoch, index) to a draw, identically in any worker."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _M64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return z ^ (z >> np.uint64(31))


def _draw(seed: int, epoch: int, indices: np.ndarray, n: int, stream: int) -> np.ndarray:
    """Uniform draws in [0, n) as a pure function of (seed, stream, epoch, index)."""
    idx = np.atleast_1d(np.asarray(indices, dtype=np.int64)).astype(np.uint64)
    seed, ep, stream = np.array([seed, epoch, stream], dtype=np.int64).astype(np.uint64)
    key = _splitmix64(_splitmix64(np.atleast_1d(seed)) ^ ep)
    if stream:
        key = _splitmix64(key ^ stream)
    return (_splitmix64(key ^ idx) % np.uint64(n)).astype(np.int64)


_VARIANT_STREAM = 0x7A41A7
_VARIANT_SCALE = 1 << 20  # resolution of the full-caption probability
_AUGMENT_STREAM = 0xA06
_SUBSET_STREAM = 0x5B5E7


class MultilingualPretrainDataset(Dataset):
    """Images with parallel captions from a CCRK pretraining folder (or its records).

    ``mode="one_to_k"``: item = (image, [caption in each of `languages`, in that order], index),
    the batch layout of the 1-to-K loss. ``mode="one_to_one"``: item = (image, [one caption],
    index) in a language drawn uniformly per item and epoch; the draw is a pure function of
    (seed, epoch, index), so it is reproducible and identical in every DataLoader worker.
    Call `set_epoch` before each epoch (it reaches persistent workers too: the epoch lives
    in shared memory).

    Rows with ``variants`` (partial captions, as people type queries) first draw which
    caption the image gets this epoch: the full one with probability
    ``full_caption_prob``, else one variant uniformly; the K languages of the draw say the
    same thing (they are parallel), and one_to_one mode picks its language among them.
    """

    def __init__(self, source: str | Path | Iterable[str | Path] | Sequence[PretrainRecord],
                 languages: Sequence[str] | None = None, *, mode: str = "one_to_k",
                 transform: Callable[[Image.Image], Any] | None = None, seed: int = 0,
                 image_root: str | Path | None = None, check_images: bool = False, skip_bad: bool = False,
                 max_pixels: int | None = None, full_caption_prob: float = 1.0,
                 text_transform: Callable[[str], str] | None = None, caption_num: int = 0):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not 0.0 <= full_caption_prob <= 1.0:
            raise ValueError(f"full_caption_prob must be in [0, 1], got {full_caption_prob}")
        given = isinstance(source, Sequence) and not isinstance(source, str) and bool(source) \
            and isinstance(source[0], PretrainRecord)
        records = list(source) if given else read_ccrk_pretrain(
            source, languages, image_root=image_root, check_images=check_images, skip_bad=skip_bad)
        if languages is None or given:  # default: the first row's languages, in the paper's K order
            languages = languages or default_language_order(records[0].captions)
            records = check_languages(records, languages, skip_bad=skip_bad)
        if not languages:
            raise ValueError("languages must not be empty")
        self.records = records
        self.languages = list(languages)
        self.full_caption_prob = float(full_caption_prob)
        for rec in records:
            for v, variant in enumerate(rec.variants or ()):
                caps = variant.get("caption") if isinstance(variant, dict) else None
                if not isinstance(caps, dict) or any(not isinstance(caps.get(lang), str) for lang in self.languages):
                    raise DataFormatError(f"{rec.where}: variant {v} needs a caption in each of {self.languages}")
        if not 0 <= caption_num <= len(self.languages):
            raise ValueError(f"caption_num must be in [0, {len(self.languages)}], got {caption_num}")
        self.mode = mode
        # one_to_k mode with 0 < caption_num < K: a seeded subset of k languages per item and epoch
        self.caption_num = caption_num if mode == "one_to_k" and caption_num < len(self.languages) else 0
        self.transform = transform or pil_to_tensor
        self.seed = int(seed)
        self.max_pixels = max_pixels
        # Applied to every caption the dataset yields (e.g. the official pre_caption), and to
        # all_texts() so a text cache holds exactly the strings training asks for.
        self.text_transform = text_transform
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def __len__(self) -> int:
        return len(self.records)

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = int(epoch)

    def language_choice(self, indices: int | Sequence[int] | np.ndarray, epoch: int | None = None) -> np.ndarray:
        """Index into `languages` that one_to_one mode uses for these items (vectorised)."""
        ep = self.epoch if epoch is None else int(epoch)
        return _draw(self.seed, ep, indices, len(self.languages), 0)

    @property
    def captions_per_item(self) -> int:
        """How many captions an item yields: K, caption_num, or 1 (one_to_one)."""
        return 1 if self.mode == "one_to_one" else (self.caption_num or len(self.languages))

    def language_subset(self, index: int, epoch: int | None = None) -> list[int]:
        """The languages (indices, in K order) item ``index`` is trained on this epoch with
        ``caption_num`` k: k distinct languages, uniformly, a pure function of (seed, epoch, index)."""
        K, k = len(self.languages), self.caption_num or len(self.languages)
        if k == K:
            return list(range(K))
        ep = self.epoch if epoch is None else int(epoch)
        keys = _draw(self.seed, ep, [index * K + j for j in range(K)], 1 << 62, _SUBSET_STREAM)
        return sorted(np.argsort(keys, kind="stable")[:k].tolist())

    def variant_choice(self, index: int, epoch: int | None = None) -> int:
        """Which caption item ``index`` gets this epoch: 0 the full one, v >= 1 variant v-1."""
        variants = self.records[index].variants
        if not variants:
            return 0
        ep = self.epoch if epoch is None else int(epoch)
        u = int(_draw(self.seed, ep, index, _VARIANT_SCALE, _VARIANT_STREAM)[0])
        if u < self.full_caption_prob * _VARIANT_SCALE:
            return 0
        return 1 + int(_draw(self.seed, ep, index, len(variants), _VARIANT_STREAM + 1)[0])

    def captions(self, index: int, epoch: int | None = None) -> dict[str, str]:
        """The parallel captions (one per language) item ``index`` is trained on this epoch."""
        rec = self.records[index]
        v = self.variant_choice(index, epoch)
        return rec.captions if v == 0 else rec.variants[v - 1]["caption"]

    def false_negatives(self, indices: Sequence[int], epoch: int | None = None) -> np.ndarray:
        """bool [B, B] for a batch of items: [b, c] when the caption item c is trained on
        this epoch is a partial one that is also true of item b's scene (b != c).

        Full captions identify their scene and count as true of it alone."""
        idx = [int(i) for i in indices]
        asserts = []
        for i in idx:
            v = self.variant_choice(i, epoch)
            asserts.append(None if v == 0 else self.records[i].variants[v - 1].get("query"))
        out = np.zeros((len(idx), len(idx)), dtype=bool)
        for c, a in enumerate(asserts):
            if a is None:
                continue
            for b, i in enumerate(idx):
                scene = self.records[i].scene
                if b != c and scene is not None and is_relevant(a, scene):
                    out[b, c] = True
        return out

    def hard_negatives(self, index: int, epoch: int | None = None) -> list[dict]:
        """The caption hard negatives (``"negatives"`` of the row, ccr_demo.data.shapes) of the
        caption item ``index`` is trained on this epoch: one bound property changed, false of
        its scene."""
        v = self.variant_choice(index, epoch)
        return [n for n in self.records[index].negatives or () if n.get("of") == v]

    def negative_texts(self, indices: Sequence[int], per_item: int) -> list[str]:
        """``per_item`` hard negatives of each item, in the languages ``texts`` gives it:
        len(indices) * per_item * captions_per_item strings, item-major. A missing negative is
        padded with the item's own first caption, which ``negative_mask`` leaves out."""
        out = []
        for i in indices:
            i = int(i)
            own = self.texts(i)
            langs = self._text_languages(i)
            negs = self.hard_negatives(i)[:per_item]
            for m in range(per_item):
                if m < len(negs):
                    out.extend(self._text(negs[m]["caption"][lang]) for lang in langs)
                else:
                    out.extend([own[0]] * len(langs))
        return out

    def negative_mask(self, indices: Sequence[int], per_item: int) -> np.ndarray:
        """bool [B, B * per_item * captions_per_item]: [b, j] when negative text j (of item
        j // (per_item * captions_per_item)) may be a negative for image b: it exists (not
        padding) and is false of b's scene (computed from the scene dicts: a full-caption
        negative is true of a scene with the same description, a partial one where its
        assertion holds). An item's own negatives are false of it by construction."""
        idx = [int(i) for i in indices]
        per = self.captions_per_item
        mask = np.zeros((len(idx), len(idx) * per_item * per), dtype=bool)
        plans = [None if self.records[i].scene is None else plan_from_scene(Scene.from_dict(self.records[i].scene))
                 for i in idx]
        for c, i in enumerate(idx):
            for m, neg in enumerate(self.hard_negatives(i)[:per_item]):
                cols = slice((c * per_item + m) * per, (c * per_item + m + 1) * per)
                neg_plan = None if "query" in neg else plan_from_scene(Scene.from_dict(neg["scene"]))
                for b, j in enumerate(idx):
                    scene = self.records[j].scene
                    if b == c:
                        true_of_b = False
                    elif scene is None:
                        true_of_b = True  # unknown: leave it out rather than push a possible positive away
                    elif "query" in neg:
                        true_of_b = is_relevant(neg["query"], scene)
                    else:
                        true_of_b = plans[b] == neg_plan
                    mask[b, cols] = not true_of_b
        return mask

    def _text_languages(self, index: int) -> list[str]:
        """The languages (in order) of the captions ``texts(index)`` yields this epoch."""
        if self.mode == "one_to_k":
            return [self.languages[j] for j in self.language_subset(index)]
        return [self.languages[int(self.language_choice(index)[0])]]

    def twin_groups(self) -> list[list[int]]:
        """Indices of the rows that share a twin group (``"twin": {"group"}``), each group in
        row order; rows without a twin, or whose twin was not read, are in none."""
        groups: dict[str, list[int]] = {}
        for i, rec in enumerate(self.records):
            group = rec.twin.get("group") if isinstance(rec.twin, dict) else None
            if isinstance(group, str):
                groups.setdefault(group, []).append(i)
        return [g for g in groups.values() if len(g) > 1]

    def all_texts(self) -> list[str]:
        """Every caption any epoch can draw, hard negatives included (for a feature cache),
        repeats included."""
        out = []
        for rec in self.records:
            for caps in [rec.captions, *(v["caption"] for v in rec.variants or ()),
                         *(n["caption"] for n in rec.negatives or ())]:
                out.extend(self._text(caps[lang]) for lang in self.languages)
        return out

    def _text(self, caption: str) -> str:
        return caption if self.text_transform is None else self.text_transform(caption)

    def texts(self, index: int) -> list[str]:
        """The caption list item `index` yields this epoch."""
        caps = self.captions(index)
        return [self._text(caps[lang]) for lang in self._text_languages(index)]

    def __getitem__(self, index: int) -> tuple[Any, list[str], int]:
        rec = self.records[index]
        transform = self.transform
        if getattr(transform, "active", False):  # random training augmentation: seeded per (seed, epoch, index)
            seed = int(_draw(self.seed, self.epoch, index, 1 << 62, _AUGMENT_STREAM)[0])
            transform = functools.partial(transform, seed=seed)
        image = load_transformed(lambda: rec.load_image(self.max_pixels), transform, rec.where)
        return image, self.texts(index), index


def collate_pretrain(batch: Sequence[tuple[Any, list[str], int]]
                     ) -> tuple[torch.Tensor | list, list[list[str]], torch.Tensor]:
    """(images [B,3,H,W], texts list[B] of list[K] str, indices int64 [B])."""
    images, texts, indices = zip(*batch)
    return stack_images(images), [list(t) for t in texts], torch.as_tensor(indices, dtype=torch.int64)


# --------------------------------------------------------------------------- retrieval fine-tuning
TRAIN_FORMATS = ("ccrk_pretrain",) + CAPTION_PAIR_FORMATS


class CaptionPairDataset(MultilingualPretrainDataset):
    """(image, caption) pairs of a one-language retrieval training file (``read_caption_pairs``):
    the trainer sees K=1 with the same item layout as pretraining.

    An image with several captions is several items; two of them in one batch are not negatives
    of each other. ``false_negatives`` marks them (same image), so ``train.exclude_false_negatives``
    keeps them out of the contrastive softmaxes: the role of the image ids (``idx``) in the
    official fine-tuning ITC.
    """

    def __init__(self, records: Sequence[PretrainRecord], language: str, **kwargs):
        super().__init__(list(records), [language], **kwargs)
        keys: dict[str, int] = {}
        self.image_index = np.array([keys.setdefault(rec.image_path or rec.where, len(keys)) for rec in self.records],
                                    dtype=np.int64)

    def false_negatives(self, indices: Sequence[int], epoch: int | None = None) -> np.ndarray:
        img = self.image_index[np.asarray([int(i) for i in indices], dtype=np.int64)]
        out = img[:, None] == img[None, :]
        np.fill_diagonal(out, False)
        return out


class CaptionCleaner:
    """The official ``pre_caption`` as a dataset text transform (picklable for DataLoader
    workers). A caption that cleaning would empty ("...") is kept as given, stripped, rather
    than stopping a run mid-epoch."""

    def __init__(self, max_words: int):
        self.max_words = int(max_words)

    def __call__(self, caption: str) -> str:
        from ccr_demo.model.processing import pre_caption

        return pre_caption(caption, self.max_words, allow_empty=True) or caption.strip()

    def __repr__(self) -> str:
        return f"CaptionCleaner(max_words={self.max_words})"


def is_shapes_world(records: Sequence[PretrainRecord], train: str | Path = "") -> bool:
    """Generated shapes-world data: rows that carry a scene, or a folder beside dataset_info.json."""
    if any(rec.scene is not None for rec in records[:64]):
        return True
    p = Path(train) if train else None
    return bool(p) and any((d / "dataset_info.json").is_file() for d in (p, p.parent) if d.is_dir())


def check_data_config(cfg) -> None:
    """ConfigError naming the setting for data options the trainer cannot honour; ``cfg`` is
    an ExperimentConfig. (Checks that need the records themselves live in `build_train_dataset`.)"""
    from ccr_demo.model.processing import check_augmentation
    from ccr_demo.utils.config import ConfigError

    d = cfg.data
    if d.train_format not in TRAIN_FORMATS:
        raise ConfigError(f"data.train_format must be one of {TRAIN_FORMATS}, got {d.train_format!r}")
    if d.train_format != "ccrk_pretrain" and len(cfg.languages) != 1:
        raise ConfigError(f"data.train_format {d.train_format!r} holds captions in one language: set "
                          f"data.languages to that one language (e.g. [en]), got {cfg.languages}")
    if d.train_format != "ccrk_pretrain" and cfg.train.loss == "pivot":
        raise ConfigError("train.loss pivot needs several languages per image; "
                          f"data.train_format {d.train_format!r} has one")
    try:
        check_augmentation(d.crop_scale, d.randaugment)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if d.max_words < 1:
        raise ConfigError(f"data.max_words must be at least 1, got {d.max_words}")
    if not str(d.train).strip():
        raise ConfigError("data.train is empty: name the training data (a folder of part_*.data files, or with "
                          "data.train_format a train_ann.jsonl / retrieval JSON file)")


def eval_languages(cfg) -> list[str]:
    """The languages a run evaluates on: ``data.eval_languages``, else the training languages.
    (Zero-shot protocol: fine-tune on [en], evaluate on every language of the test set.)"""
    return list(cfg.data.eval_languages or cfg.languages)


def load_eval_set(cfg, path: str | Path) -> ParallelTestSet:
    """One IGLUE-layout test set as a run evaluates it: in `eval_languages`, cut to
    ``data.eval_max_instances``, captions cleaned with pre_caption when ``data.clean_captions``
    (the official evaluation cleans test captions too)."""
    from ccr_demo.utils.config import ConfigError

    try:
        ts = ParallelTestSet.from_iglue(path, languages=eval_languages(cfg), image_root=None)
    except DataFormatError as e:  # e.g. data.eval_languages: [xx], a language the set lacks
        raise ConfigError(f"data.eval {str(path)!r} in the languages {eval_languages(cfg)} (data.eval_languages, "
                          f"else the training languages): {e}") from None
    if cfg.data.eval_max_instances:
        ts = ts.subset(cfg.data.eval_max_instances)
    if cfg.data.clean_captions:
        ts = clean_test_set(ts, cfg.data.max_words)
    return ts


def load_eval_queries(cfg, path: str | Path, test_set: ParallelTestSet) -> QuerySet | None:
    """The typed-query split paired with ``test_set``, in `eval_languages`. When the test set
    was cut (``data.eval_max_instances``), only the queries true of its images, ranked among
    them (as ``ccr_demo.eval.evaluate --max-instances``): a query naming an image outside the cut
    gallery cannot be scored; None when no query is left."""
    queries = QuerySet.load(path, languages=eval_languages(cfg))
    if cfg.data.eval_max_instances:
        queries = queries.restricted(test_set.image_ids) or None
    return queries


def clean_test_set(ts: ParallelTestSet, max_words: int) -> ParallelTestSet:
    """The same instances with every caption through pre_caption (empty ones stay empty)."""
    clean = CaptionCleaner(max_words)
    return ParallelTestSet(ts.image_ids, ts.image_paths,
                           {lang: [[clean(c) if c.strip() else c for c in caps] for caps in ts.instance_captions(lang)]
                            for lang in ts.languages},
                           noisy=None if ts.noisy is None else {
                               lang: [[bool(ts.noisy[lang][j]) for j in idx] for idx in ts.image_to_texts[lang]]
                               for lang in ts.languages},
                           scenes=ts.scenes, image_data=ts.image_data, name=ts.name)


def build_train_dataset(cfg, processor: Callable[[Image.Image], Any], mode: str = "one_to_k"
                        ) -> MultilingualPretrainDataset:
    """The training dataset a config describes, for ``ccr_demo.training.loop.train``.

    ``data.train_format`` picks the reader (a CCRK pretraining folder with K languages, or a
    one-language retrieval file as (image, caption) pairs); ``processor`` is the model's saved
    ImageProcessor, wrapped in the training-only augmentation the config asks for
    (`ccr_demo.model.processing.TrainTransform`); ``data.clean_captions`` applies pre_caption.
    Horizontal flips and random crops are refused on the shapes world: its captions say
    "left of", "at the top", which a flip or crop makes false.
    """
    from ccr_demo.model.processing import TrainTransform
    from ccr_demo.utils.config import ConfigError

    check_data_config(cfg)
    d, tc = cfg.data, cfg.train
    if not Path(d.train).exists():  # checked here, after data.generate has had its chance to write it
        raise ConfigError(f"data.train {d.train!r}: no such file or folder"
                          + (" (data.generate did not write it there: check data.generate.out)" if d.generate else ""))
    transform = TrainTransform(processor, d.crop_scale, d.hflip, d.randaugment) if hasattr(processor, "image_size") \
        else processor
    text_transform = CaptionCleaner(d.max_words) if d.clean_captions else None
    common = dict(mode=mode, transform=transform, seed=tc.seed, skip_bad=d.skip_bad, text_transform=text_transform)
    if d.train_format == "ccrk_pretrain":
        records = read_ccrk_pretrain(d.train, cfg.languages, image_root=d.image_root or None, skip_bad=d.skip_bad)
        dataset = MultilingualPretrainDataset(records, cfg.languages, full_caption_prob=d.full_caption_prob,
                                              caption_num=tc.caption_num, **common)
    else:
        records = read_caption_pairs(d.train, cfg.languages[0], d.train_format, image_root=d.image_root or None,
                                     skip_bad=d.skip_bad)
        dataset = CaptionPairDataset(records, cfg.languages[0], **common)
    if (d.hflip or d.crop_scale or d.randaugment) and is_shapes_world(dataset.records, d.train):
        raise ConfigError(f"data.hflip / crop_scale / randaugment are refused for the shapes world ({d.train}): its "
                          "captions state left / right, positions and colours, which a flip, a random crop or "
                          "RandAugment's shifts, rotations and colour ops make false; set data.hflip=false "
                          "data.crop_scale=[] data.randaugment={}")
    return dataset


"""Torch datasets over the records of `ccr_demo.data.formats`.

Items carry their index so a training step can look up anything else about a row (scene,
noise, source line) without pushing it through the DataLoader. Errors raised while loading
an item are `DataFormatError`s naming the file and line, so a worker crash is readable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ccr_demo.data.formats import (
    DataFormatError, ParallelTestSet, PretrainRecord, check_languages, default_language_order, read_ccrk_pretrain,
)
from ccr_demo.data.queries import is_relevant

MODES = ("one_to_k", "one_to_one")

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A stateless 64-bit mixer: hash (seed, epoch, index) to a draw, identically in any worker."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _M64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return z ^ (z >> np.uint64(31))


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 [3, H, W] in [0, 1] (the default transform)."""
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)


def _load(load: Callable[[], Image.Image], transform: Callable[[Image.Image], Any], where: str) -> Any:
    image = load()  # DataFormatError names the file already
    try:
        return transform(image)
    except Exception as e:  # a transform failing on one odd image: say which
        raise DataFormatError(f"{where}: transform failed: {type(e).__name__}: {e}") from e


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
                 max_pixels: int | None = None, full_caption_prob: float = 1.0):
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
        self.mode = mode
        self.transform = transform or pil_to_tensor
        self.seed = int(seed)
        self.max_pixels = max_pixels
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

    def all_texts(self) -> list[str]:
        """Every caption any epoch can draw (for a feature cache), repeats included."""
        out = []
        for rec in self.records:
            for caps in [rec.captions, *(v["caption"] for v in rec.variants or ())]:
                out.extend(caps[lang] for lang in self.languages)
        return out

    def texts(self, index: int) -> list[str]:
        """The caption list item `index` yields this epoch."""
        caps = self.captions(index)
        if self.mode == "one_to_k":
            return [caps[lang] for lang in self.languages]
        return [caps[self.languages[int(self.language_choice(index)[0])]]]

    def __getitem__(self, index: int) -> tuple[Any, list[str], int]:
        rec = self.records[index]
        image = _load(lambda: rec.load_image(self.max_pixels), self.transform, rec.where)
        return image, self.texts(index), index


class EvalImageDataset(Dataset):
    """The images of a ParallelTestSet, for batched encoding: item = (image, instance index)."""

    def __init__(self, test_set: ParallelTestSet, transform: Callable[[Image.Image], Any] | None = None, *,
                 max_pixels: int | None = None):
        self.test_set = test_set
        self.transform = transform or pil_to_tensor
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.test_set)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        ts = self.test_set
        where = f"{ts.name or 'test set'} instance {index} (id {ts.image_ids[index]!r})"
        return _load(lambda: ts.load_image(index, self.max_pixels), self.transform, where), index


def _stack_images(images: Sequence[Any]) -> torch.Tensor | list:
    """Stack tensor images; leave anything else (PIL images for a model's own preprocessing) as a list."""
    if not all(isinstance(im, torch.Tensor) for im in images):
        return list(images)
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        raise DataFormatError(
            f"images in a batch differ in shape {sorted(shapes)}: give the dataset a resizing transform")
    return torch.stack(list(images))


def collate_pretrain(batch: Sequence[tuple[Any, list[str], int]]
                     ) -> tuple[torch.Tensor | list, list[list[str]], torch.Tensor]:
    """(images [B,3,H,W], texts list[B] of list[K] str, indices int64 [B])."""
    images, texts, indices = zip(*batch)
    return _stack_images(images), [list(t) for t in texts], torch.as_tensor(indices, dtype=torch.int64)


def collate_images(batch: Sequence[tuple[Any, int]]) -> tuple[torch.Tensor | list, torch.Tensor]:
    """(images [B,3,H,W], indices int64 [B])."""
    images, indices = zip(*batch)
    return _stack_images(images), torch.as_tensor(indices, dtype=torch.int64)

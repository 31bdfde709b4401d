"""Turning user inputs (PIL images, strings) into tower inputs, as transformers' processors do.

Kept apart from the model so a DataLoader worker can preprocess without holding the model,
and so the exact preprocessing is saved next to the weights (preprocessor_config.json).
"""

from __future__ import annotations

import re
import threading
import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ccr_demo.data.images import to_rgb

PREPROCESSOR_CONFIG = "preprocessor_config.json"
# Above this many times the output size, the long side is cropped before resizing (thin images).
_MAX_SIDE_FACTOR = 4


@dataclass
class ImageProcessor:
    """Resize (shorter side), centre-crop to a square, normalise. Saved with the model."""

    image_size: int = 224
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    interpolation: str = "bicubic"

    _RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ImageProcessor":
        return cls(
            image_size=int(d["image_size"]),
            mean=tuple(d["mean"]),
            std=tuple(d["std"]),
            interpolation=d.get("interpolation", "bicubic"),
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """One PIL image (any mode) -> float32 tensor [3, S, S]."""
        if not isinstance(image, Image.Image):
            raise TypeError(f"expected a PIL.Image, got {type(image).__name__}")
        image = to_rgb(image)
        s = self.image_size
        w, h = image.size
        if w == 0 or h == 0:
            raise ValueError("image has zero width or height")
        scale = s / min(w, h)
        nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
        if max(nw, nh) > _MAX_SIDE_FACTOR * s:
            # A thin image (aspect over 4:1): resizing it whole would allocate the full resized
            # strip (a 1x1,000,000 PNG asked for gigabytes) only to crop a square out of it. Cut
            # the centre square in source coordinates and resize just that: the same crop.
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            image = image.resize((s, s), self._RESAMPLE.get(self.interpolation, Image.BICUBIC),
                                 box=(left, top, left + side, top + side))
            nw = nh = s
        elif (nw, nh) != (w, h):
            image = image.resize((nw, nh), self._RESAMPLE.get(self.interpolation, Image.BICUBIC))
        left, top = (nw - s) // 2, (nh - s) // 2
        if (nw, nh) != (s, s):
            image = image.crop((left, top, left + s, top + s))
        x = torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1).div_(255.0)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        return (x - mean) / std

    def batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self(im) for im in images])


def check_texts(texts: Sequence[str]) -> None:
    """A list of strings, or a TypeError naming the first item that is not one."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"texts must be strings; item {bad} is {type(texts[bad]).__name__}")


def check_query_texts(texts: Sequence[str], language: str | None, languages: Sequence[str]) -> None:
    """What every ``encode_texts`` checks first: a non-empty list of strings (errors name the
    problem); a ``language`` the model was not trained on only warns (one vocabulary serves all)."""
    if isinstance(texts, str):
        raise TypeError("encode_texts takes a list of strings; wrap a single string in a list")
    if len(texts) == 0:
        raise ValueError("encode_texts got an empty list of texts")
    check_texts(texts)
    if language is not None and language not in languages:
        warnings.warn(f"language {language!r} is not among the model's training languages {list(languages)}",
                      stacklevel=3)


# A fast tokenizer keeps its padding and truncation settings as state on one shared Rust object,
# and every call sets them for itself: two threads calling it with different settings (a padded
# batch, an unpadded single text) can encode with each other's ("expected sequence of length 9
# (got 7)", seen under load in the app). Every call in this package goes through this lock;
# tokenizing is a small share of a search.
TOKENIZER_LOCK = threading.RLock()


def call_tokenizer(tokenizer, *args, **kwargs):
    """``tokenizer(*args, **kwargs)`` under ``TOKENIZER_LOCK``."""
    with TOKENIZER_LOCK:
        return tokenizer(*args, **kwargs)


def tokenize(tokenizer, texts: Sequence[str], max_length: int, prefix: str = "") -> dict[str, torch.Tensor]:
    """Strings -> padded ``input_ids`` / ``attention_mask``; long texts are truncated.

    The limit is the smaller of ``max_length`` and the tokenizer's own maximum.
    """
    check_texts(texts)
    limit = min(max_length, getattr(tokenizer, "model_max_length", max_length) or max_length)
    enc = call_tokenizer(
        tokenizer, [prefix + t for t in texts], padding=True, truncation=True, max_length=limit, return_tensors="pt"
    )
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


# --------------------------------------------------------------------------- training only
class TrainTransform:
    """Random training augmentation in front of the model's own normalisation.

    The official CCRK / X-VLM recipe: ``RandomResizedCrop(size, scale, bicubic)``, a random
    horizontal flip, RandAugment, then the same mean / std as ``processor``. Only a training
    dataset applies it: the ImageProcessor saved with the model (and used to evaluate) stays
    resize + centre crop. With nothing switched on it is exactly ``processor``.

    RandAugment is torchvision's ``RandAugment(num_ops, magnitude)`` (14 ops incl. colour and
    geometry); the official one draws 2 of 10 ops (no posterize / solarize / colour /
    contrast) at magnitude 7: close, not identical.
    """

    def __init__(self, processor: ImageProcessor, crop_scale: Sequence[float] = (), hflip: bool = False,
                 randaugment: dict | None = None):
        from torchvision.transforms import v2 as T

        self.processor = processor
        self.crop_scale = tuple(float(x) for x in crop_scale)
        self.hflip = bool(hflip)
        self.randaugment = dict(randaugment or {})
        check_augmentation(self.crop_scale, self.randaugment)
        resample = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR,
                    "nearest": T.InterpolationMode.NEAREST}.get(processor.interpolation, T.InterpolationMode.BICUBIC)
        ops = []
        if self.crop_scale:
            ops.append(T.RandomResizedCrop(processor.image_size, scale=self.crop_scale, interpolation=resample,
                                           antialias=True))
        if self.hflip:
            ops.append(T.RandomHorizontalFlip())
        if self.randaugment:
            ops.append(T.RandAugment(num_ops=int(self.randaugment.get("num_ops", 2)),
                                     magnitude=int(self.randaugment.get("magnitude", 9)), interpolation=resample))
        self.ops = T.Compose(ops) if ops else None

    @property
    def active(self) -> bool:
        return self.ops is not None

    def __call__(self, image: Image.Image, seed: int | None = None) -> torch.Tensor:
        """``seed``: draw the random augmentation from its own generator seeded so (the
        training dataset passes a hash of (run seed, epoch, index): the same item gets the same
        augmentation in any DataLoader worker and after a resume, and the global RNG that
        dropout uses is left alone). Without it, torch's global RNG is used."""
        if self.ops is None:
            return self.processor(image)
        if seed is None:
            image = self.ops(to_rgb(image))
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                image = self.ops(to_rgb(image))
        # After a random crop the image is already square at the right size; the processor
        # then only normalises (no resize, no crop). Without one it resizes + crops as at eval.
        return self.processor(image)

    def __repr__(self) -> str:
        return (f"TrainTransform(size={self.processor.image_size}, crop_scale={self.crop_scale or None}, "
                f"hflip={self.hflip}, randaugment={self.randaugment or None})")


def check_augmentation(crop_scale: Sequence[float], randaugment: dict) -> None:
    """ValueError naming the setting unless crop_scale is [] or [lo, hi] with 0 < lo <= hi <= 1
    and randaugment is {} or {num_ops >= 1, 0 <= magnitude <= 30}."""
    if crop_scale and (len(crop_scale) != 2 or not 0 < crop_scale[0] <= crop_scale[1] <= 1):
        raise ValueError(f"data.crop_scale must be [] or [min, max] with 0 < min <= max <= 1, got {list(crop_scale)}")
    unknown = sorted(set(randaugment) - {"num_ops", "magnitude"})
    if unknown:
        raise ValueError(f"data.randaugment: unknown key(s) {unknown}; known: ['magnitude', 'num_ops']")
    if randaugment and (int(randaugment.get("num_ops", 2)) < 1 or not 0 <= int(randaugment.get("magnitude", 9)) <= 30):
        raise ValueError(f"data.randaugment needs num_ops >= 1 and 0 <= magnitude <= 30, got {randaugment}")


# The official pre_caption's character class, and what it turns into spaces.
_DROP = re.compile(r"[,.'!?\"()*#:;~]")
_SPACE = re.compile(r"\s+")


def pre_caption(caption: str, max_words: int = 30, *, allow_empty: bool = False) -> str:
    """The official CCRK / X-VLM caption cleaning, rewritten.

    Lowercase; delete the ASCII characters ``, . ' ! ? " ( ) * # : ;  ~``; ``-`` and ``/``
    become spaces; ``<person>`` becomes ``person``; whitespace runs collapse to one space and
    the ends are stripped; at most ``max_words`` space-separated words are kept. An empty
    result is a ValueError (as officially) unless ``allow_empty``.

    Faithful on purpose for other scripts: full-width punctuation (``。，！？``) is kept, and
    a Chinese or Japanese caption without spaces is one "word", so ``max_words`` never cuts
    it (the tokenizer's max length bounds it). One deliberate difference: the official code
    collapses only runs of 2+ whitespace characters, leaving a lone tab or newline inside;
    here any whitespace run becomes one space.
    """
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a string, got {type(caption).__name__}")
    text = _DROP.sub("", caption.lower()).replace("-", " ").replace("/", " ").replace("<person>", "person")
    words = _SPACE.sub(" ", text).strip().split(" ")
    text = " ".join(words[:max_words]) if max_words > 0 else " ".join(words)
    if not text and not allow_empty:
        raise ValueError(f"pre_caption leaves nothing of {caption!r}")
    return text

"""Turning user inputs (PIL images, strings) into tower inputs, as transformers' processors do.

Kept apart from the model so a DataLoader worker can preprocess without holding the model,
and so the exact preprocessing is saved next to the weights (preprocessor_config.json).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .data.formats import to_rgb

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


def tokenize(tokenizer, texts: Sequence[str], max_length: int, prefix: str = "") -> dict[str, torch.Tensor]:
    """Strings -> padded ``input_ids`` / ``attention_mask``; long texts are truncated.

    The limit is the smaller of ``max_length`` and the tokenizer's own maximum.
    """
    check_texts(texts)
    limit = min(max_length, getattr(tokenizer, "model_max_length", max_length) or max_length)
    enc = tokenizer(
        [prefix + t for t in texts], padding=True, truncation=True, max_length=limit, return_tensors="pt"
    )
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

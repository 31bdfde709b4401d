"""The images of a parallel test set as a torch Dataset, and how image batches are collated.

Items carry their index so a step can look up anything else about a row without pushing it
through the DataLoader. Errors raised while loading an item are `DataFormatError`s naming the
file and line, so a worker crash is readable.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ccr_demo.data.errors import DataFormatError
from ccr_demo.data.testset import ParallelTestSet


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 [3, H, W] in [0, 1] (the default transform)."""
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)


def load_transformed(load: Callable[[], Image.Image], transform: Callable[[Image.Image], Any], where: str) -> Any:
    image = load()  # DataFormatError names the file already
    try:
        return transform(image)
    except Exception as e:  # a transform failing on one odd image: say which
        raise DataFormatError(f"{where}: transform failed: {type(e).__name__}: {e}") from e


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
        return load_transformed(lambda: ts.load_image(index, self.max_pixels), self.transform, where), index


def stack_images(images: Sequence[Any]) -> torch.Tensor | list:
    """Stack tensor images; leave anything else (PIL images for a model's own preprocessing) as a list."""
    if not all(isinstance(im, torch.Tensor) for im in images):
        return list(images)
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        raise DataFormatError(
            f"images in a batch differ in shape {sorted(shapes)}: give the dataset a resizing transform")
    return torch.stack(list(images))


def collate_images(batch: Sequence[tuple[Any, int]]) -> tuple[torch.Tensor | list, torch.Tensor]:
    """(images [B,3,H,W], indices int64 [B])."""
    images, indices = zip(*batch)
    return stack_images(images), torch.as_tensor(indices, dtype=torch.int64)


"""`GlobalBatchSampler`: every process's slice of one seeded global batch, so N processes with
batch b train like one process with batch N*b, and the data order is a pure function of
(seed, epoch) that a resumed run replays from any batch."""

from __future__ import annotations

from typing import Iterator

import numpy as np
from torch.utils.data import Sampler


class GlobalBatchSampler(Sampler):
    """This process's slice of seeded global batches: epoch e's order is permutation(seed, e).

    Global batch j holds items perm[j*G:(j+1)*G] with G = batch_size * world_size; process r
    takes its r-th contiguous slice of b items, so gathering slices in rank order rebuilds
    exactly the batch a single process with batch G would see. The last partial global
    batch is dropped (a contrastive batch needs the same size on every process).
    """

    def __init__(self, n: int, batch_size: int, world_size: int, rank: int, seed: int):
        self.n, self.b, self.world, self.rank, self.seed = n, batch_size, world_size, rank, seed
        self.epoch, self.start = 0, 0
        if self.batches_per_epoch == 0:
            raise ValueError(f"{n} training items are fewer than one global batch of {batch_size} x {world_size} "
                             "processes: lower train.batch_size or add data")

    @property
    def batches_per_epoch(self) -> int:
        return self.n // (self.b * self.world)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start = epoch, start_batch

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start

    def __iter__(self) -> Iterator[list[int]]:
        perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        G = self.b * self.world
        for j in range(self.start, self.batches_per_epoch):
            chunk = perm[j * G + self.rank * self.b: j * G + (self.rank + 1) * self.b]
            yield chunk.tolist()

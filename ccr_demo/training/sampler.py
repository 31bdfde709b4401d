"""`GlobalBatchSampler`: every process's slice of one seeded global batch, so N processes with
batch b train like one process with batch N*b, and the data order is a pure function of
(seed, epoch) that a resumed run replays from any batch. Groups of rows (twins) can be kept in
one global batch."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class GlobalBatchSampler(Sampler):
    """This process's slice of seeded global batches: epoch e's order is permutation(seed, e).

    Global batch j holds items perm[j*G:(j+1)*G] with G = batch_size * world_size; process r
    takes its r-th contiguous slice of b items, so gathering slices in rank order rebuilds
    exactly the batch a single process with batch G would see. The last partial global
    batch is dropped (a contrastive batch needs the same size on every process).
    """

    def __init__(self, n: int, batch_size: int, world_size: int, rank: int, seed: int,
                 groups: Sequence[Sequence[int]] = ()):
        self.n, self.b, self.world, self.rank, self.seed = n, batch_size, world_size, rank, seed
        self.epoch, self.start = 0, 0
        # Rows that must share a global batch (twins); every other row is a group of one.
        self.groups = [list(map(int, g)) for g in groups if len(g) > 1]
        grouped = [i for g in self.groups for i in g]
        if len(set(grouped)) != len(grouped) or any(not 0 <= i < n for i in grouped):
            raise ValueError("twin groups must be disjoint sets of row indices in [0, n)")
        if any(len(g) > batch_size * world_size for g in self.groups):
            raise ValueError(f"a group of rows is larger than the global batch of {batch_size * world_size}")
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

    def order(self) -> np.ndarray:
        """This epoch's order of all rows. Without groups: permutation(seed, epoch). With groups:
        the groups (and the other rows as groups of one) in a seeded order, laid into global
        batches whole; a group that would straddle a batch boundary waits while the next rows
        that fit fill the batch, so only the last, dropped, partial batch can end early."""
        rng = np.random.default_rng([self.seed, self.epoch])
        if not self.groups:
            return rng.permutation(self.n)
        grouped = {i for g in self.groups for i in g}
        units = self.groups + [[i] for i in range(self.n) if i not in grouped]
        G = self.b * self.world
        out: list[int] = []
        waiting: list[list[int]] = []
        for unit in (units[k] for k in rng.permutation(len(units))):
            waiting.append(unit)
            while waiting:
                room = G - len(out) % G
                fit = next((w for w in waiting if len(w) <= room), None)
                if fit is None:
                    break
                waiting.remove(fit)
                out.extend(fit)
        for unit in waiting:  # what no batch had room for goes last (into the dropped tail)
            out.extend(unit)
        return np.asarray(out, dtype=np.int64)

    def __iter__(self) -> Iterator[list[int]]:
        perm = self.order()
        G = self.b * self.world
        for j in range(self.start, self.batches_per_epoch):
            chunk = perm[j * G + self.rank * self.b: j * G + (self.rank + 1) * self.b]
            yield chunk.tolist()

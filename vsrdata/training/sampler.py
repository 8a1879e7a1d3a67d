"""`TrainSampler`: the deterministic, rank-aware, infinite sample stream of training, and the
DataLoader worker init.

Every random choice of a sample comes from a numpy Generator seeded with (seed, salt, global
sample position). The sampler hands out positions, so a sample does not depend on the worker, the
number of workers or the rank that loads it: a resumed run or a DDP run sees exactly the samples
of a straight single-process run with the same global batch.

Each item is a :class:`SampleKey` ``(index, seed, tag)``; ``tag`` = ``"k/j"`` names sample j of
iteration k of the global batch (``"k/j/salt"`` after a rollback reshuffle): the identity under
which on-the-fly degradation draws its parameters (`vsrdata.training.onthefly`), so they depend
only on (degradation seed, k, j) -- not on the rank, the worker or the accumulation split.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Sampler


class SampleKey(NamedTuple):
    """What the sampler hands a dataset: the sample's index, the seed of its crop/flip draws and
    its tag ``"k/j"`` (iteration k >= 1, slot j of the global batch; ``"/salt"`` appended when the
    stream was reshuffled)."""

    index: int
    seed: int
    tag: str


class TrainSampler(Sampler):
    """Infinite, rank-aware sampler yielding :class:`SampleKey` (dataset index, sample seed, tag).

    Global sample position p (0, 1, 2, ...) belongs to epoch p // n and maps to
    permutation_epoch[p % n], the permutation drawn from (seed, salt, epoch). Iteration s of rank r
    takes positions s*B*W + r*B + j (j < B), so the union over ranks of one iteration is exactly
    the batch B*W of a single process. `start_iter` skips finished iterations (resume).
    The dataset-enlarge ratio of BasicSR is not needed: the stream never ends.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 start_iter: int = 0, salt: int = 0):
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.start_iter, self.salt = int(start_iter), int(salt)
        self._perm_epoch, self._perm = -1, None

    def _perm_for(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, self.salt, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        return self._perm

    def position_seed(self, p: int) -> int:
        return int(np.random.SeedSequence([self.seed, self.salt, p, 7919]).generate_state(1)[0])

    def __iter__(self):
        s = self.start_iter
        gb = self.batch_size * self.world_size
        while True:
            for j in range(self.batch_size):
                p = s * gb + self.rank * self.batch_size + j
                tag = f"{s + 1}/{p - s * gb}" + (f"/{self.salt}" if self.salt else "")
                yield SampleKey(int(self._perm_for(p // self.n)[p % self.n]), self.position_seed(p), tag)
            s += 1


def worker_init(_worker_id: int) -> None:
    """DataLoader worker init: keep OpenCV single-threaded inside workers."""
    try:
        import cv2

        cv2.setNumThreads(0)
    except Exception:  # pragma: no cover
        pass
    torch.set_num_threads(1)

"""The training data order of every stage: reproducible from (seed, step), so a run resumed at any
checkpoint sees exactly the batches the uninterrupted run saw from there on."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Sampler


class ResumableRandomSampler(Sampler[int]):
    """Indices of a dataset for `total_batches` steps of `batch_size` windows on each of `replicas`
    processes, from a fresh seeded permutation every pass over the data.

    A step here is one batch: with gradient accumulation, an optimizer step of k batches is k steps,
    and its k batches of B hold the indices of one batch of k * B (`ResumableData`). The run is cut into Lightning epochs of `batches_per_epoch` steps (the checkpoint interval);
    Lightning calls `set_epoch(e)` at the start of epoch e and the sampler then yields the indices of
    steps e * batches_per_epoch ... (fewer at the end of the run). The order depends only on (seed,
    step), and checkpoints fall on epoch boundaries, so a run resumed from a checkpoint sees exactly
    the batches the uninterrupted run saw. Under DDP, Lightning hands each of the `replicas`
    processes its share of every epoch's indices. repeats: optional (n_items,) ints >= 1, how many
    times each item appears per pass (oversampling, e.g. of turns).
    """

    def __init__(self, n_items: int, batch_size: int, total_batches: int, seed: int, batches_per_epoch: int, replicas: int = 1,
                 repeats: "np.ndarray | list[int] | None" = None) -> None:
        if n_items < 1 or batch_size < 1 or total_batches < 0 or batches_per_epoch < 1 or replicas < 1:
            raise ValueError(f"ResumableRandomSampler: bad sizes n_items={n_items}, batch_size={batch_size}, total_batches={total_batches}, "
                             f"batches_per_epoch={batches_per_epoch}, replicas={replicas}")
        self.items = torch.arange(n_items)  # (P,) the dataset index at each position of a pass
        if repeats is not None:
            counts = torch.as_tensor(np.asarray(repeats, dtype=np.int64))
            if counts.shape != (n_items,) or bool((counts < 1).any()):
                raise ValueError(f"ResumableRandomSampler: repeats must be {n_items} ints >= 1")
            self.items = torch.repeat_interleave(self.items, counts)
        self.n_items, self.seed = len(self.items), seed
        self.step_size = batch_size * replicas  # indices per optimizer step, all processes together
        self.total_batches, self.batches_per_epoch = total_batches, batches_per_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _steps(self) -> range:
        first = min(self.epoch * self.batches_per_epoch, self.total_batches)
        return range(first, min(first + self.batches_per_epoch, self.total_batches))

    def __len__(self) -> int:
        return len(self._steps()) * self.step_size

    def __iter__(self):
        steps = self._steps()
        if not steps:  # Lightning would loop over empty epochs forever
            raise RuntimeError(f"ResumableRandomSampler: epoch {self.epoch} lies past the run's {self.total_batches} steps "
                               f"(epochs of {self.batches_per_epoch}); was the run resumed from a checkpoint of another run?")
        position, end = steps.start * self.step_size, steps.stop * self.step_size
        data_pass = position // self.n_items
        while position < end:
            perm = torch.randperm(self.n_items, generator=torch.Generator().manual_seed(self.seed * 100_003 + data_pass))
            offset = position - data_pass * self.n_items
            yield from self.items[perm[offset : offset + end - position]].tolist()
            position = (data_pass + 1) * self.n_items
            data_pass += 1

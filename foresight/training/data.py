"""A stage's training and validation data, in the resumable order (`ResumableRandomSampler`), as a
LightningDataModule: it learns the number of processes and of batches per optimizer step
(trainer.accumulate_grad_batches) from the trainer, so every process gets its share of each step
under DDP and an accumulated step sees the samples of one batch that many times larger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from foresight.training.sampler import ResumableRandomSampler


class ResumableData(L.LightningDataModule):
    """train: the training dataset, drawn `batch_size` items per process per batch for `max_steps`
    optimizer steps (of the trainer's accumulate_grad_batches batches each) in Lightning epochs of
    `steps_per_epoch` steps (the checkpoint interval, so checkpoints fall on epoch boundaries); val: the validation dataset (None: no validation), in order; repeats:
    optional per-item repeats per pass over `train`; collate_fn: how items become a batch."""

    def __init__(self, train: Dataset, batch_size: int, max_steps: int, steps_per_epoch: int, seed: int, val: Dataset | None = None,
                 repeats: np.ndarray | None = None, collate_fn: Callable[[list[Any]], Any] | None = None, num_workers: int = 0) -> None:
        super().__init__()
        self.train, self.val, self.batch_size, self.repeats = train, val, batch_size, repeats
        self.max_steps, self.steps_per_epoch, self.seed = max_steps, steps_per_epoch, seed
        self.collate_fn, self.num_workers = collate_fn, num_workers

    def has_validation(self) -> bool:
        return self.val is not None and len(self.val) > 0

    def _loader(self, dataset: Dataset, sampler: Any = None) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, shuffle=False, collate_fn=self.collate_fn,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        replicas = int(self.trainer.world_size) if self.trainer is not None else 1
        accumulate = int(self.trainer.accumulate_grad_batches) if self.trainer is not None else 1
        sampler = ResumableRandomSampler(len(self.train), self.batch_size, self.max_steps * accumulate, self.seed, self.steps_per_epoch * accumulate,
                                         replicas, self.repeats)
        return self._loader(self.train, sampler)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val) if self.has_validation() else []

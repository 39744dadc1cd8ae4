"""Lightning data module of world-model training: mixed token windows for training, per-source
held-out windows for validation.

An epoch is `steps_per_epoch` optimizer steps (the checkpoint interval), so every periodic
checkpoint falls on an epoch boundary and a resumed run replays exactly the batches the killed run
would have seen next (the MixingSampler's order depends only on seed and epoch).
"""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Subset

from world_model.token_sources import SourceWindows
from world_model.tokens_dataset import MixingSampler


class TokenDataModule(L.LightningDataModule):
    """windows: per-source train/val windows; proportions: normalised mixing weights per source;
    batch_size: windows per rank per step; val_windows: at most this many validation windows per
    source (evenly spaced, fixed)."""

    def __init__(
        self,
        windows: Mapping[str, SourceWindows],
        proportions: Mapping[str, float],
        batch_size: int,
        steps_per_epoch: int,
        val_windows: int,
        seed: int,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1 or steps_per_epoch < 1 or val_windows < 0:
            raise ValueError(f"TokenDataModule: need batch_size >= 1, steps_per_epoch >= 1, val_windows >= 0; got {batch_size}, {steps_per_epoch}, {val_windows}")
        self.windows = dict(windows)
        self.proportions = dict(proportions)
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.val_windows = val_windows
        self.seed = seed
        self.num_workers = num_workers
        self.sampler: MixingSampler | None = None

    def _world_size(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.world_size) if trainer is not None else 1

    def _accumulate(self) -> int:
        """Batches per optimizer step (trainer.accumulate_grad_batches): an epoch of steps_per_epoch
        optimizer steps draws that many batches per step."""
        trainer = getattr(self, "trainer", None)
        return int(trainer.accumulate_grad_batches) if trainer is not None else 1

    def _loader_kwargs(self) -> dict:
        # An explicit generator: DataLoader worker seeds never consume the global RNG, so resumed
        # runs (which restore it) see the same random stream as uninterrupted ones.
        return dict(
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        # Lightning shards the sampler's draws over ranks: draw for all of them, every accumulated batch.
        num_samples = self.steps_per_epoch * self._accumulate() * self.batch_size * self._world_size()
        self.sampler = MixingSampler({n: w.train for n, w in self.windows.items()}, self.proportions, num_samples, seed=self.seed)
        return DataLoader(self.sampler.dataset, batch_size=self.batch_size, sampler=self.sampler, drop_last=True, **self._loader_kwargs())

    def has_validation(self) -> bool:
        return self.val_windows > 0 and any(len(w.val) for w in self.windows.values())

    def val_dataset(self) -> ConcatDataset:
        parts = []
        for w in self.windows.values():
            n = len(w.val)
            if n == 0:
                continue
            keep = np.unique(np.linspace(0, n - 1, min(n, self.val_windows)).round().astype(np.int64))
            parts.append(Subset(w.val, keep.tolist()))
        return ConcatDataset(parts)

    def val_dataloader(self) -> DataLoader | list:
        if not self.has_validation():
            return []
        return DataLoader(self.val_dataset(), batch_size=self.batch_size, shuffle=False, **self._loader_kwargs())

"""The planner's training batch: typed windows instead of a dict of tensors.

`PlannerWindowDataset` yields one window (the fields below without the leading B); `planner_loader`
batches them with `PlannerBatch.collate`. The action model's training, validation and sampling, the
ego-status MLP and the open-loop evaluation all read this one type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


@dataclass(frozen=True)
class PlannerBatch:
    """B planner windows (see planner/datamodule.py for how they are cut).

    trajectory:       (B, K, 3) float32 [m, m, rad] the logged future poses in the current ego frame
    trajectory_valid: (B, K) bool, False where the log ends before the waypoint
    command:          (B,) int64 route command (RIGHT 0, LEFT 1, STRAIGHT 2)
    speed_mps, accel_mps2, yaw_rate_rps: (B,) float32 current ego motion
    past_poses:       (B, P, 3) float32 [m, m, rad] past poses in the current ego frame at frame_times_s
    frame_times_s:    (B, P) float32 [s] relative to now, oldest first, ending at 0
    n_padded:         (B,) int64 observed frames that repeat the oldest (window at a clip's start)
    clip_index, frame_index: (B,) int64 where the window ends in the clip store
    tokens:           (B, T, h, w) int64 observed frames' tokens, the current one last (None: labels only)
    future_tokens:    (B, N, h, w) int64 the true next frames (imagine-mode teacher forcing), or None
    route_path:       (B, M, 2) float32 [m] the route ahead every ROUTE_PATH_STEP_M in the current ego
                      frame (data.route_points.route_path), or None when the model reads no route
    """

    trajectory: torch.Tensor
    trajectory_valid: torch.Tensor
    command: torch.Tensor
    speed_mps: torch.Tensor
    accel_mps2: torch.Tensor
    yaw_rate_rps: torch.Tensor
    past_poses: torch.Tensor
    frame_times_s: torch.Tensor
    n_padded: torch.Tensor
    clip_index: torch.Tensor
    frame_index: torch.Tensor
    tokens: torch.Tensor | None
    future_tokens: torch.Tensor | None
    route_path: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.command.shape[0])

    def to(self, device: torch.device | str) -> "PlannerBatch":
        return dataclasses.replace(self, **{f.name: v.to(device) for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None})

    def select(self, index: torch.Tensor | slice) -> "PlannerBatch":
        """The windows at `index` (B' of them)."""
        return dataclasses.replace(self, **{f.name: v[index] for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None})

    @classmethod
    def collate(cls, items: Sequence["PlannerBatch"]) -> "PlannerBatch":
        """Stack single windows (items without the B dimension) into a batch."""
        return cls._join(items, torch.stack)

    @classmethod
    def concat(cls, batches: Sequence["PlannerBatch"]) -> "PlannerBatch":
        """Concatenate batches along B."""
        return cls._join(batches, torch.cat)

    @classmethod
    def _join(cls, parts: Sequence["PlannerBatch"], join: Any) -> "PlannerBatch":
        if not parts:
            raise ValueError("PlannerBatch: nothing to join")
        values = {}
        for f in dataclasses.fields(cls):
            present = [getattr(p, f.name) is not None for p in parts]
            if any(present) and not all(present):
                raise ValueError(f"PlannerBatch: some windows have {f.name} and some do not")
            values[f.name] = join([getattr(p, f.name) for p in parts]) if present[0] else None
        return cls(**values)


def planner_loader(dataset: Dataset, batch_size: int, sampler: Sampler | None = None, num_workers: int = 0) -> DataLoader:
    """Batches of planner windows, in order (or the sampler's)."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=num_workers,
                      persistent_workers=num_workers > 0, collate_fn=PlannerBatch.collate)

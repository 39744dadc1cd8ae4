"""PyTorch Dataset of fixed-length frame windows from a clip store.

A window is `n_frames` frames at `fps` (a divisor of the store's frame rate) with, at its last frame,
the future trajectory over `horizon_s` every `dt_s`, the command, and the ego's recent motion.
Unlabeled clips (OpenDV) yield windows with `has_poses = False` and zeroed motion fields, so mixed
batches collate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from data.command import Command
from data.schema import future_trajectory
from data.store.reader import ClipStore


@dataclass(frozen=True)
class WindowSpec:
    """n_frames frames, `fps` frames per second, future `horizon_s` sampled every `dt_s`."""

    n_frames: int = 8
    fps: float = 2.0
    horizon_s: float = 3.0
    dt_s: float = 0.5
    window_stride: int = 1

    def __post_init__(self) -> None:
        if self.n_frames < 1 or self.fps <= 0 or self.horizon_s <= 0 or self.dt_s <= 0 or self.window_stride < 1:
            raise ValueError(f"invalid window spec {self}")

    @property
    def num_waypoints(self) -> int:
        return int(round(self.horizon_s / self.dt_s))


class ClipWindowDataset(Dataset):
    """Windows over every clip of a store.

    Each item is a dict of tensors:
      frames (n, H, W, 3) uint8; frame_times_s (n,) float32 relative to the last frame;
      trajectory (K, 3) float32 future [x fwd m, y left m, yaw rad] in the last frame's ego frame;
      trajectory_valid (K,) bool; command () int64 at the last frame; commands (n,) int64;
      past_poses (n, 3) float32 window poses in the last frame's ego frame; speed_mps, accel_mps2,
      yaw_rate_rps (n,) float32; has_poses () bool; clip_index, start_frame () int64.
    """

    def __init__(self, store: ClipStore | str | Path, spec: WindowSpec = WindowSpec(), require_poses: bool = False) -> None:
        self.store = store if isinstance(store, ClipStore) else ClipStore(store)
        self.spec = spec
        self.index: list[tuple[int, int, int]] = []  # (clip, first frame, frame step)
        for ci, ref in enumerate(self.store.refs):
            meta = self.store.meta(ci)
            if require_poses and not meta["has_poses"]:
                continue
            step = self._frame_step(float(meta["fps"]), ref.clip_id)
            span = (spec.n_frames - 1) * step
            for start in range(0, ref.num_frames - span, spec.window_stride * step):
                self.index.append((ci, start, step))

    def _frame_step(self, clip_fps: float, clip_id: str) -> int:
        ratio = clip_fps / self.spec.fps
        step = int(round(ratio))
        if step < 1 or abs(ratio - step) > 0.01 * ratio:
            raise ValueError(
                f"clip {clip_id} is stored at {clip_fps} fps; windows at {self.spec.fps} fps need an integer "
                f"divisor of it (convert the data at a multiple of {self.spec.fps} fps)"
            )
        return step

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ci, start, step = self.index[i]
        spec = self.spec
        idx = start + step * np.arange(spec.n_frames)
        frames = self.store.load_frames(ci, idx)
        ts = self.store.frame_timestamps_us(ci)[idx]
        k = spec.num_waypoints
        item = {
            "frames": torch.from_numpy(frames),
            "frame_times_s": torch.from_numpy(((ts - ts[-1]) * 1e-6).astype(np.float32)),
            "clip_index": torch.tensor(ci),
            "start_frame": torch.tensor(start),
        }
        poses = self.store.pose_stream(ci)
        commands = self.store.commands(ci)
        if poses is None:
            zeros = torch.zeros(spec.n_frames)
            item.update(
                trajectory=torch.zeros(k, 3),
                trajectory_valid=torch.zeros(k, dtype=torch.bool),
                command=torch.tensor(int(Command.STRAIGHT)),
                commands=torch.full((spec.n_frames,), int(Command.STRAIGHT)),
                past_poses=torch.zeros(spec.n_frames, 3),
                speed_mps=zeros,
                accel_mps2=zeros.clone(),
                yaw_rate_rps=zeros.clone(),
                has_poses=torch.tensor(False),
            )
            return item
        t0 = int(ts[-1])
        fut = future_trajectory(poses, t0, spec.horizon_s, spec.dt_s)
        cmds = commands[idx].astype(np.int64)
        item.update(
            trajectory=torch.from_numpy(fut.poses),
            trajectory_valid=torch.from_numpy(fut.valid),
            command=torch.tensor(int(cmds[-1])),
            commands=torch.from_numpy(cmds),
            past_poses=torch.from_numpy(poses.in_ego_frame(t0, ts).astype(np.float32)),
            speed_mps=torch.from_numpy(poses.speed_at(ts).astype(np.float32)),
            accel_mps2=torch.from_numpy(poses.accel_lon_at(ts).astype(np.float32)),
            yaw_rate_rps=torch.from_numpy(poses.yaw_rate_at(ts).astype(np.float32)),
            has_poses=torch.tensor(True),
        )
        return item

"""The ego's motion per frame step, as the world model's conditioning input.

For a sequence of frames 0..T-1, `ego_motion` (B, T, 3) float holds, for frame f >= 1, the motion
from frame f-1 to frame f expressed in the ego frame at f-1: [dx_forward_m, dy_left_m, dyaw_rad]
(yaw counter-clockwise positive). Row 0 has no previous frame in the sequence and is never used by
the model. NaN marks an unknown motion (a clip without poses, frame 0, a dropped condition): the
model then adds nothing, exactly as a model without the input.
"""

from __future__ import annotations

import numpy as np
import torch

from data.ego_motion import to_ego_frame

EGO_MOTION_FIELDS = ("dx_forward_m", "dy_left_m", "dyaw_rad")


def frame_motions(poses_xyyaw: np.ndarray) -> np.ndarray:
    """(T, 3) float32 motions of a frame sequence from its poses (T, 3) [x m, y m, yaw rad] in any
    one world frame: row f >= 1 is frame f's pose in the ego frame of frame f-1; row 0 is NaN."""
    poses = np.asarray(poses_xyyaw, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 3:
        raise ValueError(f"frame_motions: poses must be (T, 3) [x, y, yaw], got {poses.shape}")
    motions = np.full(poses.shape, np.nan, dtype=np.float32)
    if len(poses) > 1:
        motions[1:] = np.stack([to_ego_frame(origin, pose) for origin, pose in zip(poses[:-1], poses[1:])])
    return motions


def unknown_motions(n_frames: int) -> np.ndarray:
    """(n_frames, 3) float32 NaN: the motions of a clip without poses."""
    return np.full((n_frames, 3), np.nan, dtype=np.float32)


def drop_motions(ego_motion: torch.Tensor, probability: float, uniform: torch.Tensor) -> torch.Tensor:
    """Conditioning dropout: ego_motion (B, T, 3) with every motion of window b set to NaN (unknown)
    where uniform[b] < probability; uniform (B,) in [0, 1) (drawn by the caller from its seeded
    generator). probability 1 drops everything (the unconditioned model), 0 nothing."""
    if uniform.shape != ego_motion.shape[:1]:
        raise ValueError(f"drop_motions: need one uniform draw per window ({ego_motion.shape[0]}), got {tuple(uniform.shape)}")
    dropped = (uniform < probability).to(ego_motion.device)[:, None, None]  # (B, 1, 1)
    return torch.where(dropped, torch.full_like(ego_motion, float("nan")), ego_motion)


def window_motions(poses_xyyaw: torch.Tensor, has_poses: torch.Tensor) -> torch.Tensor:
    """(B, T, 3) float32 motions of a batch of windows from their poses (B, T, 3) [x m, y m, yaw rad]
    in any one frame per window (e.g. `ClipWindowDataset`'s past_poses); windows whose has_poses (B,)
    is False get NaN (unknown) throughout."""
    if poses_xyyaw.ndim != 3 or poses_xyyaw.shape[2] != 3 or has_poses.shape != poses_xyyaw.shape[:1]:
        raise ValueError(f"window_motions: need poses (B, T, 3) and has_poses (B,), got {tuple(poses_xyyaw.shape)}, {tuple(has_poses.shape)}")
    poses = poses_xyyaw.detach().double().cpu().numpy()
    motions = [frame_motions(p) if bool(known) else unknown_motions(len(p)) for p, known in zip(poses, has_poses.tolist())]
    return torch.from_numpy(np.stack(motions)) if motions else torch.zeros(0, poses.shape[1], 3)

"""Physical trajectories <-> the action model's normalised space (constants from ActionModelConfig)."""

from __future__ import annotations

import torch

from planner.action_model.config import ActionModelConfig


def trajectory_to_model(trajectory: torch.Tensor, config: ActionModelConfig) -> torch.Tensor:
    """(..., K, 2 or 3) [m, m(, rad)] -> (..., K, trajectory_dim) model units (x, y / position_scale_m, yaw / yaw_scale_rad)."""
    if trajectory.shape[-1] < config.trajectory_dim:
        raise ValueError(f"trajectory_to_model: need {config.trajectory_dim} values per waypoint, got shape {tuple(trajectory.shape)}")
    xy = trajectory[..., :2] / config.position_scale_m
    if not config.predict_yaw:
        return xy
    return torch.cat([xy, trajectory[..., 2:3] / config.yaw_scale_rad], dim=-1)


def trajectory_from_model(x: torch.Tensor, config: ActionModelConfig) -> torch.Tensor:
    """Inverse of `trajectory_to_model`: (..., K, trajectory_dim) -> [m, m(, rad)]."""
    if x.shape[-1] != config.trajectory_dim:
        raise ValueError(f"trajectory_from_model: expected {config.trajectory_dim} values per waypoint, got shape {tuple(x.shape)}")
    xy = x[..., :2] * config.position_scale_m
    if not config.predict_yaw:
        return xy
    return torch.cat([xy, x[..., 2:3] * config.yaw_scale_rad], dim=-1)

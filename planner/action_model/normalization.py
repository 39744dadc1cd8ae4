"""Physical trajectories <-> the action model's normalised space (constants from ActionModelConfig).

With a kinematic anchor (ActionModelConfig.anchor), model space holds the offset from the anchor:
x_model = (trajectory - anchor) / scale, and back. Positions use a per-waypoint scale
position_scale_m * (k / K)^waypoint_scale_power (k = 1..K; power 0: one scale for all).
"""

from __future__ import annotations

import torch

from planner.action_model.config import ActionModelConfig


def _anchor_part(anchor: torch.Tensor | None, config: ActionModelConfig, like: torch.Tensor, caller: str) -> torch.Tensor | None:
    """The anchor's first trajectory_dim values, broadcastable to `like` (..., K, D); None without one."""
    if config.anchor == "none":
        return None
    if anchor is None:
        raise ValueError(f"{caller}: this model generates offsets from its kinematic anchor; pass the conditions' anchor")
    part = anchor[..., : config.trajectory_dim].to(like.dtype)
    while part.ndim < like.ndim:  # (B, K, D) -> (B, 1, K, D) for samples
        part = part.unsqueeze(1)
    return part


def position_scales(config: ActionModelConfig, device: torch.device | None = None) -> torch.Tensor:
    """(K, 1) [m] the position scale of each waypoint (see the module docstring)."""
    k = torch.arange(1, config.num_waypoints + 1, dtype=torch.float32, device=device)
    return (config.position_scale_m * (k / config.num_waypoints) ** config.waypoint_scale_power)[:, None]


def trajectory_to_model(trajectory: torch.Tensor, config: ActionModelConfig, anchor: torch.Tensor | None = None) -> torch.Tensor:
    """(..., K, 2 or 3) [m, m(, rad)] -> (..., K, trajectory_dim) model units ((x, y) - anchor) /
    position_scale_m, (yaw - anchor yaw) / yaw_scale_rad; `anchor` (B, K, 3) when config.anchor is used."""
    if trajectory.shape[-1] < config.trajectory_dim:
        raise ValueError(f"trajectory_to_model: need {config.trajectory_dim} values per waypoint, got shape {tuple(trajectory.shape)}")
    x = trajectory[..., : config.trajectory_dim]
    offset = _anchor_part(anchor, config, x, "trajectory_to_model")
    if offset is not None:
        x = x - offset
    xy = x[..., :2] / position_scales(config, x.device).to(x.dtype)
    if not config.predict_yaw:
        return xy
    return torch.cat([xy, x[..., 2:3] / config.yaw_scale_rad], dim=-1)


def trajectory_from_model(x: torch.Tensor, config: ActionModelConfig, anchor: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse of `trajectory_to_model`: (..., K, trajectory_dim) -> [m, m(, rad)]."""
    if x.shape[-1] != config.trajectory_dim:
        raise ValueError(f"trajectory_from_model: expected {config.trajectory_dim} values per waypoint, got shape {tuple(x.shape)}")
    xy = x[..., :2] * position_scales(config, x.device).to(x.dtype)
    out = xy if not config.predict_yaw else torch.cat([xy, x[..., 2:3] * config.yaw_scale_rad], dim=-1)
    offset = _anchor_part(anchor, config, out, "trajectory_from_model")
    return out if offset is None else out + offset

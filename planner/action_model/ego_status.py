"""Ego-status features: current motion and a few past poses, normalised, one vector per sample.

Features (ActionModelConfig.ego_status_dim = 3 + 3 n): speed / speed_scale, accel / accel_scale,
yaw_rate / yaw_rate_scale, then for k = 1..n the pose at time -k * ego_history_dt_s in the current
ego frame: x / history_scale, y / history_scale, yaw / yaw_scale (ego_features "speed" /
"speed_only": the first two / the first one); then, with route_points_m, each route point's (x, y)
divided by its distance along the route. Past poses are linearly
interpolated from whatever history is given (dataset windows at 2 Hz, simulator history at any
rate); before the oldest known pose the ego is extrapolated backwards at the current speed along
the oldest heading, so a short history (the start of an episode) still gives a plausible vector.
The same function serves training batches and closed-loop observations.
"""

from __future__ import annotations

import torch

from planner.action_model.config import ActionModelConfig
from planner.action_model.route import points_along


def past_poses_at(
    times_s: torch.Tensor, poses_xyyaw: torch.Tensor, query_s: torch.Tensor, speed_mps: torch.Tensor
) -> torch.Tensor:
    """Poses (B, Q, 3) [m, m, rad] at query times (Q,) [s] from a history.

    times_s: (B, P) strictly increasing; poses_xyyaw: (B, P, 3) at those times; speed_mps: (B,)
    used to extrapolate before times_s[:, 0]. Queries after the newest time hold the newest pose.
    """
    batch, n_hist = times_s.shape
    if poses_xyyaw.shape != (batch, n_hist, 3):
        raise ValueError(f"past_poses_at: poses must be (B, P, 3) = ({batch}, {n_hist}, 3), got {tuple(poses_xyyaw.shape)}")
    query = query_s.to(device=times_s.device, dtype=times_s.dtype).expand(batch, -1).contiguous()  # (B, Q)
    if n_hist > 1:
        upper = torch.searchsorted(times_s.contiguous(), query).clamp(1, n_hist - 1)  # (B, Q)
        lower = upper - 1
        t0, t1 = times_s.gather(1, lower), times_s.gather(1, upper)  # (B, Q)
        w = ((query - t0) / (t1 - t0)).clamp(0.0, 1.0)[..., None]  # (B, Q, 1)
        pose_lower = poses_xyyaw.gather(1, lower[..., None].expand(-1, -1, 3))  # (B, Q, 3)
        pose_upper = poses_xyyaw.gather(1, upper[..., None].expand(-1, -1, 3))
        inside = pose_lower * (1 - w) + pose_upper * w  # (B, Q, 3)
    else:
        inside = poses_xyyaw[:, :1].expand(-1, query.shape[1], -1)
    oldest_t, oldest = times_s[:, :1], poses_xyyaw[:, 0]  # (B, 1), (B, 3)
    back_m = (oldest_t - query).clamp(min=0.0) * speed_mps[:, None].clamp(min=0.0)  # (B, Q) distance before the oldest pose
    before = torch.stack(
        [
            oldest[:, None, 0] - back_m * torch.cos(oldest[:, None, 2]),
            oldest[:, None, 1] - back_m * torch.sin(oldest[:, None, 2]),
            oldest[:, None, 2].expand_as(back_m),
        ],
        dim=-1,
    )  # (B, Q, 3)
    return torch.where((query < oldest_t)[..., None], before, inside)


def ego_status_features(
    speed_mps: torch.Tensor,
    accel_mps2: torch.Tensor,
    yaw_rate_rps: torch.Tensor,
    history_times_s: torch.Tensor,
    history_xyyaw: torch.Tensor,
    config: ActionModelConfig,
    route_path: torch.Tensor | None = None,
) -> torch.Tensor:
    """Normalised ego status (B, ego_status_dim) float32 (speed and accel only when
    config.ego_features is "speed"; speed alone when it is "speed_only"), then the route points.

    speed_mps, accel_mps2, yaw_rate_rps: (B,) current values; history_times_s (B, P) [s] relative to
    now (the newest <= 0); history_xyyaw (B, P, 3) past rear-axle poses in the current ego frame;
    route_path (B, M, 2) [m] the route ahead (data.route_points.route_path) in the current ego frame,
    required when config.route_points_m is not empty: its points at those distances, each divided by
    its distance, end the vector.
    """
    motion = _motion_features(speed_mps, accel_mps2, yaw_rate_rps, history_times_s, history_xyyaw, config)
    n_route = len(config.route_points_m)
    if not n_route:
        return motion
    if route_path is None or route_path.ndim != 3 or route_path.shape[0] != speed_mps.shape[0]:
        got = None if route_path is None else tuple(route_path.shape)
        raise ValueError(f"ego status: route_points_m={list(config.route_points_m)} needs the route path (B, M, 2), got {got}")
    distances = torch.tensor(config.route_points_m, dtype=torch.float64, device=route_path.device)
    points = points_along(route_path.double(), distances)  # (B, R, 2)
    route = (points / distances[None, :, None]).flatten(1).float()  # (B, 2R)
    return torch.cat([motion, route.to(motion.device)], dim=-1)


def _motion_features(
    speed_mps: torch.Tensor,
    accel_mps2: torch.Tensor,
    yaw_rate_rps: torch.Tensor,
    history_times_s: torch.Tensor,
    history_xyyaw: torch.Tensor,
    config: ActionModelConfig,
) -> torch.Tensor:
    c = config
    device = speed_mps.device
    if c.ego_features == "speed_only":
        return (speed_mps.double() / c.speed_scale_mps)[:, None].float()
    if c.ego_features == "speed":
        return torch.stack([speed_mps.double() / c.speed_scale_mps, accel_mps2.double() / c.accel_scale_mps2], dim=-1).float()
    query = -c.ego_history_dt_s * torch.arange(1, c.ego_history_steps + 1, dtype=torch.float64, device=device)  # (n,) newest first
    past = past_poses_at(history_times_s.double(), history_xyyaw.double(), query, speed_mps.double())  # (B, n, 3)
    scale = torch.tensor([c.history_scale_m, c.history_scale_m, c.yaw_scale_rad], dtype=torch.float64, device=device)
    motion = torch.stack(
        [speed_mps.double() / c.speed_scale_mps, accel_mps2.double() / c.accel_scale_mps2, yaw_rate_rps.double() / c.yaw_rate_scale_rps],
        dim=-1,
    )  # (B, 3)
    return torch.cat([motion, (past / scale).flatten(1)], dim=-1).float()

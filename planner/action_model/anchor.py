"""The kinematic anchor: where the ego would be if it kept its current speed, acceleration and yaw
rate (constant turn rate and acceleration), at the planner's waypoint times. With
ActionModelConfig.anchor = "kinematic" the flow generates waypoints as offsets from it."""

from __future__ import annotations

import torch

MAX_ACCEL_MPS2 = 4.0  # the extrapolation clamps noisy accelerations ...
MAX_YAW_RATE_RPS = 1.0  # ... and yaw rates to what a car does
SUBSTEPS = 10  # integration steps per waypoint interval


def kinematic_anchor(speed_mps: torch.Tensor, accel_mps2: torch.Tensor, yaw_rate_rps: torch.Tensor, num_waypoints: int, dt_s: float) -> torch.Tensor:
    """(B, K, 3) [x forward m, y left m, yaw rad] in the current ego frame at t = dt, 2 dt, ... K dt.

    speed_mps, accel_mps2, yaw_rate_rps: (B,) current values. The speed follows the acceleration but
    never goes below zero (a braking car stops, it does not reverse); the heading turns at the yaw
    rate; positions integrate with the midpoint rule on SUBSTEPS steps per interval.
    """
    speed = speed_mps.double().clamp_min(0.0)
    accel = accel_mps2.double().clamp(-MAX_ACCEL_MPS2, MAX_ACCEL_MPS2)
    yaw_rate = yaw_rate_rps.double().clamp(-MAX_YAW_RATE_RPS, MAX_YAW_RATE_RPS)
    h = dt_s / SUBSTEPS
    t = h * torch.arange(num_waypoints * SUBSTEPS, dtype=torch.float64, device=speed.device)  # (N,) step starts
    mid = t + 0.5 * h
    v_mid = (speed[:, None] + accel[:, None] * mid).clamp_min(0.0)  # (B, N)
    yaw_mid = yaw_rate[:, None] * mid
    x = torch.cumsum(v_mid * torch.cos(yaw_mid) * h, dim=1)[:, SUBSTEPS - 1 :: SUBSTEPS]  # (B, K)
    y = torch.cumsum(v_mid * torch.sin(yaw_mid) * h, dim=1)[:, SUBSTEPS - 1 :: SUBSTEPS]
    yaw = yaw_rate[:, None] * dt_s * torch.arange(1, num_waypoints + 1, dtype=torch.float64, device=speed.device)
    return torch.stack([x, y, yaw], dim=-1).float()


def route_anchor(speed_mps: torch.Tensor, route_path_xy: torch.Tensor, num_waypoints: int, dt_s: float) -> torch.Tensor:
    """(B, K, 3) [x forward m, y left m, yaw rad]: where the current speed held along the route
    would put the ego at t = dt, 2 dt, ... K dt (the anchor "route": lateral motion from the route,
    the flow generates the speed profile and any departure from it). route_path_xy: (B, M, 2) [m]
    the route ahead (data.route_points.route_path); yaw: the route's heading there."""
    from planner.action_model.route import points_along

    path = route_path_xy.double()
    times = dt_s * torch.arange(1, num_waypoints + 1, dtype=torch.float64, device=path.device)  # (K,)
    s = speed_mps.double().clamp_min(0.0)[:, None].to(path.device) * times  # (B, K) arc lengths
    xy = points_along(path, s)
    ahead, behind = points_along(path, s + 0.25), points_along(path, (s - 0.25).clamp_min(0.0))  # heading at s
    yaw = torch.atan2(ahead[..., 1] - behind[..., 1], ahead[..., 0] - behind[..., 0])
    return torch.cat([xy, yaw[..., None]], dim=-1).float()

"""Points read off the route path a planner window carries (`data.route_points.route_path`: the route
ahead every ROUTE_PATH_STEP_M metres in the ego frame), for the ego status (route points at fixed
distances) and for the route anchor (where constant speed along the route would take the ego)."""

from __future__ import annotations

import torch

from data.route_points import ROUTE_PATH_STEP_M


def points_along(path_xy: torch.Tensor, distances_m: torch.Tensor) -> torch.Tensor:
    """(B, R, 2) the points at arc lengths `distances_m` (B, R) or (R,) [m] >= 0 along uniformly
    resampled paths `path_xy` (B, M >= 2, 2) [m] (point i at i * ROUTE_PATH_STEP_M along the route);
    past the path's end the last segment is extended."""
    batch, m, _ = path_xy.shape
    if m < 2:
        raise ValueError(f"points_along: the path needs >= 2 points, got {tuple(path_xy.shape)}")
    d = distances_m.to(path_xy.dtype)
    d = d.expand(batch, -1) if d.ndim == 1 else d
    pos = d.clamp_min(0.0) / ROUTE_PATH_STEP_M  # (B, R) in path steps
    i = pos.floor().long().clamp(0, m - 2)
    frac = (pos - i.to(pos.dtype))[..., None]  # > 1 past the end: extrapolate
    a = path_xy.gather(1, i[..., None].expand(-1, -1, 2))
    b = path_xy.gather(1, (i + 1)[..., None].expand(-1, -1, 2))
    return a + frac * (b - a)

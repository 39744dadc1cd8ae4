"""High-level driving command (RIGHT / LEFT / STRAIGHT) from the route ahead.

One rule for every source, frame rate and the simulator (NeuroNCAP, consistent with the reference):
look ahead `max(v, 2 m/s) * 3 s` of arc length along the route, express that point in the ego frame,
and call a lateral offset > 2 m LEFT, < -2 m RIGHT, otherwise STRAIGHT. The horizon is defined in
seconds and metres, never in samples (the reference's 6-sample look-ahead is 0.6 s on 10 Hz data).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

LOOKAHEAD_S = 3.0
MIN_LOOKAHEAD_SPEED_MPS = 2.0
LATERAL_THRESHOLD_M = 2.0


class Command(IntEnum):
    """Command ids, identical to the reference's."""

    RIGHT = 0
    LEFT = 1
    STRAIGHT = 2


def point_along_polyline(polyline_xy: np.ndarray, distance_m: float) -> np.ndarray:
    """The point at arc length `distance_m` along `polyline_xy` (N, 2); clamps to the last point."""
    pts = np.asarray(polyline_xy, dtype=np.float64)
    if len(pts) == 1:
        return pts[0].copy()
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if distance_m >= cum[-1]:
        return pts[-1].copy()
    i = int(np.searchsorted(cum, distance_m, side="right") - 1)
    frac = (distance_m - cum[i]) / max(seg[i], 1e-12)
    return pts[i] + frac * (pts[i + 1] - pts[i])


def command_from_route(
    ego_xy: np.ndarray,
    ego_yaw_rad: float,
    speed_mps: float,
    route_xy: np.ndarray,
    lookahead_s: float = LOOKAHEAD_S,
    threshold_m: float = LATERAL_THRESHOLD_M,
) -> Command:
    """Command for an ego at `ego_xy` (2,) heading `ego_yaw_rad` given the route ahead.

    route_xy: (N, 2) world metres, the path the ego will follow, starting at (or near) the ego.
    The look-ahead distance is measured along the route from the route point closest to the ego.
    """
    route = np.asarray(route_xy, dtype=np.float64)
    if route.ndim != 2 or route.shape[1] != 2 or len(route) == 0:
        raise ValueError(f"route_xy must be (N>=1, 2), got {route.shape}")
    ego_xy = np.asarray(ego_xy, dtype=np.float64)
    start = int(np.argmin(np.linalg.norm(route - ego_xy, axis=1)))
    ahead = np.concatenate([ego_xy[None], route[start:]], axis=0)
    distance = max(float(speed_mps), MIN_LOOKAHEAD_SPEED_MPS) * lookahead_s
    target = point_along_polyline(ahead, distance) - ego_xy
    lateral = -np.sin(ego_yaw_rad) * target[0] + np.cos(ego_yaw_rad) * target[1]
    if lateral > threshold_m:
        return Command.LEFT
    if lateral < -threshold_m:
        return Command.RIGHT
    return Command.STRAIGHT

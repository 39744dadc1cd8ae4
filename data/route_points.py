"""Points of the route ahead at fixed distances along it, in the ego frame: what a planner is told
about where its route goes (CARLA's "target point", nuPlan's route), beyond the coarse command.

The same function serves training windows (the route is the path the logged ego drove from now on,
as for the command, data/command.py) and closed loop (the scenario's route from the ego onwards,
`contract.Observation.route_ahead_xy`), so both sides agree on what a route point is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def route_points_ahead(route_xy: np.ndarray, distances_m: Sequence[float]) -> np.ndarray:
    """(R, 2) float64 [m] the points at arc lengths `distances_m` (R,) along `route_xy`.

    route_xy: (N >= 1, 2) [m] the route in the ego frame (x forward, y left), in driving order,
    starting at (or next to) the ego; arc length counts from its first point. Beyond the route's end
    the points continue straight along its last segment (a route shorter than the look-ahead, e.g.
    at the end of a log, reads as the road going on, not as a stop); a single point or a route of
    zero length continues straight ahead along +x.
    """
    pts = np.asarray(route_xy, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0 or not np.isfinite(pts).all():
        raise ValueError(f"route_points_ahead: route_xy must be finite (N >= 1, 2), got shape {pts.shape}")
    d = np.asarray(distances_m, dtype=np.float64)
    if d.ndim != 1 or (d < 0).any():
        raise ValueError(f"route_points_ahead: distances_m must be >= 0, got {d.tolist()}")
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)  # (N-1,)
    keep = np.concatenate([[True], seg > 1e-9])
    pts, seg = pts[keep], seg[seg > 1e-9]
    if len(pts) == 1:
        return pts[0] + d[:, None] * np.array([1.0, 0.0])
    cum = np.concatenate([[0.0], np.cumsum(seg)])  # (N,)
    i = np.clip(np.searchsorted(cum, d, side="right") - 1, 0, len(seg) - 1)  # segment of each distance
    direction = (pts[i + 1] - pts[i]) / seg[i, None]  # (R, 2) unit
    return pts[i] + (d - cum[i])[:, None] * direction  # the last segment extends past the end


ROUTE_PATH_STEP_M = 1.0  # spacing of the route path a planner model reads [m] ...
ROUTE_PATH_LENGTH_M = 60.0  # ... and how far it reaches (beyond: extended along its last segment)


def route_path(route_xy: np.ndarray) -> np.ndarray:
    """(M, 2) float64 [m] the route resampled every ROUTE_PATH_STEP_M from 0 to ROUTE_PATH_LENGTH_M
    along it (M = 61): the fixed-size form of the route that training windows and closed-loop
    observations both hand the model (planner/action_model/route.py reads points off it)."""
    n = int(round(ROUTE_PATH_LENGTH_M / ROUTE_PATH_STEP_M)) + 1
    return route_points_ahead(route_xy, ROUTE_PATH_STEP_M * np.arange(n))

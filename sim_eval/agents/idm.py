"""Intelligent Driver Model (Treiber et al.) with nuPlan's default parameters, and the search for
what an agent must follow: the nearest objects on its path ahead and red-light stop lines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim_eval.world.polyline import Polyline
from sim_eval.world.route import Route


@dataclass(frozen=True)
class IDMParams:
    """IDM parameters (NUPLAN_IDM: nuPlan's defaults). max_decel_mps2 bounds the emergency braking
    IDM may ask for; lookahead_m is how far along its path an agent looks; lateral_margin_m widens
    the agent's path on each side when deciding whether an object is in the way."""

    max_desired_speed_mps: float
    min_gap_m: float
    headway_s: float
    max_accel_mps2: float
    comfortable_decel_mps2: float
    exponent: float
    max_decel_mps2: float
    lookahead_m: float
    lateral_margin_m: float

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not (np.isfinite(value) and value > 0) and name != "lateral_margin_m":
                raise ValueError(f"IDMParams.{name} must be finite and > 0, got {value}")
        if self.lateral_margin_m < 0:
            raise ValueError("IDMParams.lateral_margin_m must be >= 0")


NUPLAN_IDM = IDMParams(
    max_desired_speed_mps=10.0,
    min_gap_m=1.0,
    headway_s=1.5,
    max_accel_mps2=1.0,
    comfortable_decel_mps2=2.0,
    exponent=4.0,
    max_decel_mps2=8.0,
    lookahead_m=60.0,
    lateral_margin_m=0.3,
)
"""nuPlan's default IDM parameters: the traffic agents' model."""


def idm_acceleration(
    speed_mps: np.ndarray,
    desired_speed_mps: np.ndarray,
    gap_m: np.ndarray,
    leader_speed_mps: np.ndarray,
    params: IDMParams,
) -> np.ndarray:
    """IDM acceleration (m/s^2), broadcast over the inputs; gap_m = inf means a free road.
    a = a_max [1 - (v/v0)^delta - (s*/s)^2], s* = s0 + v T + v (v - v_lead) / (2 sqrt(a_max b)).
    The result is clipped to [-max_decel, a_max]."""
    v = np.asarray(speed_mps, dtype=np.float64)
    v0 = np.maximum(np.asarray(desired_speed_mps, dtype=np.float64), 1e-3)
    gap = np.maximum(np.asarray(gap_m, dtype=np.float64), 1e-2)
    dv = v - np.asarray(leader_speed_mps, dtype=np.float64)
    p = params
    s_star = p.min_gap_m + np.maximum(
        0.0, v * p.headway_s + v * dv / (2 * np.sqrt(p.max_accel_mps2 * p.comfortable_decel_mps2))
    )
    interaction = np.where(np.isinf(gap), 0.0, (s_star / np.where(np.isinf(gap), 1.0, gap)) ** 2)
    acc = p.max_accel_mps2 * (1.0 - (v / v0) ** p.exponent - interaction)
    return np.clip(acc, -p.max_decel_mps2, p.max_accel_mps2)


def anticipated_desired_speed(
    route: Route, s_front_m: float, cap_mps: float, decel_mps2: float, lookahead_m: float
) -> float:
    """Cruise speed that respects the route's speed limits ahead: the lowest
    sqrt(limit_j^2 + 2 b d_j) over route points j within lookahead of the agent's front, capped."""
    s, limits = route.path.s_m, route.speed_limits_mps
    lo = max(int(np.searchsorted(s, s_front_m, side="right")) - 1, 0)
    hi = int(np.searchsorted(s, s_front_m + lookahead_m, side="right"))
    ahead = np.maximum(s[lo:hi] - s_front_m, 0.0)
    if len(ahead) == 0:
        return float(min(cap_mps, limits[-1]))
    return float(min(cap_mps, np.sqrt(limits[lo:hi] ** 2 + 2 * decel_mps2 * ahead).min()))


def limit_braking(route: Route, s_front_m: float, speed_mps: float, lookahead_m: float) -> float:
    """Constant deceleration (m/s^2, <= 0) that brings the agent down to every lower speed limit
    within lookahead of its front exactly where that limit starts; +inf (no constraint) when no
    limit ahead is below the current speed. IDM alone
    lags behind a falling desired speed, so this term keeps agents at the limit on entry."""
    s, limits = route.path.s_m, route.speed_limits_mps
    lo = int(np.searchsorted(s, s_front_m, side="right"))
    hi = int(np.searchsorted(s, s_front_m + lookahead_m, side="right"))
    lower = limits[lo:hi] < speed_mps
    if not lower.any():
        return float("inf")
    dist = np.maximum(s[lo:hi][lower] - s_front_m, 0.1)
    return float(((limits[lo:hi][lower] ** 2 - speed_mps**2) / (2 * dist)).min())


def idm_acceleration_on_route(
    route: Route,
    s_front_m: float,
    speed_mps: float,
    cap_mps: float,
    gap_m: np.ndarray,
    leader_speed_mps: np.ndarray,
    params: IDMParams,
) -> float:
    """IDM acceleration (m/s^2) of an agent whose front is at s_front_m on `route`: towards the
    speed limits ahead (anticipated, at most cap_mps), behind the gaps (from stack_gaps), and capped
    by limit_braking so that it is down to a lower limit ahead where that limit starts."""
    p = params
    v0 = anticipated_desired_speed(route, s_front_m, cap_mps, p.comfortable_decel_mps2, p.lookahead_m)
    following = float(idm_acceleration(speed_mps, v0, gap_m, leader_speed_mps, p).min())
    return min(following, limit_braking(route, s_front_m, speed_mps, p.lookahead_m))


@dataclass(frozen=True)
class Leaders:
    """Objects an agent must follow: gap_m (K,) from the agent's front to each object along the path
    (negative: already overlapping) and its speed along the path leader_speed_mps (K,)."""

    gap_m: np.ndarray
    leader_speed_mps: np.ndarray


def find_path_leaders(
    path: Polyline,
    s_center_m: float,
    length_m: float,
    width_m: float,
    object_corners_xy: np.ndarray,
    object_velocity_xy: np.ndarray,
    params: IDMParams,
) -> Leaders:
    """Objects on the agent's path ahead. object_corners_xy: (K, 4, 2) footprints; object_velocity_xy:
    (K, 2) m/s. An object is on the path when the lateral span of its corners overlaps the agent's
    width (+ margin) and part of it lies between the agent's front and the lookahead."""
    if len(object_corners_xy) == 0:
        return Leaders(np.zeros(0), np.zeros(0))
    s_front = s_center_m + 0.5 * length_m
    window = (s_center_m, s_center_m + params.lookahead_m)
    k = len(object_corners_xy)
    proj = path.project(object_corners_xy.reshape(-1, 2), s_range_m=window)
    s_c = proj.s_m.reshape(k, 4)
    lat_c = proj.lateral_m.reshape(k, 4)
    half = 0.5 * width_m + params.lateral_margin_m
    on_path = (lat_c.min(1) <= half) & (lat_c.max(1) >= -half)
    ahead = (s_c.max(1) > s_front) & (s_c.min(1) < window[1])
    keep = on_path & ahead
    if not keep.any():
        return Leaders(np.zeros(0), np.zeros(0))
    gap = s_c.min(1)[keep] - s_front
    s_near = np.clip(s_c.min(1)[keep], 0.0, path.length_m)
    heading = path.heading_at(s_near)
    vel = object_velocity_xy[keep]
    along = vel[:, 0] * np.cos(heading) + vel[:, 1] * np.sin(heading)
    return Leaders(gap_m=gap, leader_speed_mps=along)


def stack_gaps(leaders: Leaders, stop_gaps_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gap_m, leader_speed_mps), both (1 + K + S,), for idm_acceleration: the free road (inf gap),
    the K leaders and the S stop lines (standing)."""
    gap_m = np.concatenate([[np.inf], leaders.gap_m, stop_gaps_m])
    leader_speed_mps = np.concatenate([[0.0], leaders.leader_speed_mps, np.zeros(len(stop_gaps_m))])
    return gap_m, leader_speed_mps


def red_light_gaps(
    route: Route, s_front_m: float, speed_mps: float, light_states: dict[int, str], params: IDMParams
) -> np.ndarray:
    """Gaps (m) from the agent's front to the stop lines it must stop at: red lights it can still
    stop for with max_decel, and yellow lights it can stop for comfortably."""
    gaps = []
    for stop in route.stops:
        gap = stop.s_m - s_front_m
        if gap < 0.0 or gap > params.lookahead_m:
            continue
        state = light_states.get(stop.light_id, "green")
        if state == "green":
            continue
        decel = params.max_decel_mps2 if state == "red" else params.comfortable_decel_mps2
        if gap >= speed_mps**2 / (2 * decel):
            gaps.append(gap)
    return np.asarray(gaps, dtype=np.float64)

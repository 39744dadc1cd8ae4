"""Multiplier: driving-direction compliance (nuPlan `driving_direction_compliance`)."""

from __future__ import annotations

import numpy as np

from sim_eval.metrics.episode_log import EpisodeLog
from sim_eval.metrics.map_query import MapQuery

COMPLIANCE_THRESHOLD_M = 2.0
VIOLATION_THRESHOLD_M = 6.0
TIME_HORIZON_S = 1.0


def progress_along_lane_direction_m(log: EpisodeLog, map_query: MapQuery) -> np.ndarray:
    """(T,) [m] per-step ego-centre displacement projected on the lane direction at the new position.

    Step 0 and steps outside any lane contribute 0 (as nuPlan: no lane, no driving direction).
    """
    center = log.ego_center_xyyaw[:, :2]
    progress = np.zeros(log.num_steps)
    if log.num_steps < 2:
        return progress
    heading = map_query.lane_heading_at(center[1:])
    displacement = np.diff(center, axis=0)
    along = displacement[:, 0] * np.cos(heading) + displacement[:, 1] * np.sin(heading)
    progress[1:] = np.where(np.isfinite(heading), along, 0.0)
    return progress


def max_wrong_way_progress_m(log: EpisodeLog, map_query: MapQuery, time_horizon_s: float = TIME_HORIZON_S) -> float:
    """Largest distance [m] driven against the lane direction within any `time_horizon_s` window.

    Window at step i sums the per-step progress over steps [i - n, i] with n = round(horizon / dt),
    matching nuPlan's indexing.
    """
    progress = progress_along_lane_direction_m(log, map_query)
    if log.num_steps < 2:
        return 0.0
    window = max(1, int(round(time_horizon_s / log.dt_s)))
    cumulative = np.concatenate([[0.0], np.cumsum(progress)])
    end = np.arange(1, log.num_steps + 1)
    start = np.maximum(0, end - 1 - window)
    windowed = cumulative[end] - cumulative[start]
    return float(max(0.0, -windowed.min()))


def driving_direction_compliance_score(
    wrong_way_m: float,
    compliance_threshold_m: float = COMPLIANCE_THRESHOLD_M,
    violation_threshold_m: float = VIOLATION_THRESHOLD_M,
) -> float:
    """1 if the worst 1 s wrong-way progress is < 2 m, 0.5 if < 6 m, else 0."""
    if wrong_way_m < compliance_threshold_m:
        return 1.0
    if wrong_way_m < violation_threshold_m:
        return 0.5
    return 0.0

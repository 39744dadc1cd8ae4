"""Weighted: speed-limit compliance (nuPlan `speed_limit_compliance`)."""

from __future__ import annotations

import numpy as np

from sim_eval.metrics.episode_log import EpisodeLog
from sim_eval.metrics.map_query import MapQuery

MAX_OVERSPEED_MPS = 2.23


def overspeed_mps(log: EpisodeLog, map_query: MapQuery) -> np.ndarray:
    """(T,) [m/s] ego speed above the limit of the lane at the ego centre; 0 where the limit is unknown."""
    limit = map_query.speed_limit_at(log.ego_center_xyyaw[:, :2])
    excess = np.abs(log.ego_speed_mps) - limit
    return np.where(np.isfinite(limit), np.maximum(excess, 0.0), 0.0)


def speed_limit_compliance_score(overspeed: np.ndarray, dt_s: float, duration_s: float,
                                 max_overspeed_mps: float = MAX_OVERSPEED_MPS) -> float:
    """max(0, 1 - sum(overspeed) * dt / (2.23 m/s * duration)); 1 for a zero-duration run.

    Rectangle rule over all samples, as nuPlan, so speeding by 2.23 m/s on the first half of the
    samples gives 0.5 and on all of them gives 0.
    """
    if duration_s <= 0:
        return 1.0
    violation = float(np.sum(overspeed)) * dt_s / (max(max_overspeed_mps, 1e-3) * duration_s)
    return max(0.0, 1.0 - violation)

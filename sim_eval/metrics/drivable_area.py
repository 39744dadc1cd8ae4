"""Multiplier: drivable-area compliance (nuPlan `drivable_area_compliance`)."""

from __future__ import annotations

import numpy as np

from sim_eval.metrics.episode_log import EpisodeLog
from sim_eval.metrics.map_query import MapQuery

MAX_OUTSIDE_DRIVABLE_M = 0.3


def max_distance_outside_drivable_m(log: EpisodeLog, map_query: MapQuery) -> float:
    """Largest distance [m] of any ego footprint corner outside the drivable area over the run."""
    corners = log.ego_corners_xy.reshape(-1, 2)
    return float(np.max(map_query.distance_outside_drivable(corners)))


def drivable_area_compliance_score(
    max_outside_m: float, max_outside_threshold_m: float = MAX_OUTSIDE_DRIVABLE_M
) -> float:
    """1 if no corner was ever more than 0.3 m outside the drivable area, else 0."""
    return float(max_outside_m <= max_outside_threshold_m)

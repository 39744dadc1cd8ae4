"""Ego progress along the expert route (weighted) and the making-progress multiplier (nuPlan)."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import LineString

from sim_eval.metrics.episode_log import EpisodeLog

SCORE_PROGRESS_THRESHOLD_M = 2.0
MIN_PROGRESS_RATIO = 0.2


def ego_progress_along_route_m(log: EpisodeLog) -> float:
    """Total progress [m] of the ego centre along `route_xy`: sum of per-step changes of its
    arc-length projection (negative when driving back)."""
    route = LineString(log.route_xy)
    arc_m = shapely.line_locate_point(route, shapely.points(log.ego_center_xyyaw[:, :2]))
    return float(np.sum(np.diff(arc_m)))


def ego_progress_score(
    ego_progress_m: float, expert_progress_m: float, threshold_m: float = SCORE_PROGRESS_THRESHOLD_M
) -> float:
    """0 if the ego moved back more than 2 m, else min(1, max(ego, 2) / max(expert, 2))."""
    if ego_progress_m < -threshold_m:
        return 0.0
    return float(min(1.0, max(ego_progress_m, threshold_m) / max(expert_progress_m, threshold_m)))


def making_progress_score(progress_ratio: float, min_ratio: float = MIN_PROGRESS_RATIO) -> float:
    """1 if the ego-to-expert progress ratio is at least 0.2, else 0."""
    return float(progress_ratio >= min_ratio)

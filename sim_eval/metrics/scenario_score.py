"""`ScenarioScore` and `score_episode`: the nuPlan closed-loop score (plus NeuroNCAP) of one run."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from sim_eval.metrics.at_fault_collisions import no_at_fault_collisions_score
from sim_eval.metrics.collisions import ego_in_multiple_lanes_or_off_road, find_collisions
from sim_eval.metrics.comfort import comfort_score, comfort_signals
from sim_eval.metrics.drivable_area import drivable_area_compliance_score, max_distance_outside_drivable_m
from sim_eval.metrics.driving_direction import driving_direction_compliance_score, max_wrong_way_progress_m
from sim_eval.metrics.episode_log import EpisodeLog
from sim_eval.metrics.map_query import MapQuery
from sim_eval.metrics.ncap import ncap_run_score
from sim_eval.metrics.progress import ego_progress_along_route_m, ego_progress_score, making_progress_score
from sim_eval.metrics.speed_limit import overspeed_mps, speed_limit_compliance_score
from sim_eval.metrics.time_to_collision import time_to_collision_s, ttc_within_bound_score

MULTIPLIER_NAMES = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "driving_direction_compliance",
    "making_progress",
)
WEIGHTS = {
    "ego_progress": 5.0,
    "time_to_collision_within_bound": 5.0,
    "speed_limit_compliance": 4.0,
    "comfort": 2.0,
}
SUBMETRIC_NAMES = MULTIPLIER_NAMES + tuple(WEIGHTS)


@dataclass(frozen=True)
class ScenarioScore:
    """Scores of one closed-loop run; every sub-score and `score` in [0, 1].

    score = prod(multipliers) * (5 ego_progress + 5 ttc + 4 speed_limit + 2 comfort) / 16, and 0
    for a failed planner run (failure_reason set; all sub-scores are then 0 too).
    Diagnostics: collided (any ego-agent contact), collision counts, min_ttc_s [s] (inf if
    never in conflict), progress [m], max_outside_drivable_m [m], max_wrong_way_m [m], duration_s.
    NeuroNCAP: ncap_score in [0, 5] and impact_speed_mps for NCAP runs, else None.
    """

    episode_id: str
    no_at_fault_collisions: float
    drivable_area_compliance: float
    driving_direction_compliance: float
    making_progress: float
    ego_progress: float
    time_to_collision_within_bound: float
    speed_limit_compliance: float
    comfort: float
    score: float
    collided: bool
    num_collisions: int
    num_at_fault_collisions: int
    min_ttc_s: float
    ego_progress_m: float
    expert_progress_m: float
    max_outside_drivable_m: float
    max_wrong_way_m: float
    duration_s: float
    scenario_type: str | None = None
    scenario_id: str | None = None
    ncap_score: float | None = None
    impact_speed_mps: float | None = None
    failure_reason: str | None = None

    def __post_init__(self) -> None:
        for name in SUBMETRIC_NAMES + ("score",):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):
                raise ValueError(f"ScenarioScore.{name}: must be in [0, 1], got {value}")
        if self.ncap_score is not None and not (0.0 <= self.ncap_score <= 5.0):
            raise ValueError(f"ScenarioScore.ncap_score: must be in [0, 5] or None, got {self.ncap_score}")
        if self.failure_reason is not None and self.score != 0.0:
            raise ValueError("ScenarioScore: a failed run must score 0")

    @property
    def submetrics(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in SUBMETRIC_NAMES}

    def to_dict(self) -> dict[str, object]:
        """Flat JSON-safe dict (non-finite floats become None)."""
        return {
            key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in asdict(self).items()
        }


def combine_scores(submetrics: dict[str, float]) -> float:
    """prod(multipliers) * weighted mean of the weighted sub-scores (weights 5, 5, 4, 2)."""
    multiplier = float(np.prod([submetrics[name] for name in MULTIPLIER_NAMES]))
    weighted = sum(weight * submetrics[name] for name, weight in WEIGHTS.items()) / sum(WEIGHTS.values())
    return multiplier * weighted


def score_episode(log: EpisodeLog, map_query: MapQuery) -> ScenarioScore:
    """Score one closed-loop run with the nuPlan closed-loop metrics (and NeuroNCAP if log.ncap)."""
    if log.num_steps < 2 and log.failure_reason is None:
        raise ValueError(f"score_episode: episode {log.episode_id!r} has {log.num_steps} step(s), need >= 2")
    collisions = find_collisions(log, map_query)
    lateral_context = ego_in_multiple_lanes_or_off_road(log, map_query)
    ttc = time_to_collision_s(log, collisions, lateral_context)
    outside_m = max_distance_outside_drivable_m(log, map_query)
    wrong_way_m = max_wrong_way_progress_m(log, map_query)
    ego_progress_m = ego_progress_along_route_m(log)
    progress_ratio = ego_progress_score(ego_progress_m, log.expert_progress_m)
    submetrics = {
        "no_at_fault_collisions": no_at_fault_collisions_score(collisions),
        "drivable_area_compliance": drivable_area_compliance_score(outside_m),
        "driving_direction_compliance": driving_direction_compliance_score(wrong_way_m),
        "making_progress": making_progress_score(progress_ratio),
        "ego_progress": progress_ratio,
        "time_to_collision_within_bound": ttc_within_bound_score(ttc),
        "speed_limit_compliance": speed_limit_compliance_score(
            overspeed_mps(log, map_query), log.dt_s, log.duration_s
        ),
        "comfort": comfort_score(comfort_signals(log)),
    }
    score = combine_scores(submetrics)
    if log.failure_reason is not None:
        submetrics = {name: 0.0 for name in submetrics}
        score = 0.0
    ncap = ncap_run_score(log) if log.ncap is not None else None
    return ScenarioScore(
        episode_id=log.episode_id,
        **submetrics,
        score=float(score),
        collided=bool(collisions),
        num_collisions=len(collisions),
        num_at_fault_collisions=sum(event.at_fault for event in collisions),
        min_ttc_s=float(ttc.min()),
        ego_progress_m=ego_progress_m,
        expert_progress_m=log.expert_progress_m,
        max_outside_drivable_m=outside_m,
        max_wrong_way_m=wrong_way_m,
        duration_s=log.duration_s,
        scenario_type=log.ncap.scenario_type if log.ncap is not None else None,
        scenario_id=log.ncap.scenario_id if log.ncap is not None else None,
        ncap_score=ncap.score if ncap is not None else None,
        impact_speed_mps=ncap.impact_speed_mps if ncap is not None else None,
        failure_reason=log.failure_reason,
    )

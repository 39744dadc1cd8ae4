"""Suite aggregation: the JSON written by `foresight eval closed_loop`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from sim_eval.metrics.ncap import hierarchical_mean
from sim_eval.metrics.scenario_score import SUBMETRIC_NAMES, ScenarioScore


@dataclass(frozen=True)
class SuiteMetrics:
    """A suite's summary.

    score: mean scenario score (0-1); ncap_score: 0-5, NeuroNCAP aggregation over the runs that
    carry one (per scenario, per type, then over types; None when no run does); collision_rate: 0-1,
    share of runs with any ego-agent contact (aggregated like ncap_score when every run is an NCAP
    run); submetrics: mean of each sub-score, plus failure_rate and, for NCAP runs,
    "ncap_score/<type>" and "collision_rate/<type>"; episodes: one row per run
    (`ScenarioScore.to_dict`, plus whatever the evaluation adds).
    """

    score: float
    ncap_score: float | None
    collision_rate: float
    submetrics: dict[str, float]
    episodes: list[dict[str, Any]]

    @property
    def failure_rate(self) -> float:
        return self.submetrics["failure_rate"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def aggregate(scores: Sequence[ScenarioScore]) -> SuiteMetrics:
    """The SuiteMetrics of a suite's runs."""
    if not scores:
        raise ValueError("aggregate: no scenario scores")
    submetrics: dict[str, float] = {
        name: float(np.mean([getattr(row, name) for row in scores])) for name in SUBMETRIC_NAMES
    }
    submetrics["failure_rate"] = float(np.mean([row.failure_reason is not None for row in scores]))
    ncap_rows = [row for row in scores if row.ncap_score is not None]
    ncap_score = None
    collision_rate = float(np.mean([row.collided for row in scores]))
    if ncap_rows:
        types = [row.scenario_type for row in ncap_rows]
        ids = [row.scenario_id for row in ncap_rows]
        ncap = hierarchical_mean(types, ids, [row.ncap_score for row in ncap_rows])
        collisions = hierarchical_mean(types, ids, [float(row.collided) for row in ncap_rows])
        ncap_score = ncap.overall
        if len(ncap_rows) == len(scores):
            collision_rate = collisions.overall
        for scenario_type in ncap.per_type:
            submetrics[f"ncap_score/{scenario_type}"] = ncap.per_type[scenario_type]
            submetrics[f"collision_rate/{scenario_type}"] = collisions.per_type[scenario_type]
    return SuiteMetrics(
        score=float(np.mean([row.score for row in scores])),
        ncap_score=ncap_score,
        collision_rate=collision_rate,
        submetrics=submetrics,
        episodes=[row.to_dict() for row in scores],
    )

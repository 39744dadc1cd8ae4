"""NeuroNCAP safety score per run and its per-scenario / per-type aggregation."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sim_eval.metrics.collisions import first_contact_steps
from sim_eval.metrics.episode_log import EpisodeLog

NO_COLLISION_SCORE = 5.0
COLLISION_SCALE = 4.0


@dataclass(frozen=True)
class NcapRunResult:
    """collided: any ego-agent contact; impact_speed_mps [m/s] at the first contact (None if none);
    score in [0, 5]."""

    collided: bool
    impact_speed_mps: float | None
    score: float


def ncap_run_score(log: EpisodeLog) -> NcapRunResult:
    """5 without a collision, else 4 * max(0, 1 - v_impact / v_ref).

    v_impact = |v_ego - v_agent| (world-frame velocity vectors) at the first step with any contact;
    if several agents are hit at that step the largest relative speed counts. v_ref comes from
    log.ncap. A failed planner run scores 0.
    """
    if log.ncap is None:
        raise ValueError(f"ncap_run_score: episode {log.episode_id!r} has no NcapInfo (log.ncap is None)")
    steps = first_contact_steps(log)
    hit = steps >= 0
    impact_speed = None
    if hit.any():
        first = int(steps[hit].min())
        agents = np.flatnonzero(steps == first)
        relative = log.ego_velocity_xy[first][None, :] - log.agent_velocity_xy[first, agents]
        impact_speed = float(np.linalg.norm(relative, axis=-1).max())
    if log.failure_reason is not None:
        score = 0.0
    elif impact_speed is None:
        score = NO_COLLISION_SCORE
    else:
        score = COLLISION_SCALE * max(0.0, 1.0 - impact_speed / log.ncap.v_ref_mps)
    return NcapRunResult(collided=bool(hit.any()), impact_speed_mps=impact_speed, score=float(score))


@dataclass(frozen=True)
class HierarchicalMean:
    """overall: mean over types of (mean over scenarios of (mean over runs)); per_type: type -> mean."""

    overall: float
    per_type: dict[str, float]


def hierarchical_mean(
    scenario_types: Sequence[str], scenario_ids: Sequence[str], values: Sequence[float]
) -> HierarchicalMean:
    """Average runs per scenario, scenarios per type, then types (NeuroNCAP aggregation)."""
    if not (len(scenario_types) == len(scenario_ids) == len(values)) or not values:
        raise ValueError(
            "hierarchical_mean: need equal, non-zero lengths, got "
            f"{len(scenario_types)}, {len(scenario_ids)}, {len(values)}"
        )
    runs: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for scenario_type, scenario_id, value in zip(scenario_types, scenario_ids, values):
        runs[scenario_type][scenario_id].append(float(value))
    per_type = {
        scenario_type: float(np.mean([np.mean(run_values) for run_values in scenarios.values()]))
        for scenario_type, scenarios in sorted(runs.items())
    }
    return HierarchicalMean(overall=float(np.mean(list(per_type.values()))), per_type=per_type)

"""Constant-velocity baseline: keeps the current speed straight ahead and never brakes (the
NeuroNCAP no-reaction reference: the NCAP safety score is normalised by `v_ref`, the impact speed
of an ego that does not react). Reversing is not modelled: a negative speed is treated as standing
still. Its settings are `baselines.constant_velocity` (configs/baselines/).
"""

from __future__ import annotations

import numpy as np

from contract import EpisodeInfo, Observation, Plan, Planner


class ConstantVelocityPlanner(Planner):
    """Waypoints (K, 3) [m, m, rad] every `plan_dt_s` [s] straight ahead at the current speed."""

    name = "constant_velocity"
    privileged = False
    uses_camera = False  # it never looks at the camera: the runner renders none for it

    def __init__(self, num_waypoints: int, plan_dt_s: float) -> None:
        if num_waypoints < 1:
            raise ValueError(f"ConstantVelocityPlanner.num_waypoints must be >= 1, got {num_waypoints}")
        if not plan_dt_s > 0:
            raise ValueError(f"ConstantVelocityPlanner.plan_dt_s must be > 0, got {plan_dt_s}")
        self._num_waypoints, self._plan_dt_s = int(num_waypoints), float(plan_dt_s)

    @property
    def num_waypoints(self) -> int:
        return self._num_waypoints

    @property
    def plan_dt_s(self) -> float:
        return self._plan_dt_s

    def reset(self, episode: EpisodeInfo) -> None:
        """Stateless: nothing to forget."""

    def plan(self, observation: Observation) -> Plan:
        times = self._plan_dt_s * np.arange(1, self._num_waypoints + 1)
        x = max(observation.speed_mps, 0.0) * times
        return Plan(waypoints=np.stack([x, np.zeros_like(times), np.zeros_like(times)], axis=1), dt_s=self._plan_dt_s)

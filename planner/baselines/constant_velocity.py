"""Constant-velocity baseline: keeps the current speed straight ahead and never brakes (the
NeuroNCAP no-reaction reference: the NCAP safety score is normalised by `v_ref`, the impact speed
of an ego that does not react). Reversing is not modelled: a negative speed is treated as standing
still. Its settings are `baselines.constant_velocity` (configs/baselines/).
"""

from __future__ import annotations

import numpy as np

from contract import EpisodeInfo, FixedHorizonPlanner, Observation, Plan


class ConstantVelocityPlanner(FixedHorizonPlanner):
    """Waypoints (K, 3) [m, m, rad] every `plan_dt_s` [s] straight ahead at the current speed."""

    name = "constant_velocity"
    privileged = False
    uses_camera = False  # it never looks at the camera: the runner renders none for it

    def reset(self, episode: EpisodeInfo) -> None:
        """Stateless: nothing to forget."""

    def plan(self, observation: Observation) -> Plan:
        times = self.plan_dt_s * np.arange(1, self.num_waypoints + 1)
        x = max(observation.speed_mps, 0.0) * times
        return Plan(waypoints=np.stack([x, np.zeros_like(times), np.zeros_like(times)], axis=1), dt_s=self.plan_dt_s)

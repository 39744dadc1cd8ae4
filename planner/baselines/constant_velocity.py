"""Constant-velocity baseline: keeps the current speed and never brakes (the NeuroNCAP no-reaction reference).

Default: straight ahead at the current speed, the reference the NCAP safety score is normalised by
(`v_ref`: the impact speed of an ego that does not react). With `follow_yaw_rate=True` it also keeps
the current yaw rate (a constant-turn-rate arc), which keeps a car on a curve but is no longer the
NCAP reference. Reversing is not modelled: a negative speed is treated as standing still.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from planner.contract import Observation, Plan, Planner

# Below this yaw rate [rad/s] the arc formula is replaced by its straight-line limit (no 0/0).
_STRAIGHT_YAW_RATE_RPS = 1e-6


class ConstantVelocityPlanner(Planner):
    """Waypoints (K, 3) [m, m, rad] at `dt_s` continuing the current speed (and optionally yaw rate)."""

    privileged = False

    def __init__(self, num_waypoints: int = 8, dt_s: float = 0.5, follow_yaw_rate: bool = False) -> None:
        if num_waypoints < 1:
            raise ValueError(f"ConstantVelocityPlanner.num_waypoints must be >= 1, got {num_waypoints}")
        if not dt_s > 0:
            raise ValueError(f"ConstantVelocityPlanner.dt_s must be > 0, got {dt_s}")
        self.num_waypoints = num_waypoints
        self.dt_s = dt_s
        self.follow_yaw_rate = follow_yaw_rate
        self.name = "constant_velocity_turn" if follow_yaw_rate else "constant_velocity"

    def reset(self, episode_info: dict[str, Any]) -> None:
        """Stateless: nothing to forget."""

    def plan(self, observation: Observation) -> Plan:
        speed = max(observation.speed_mps, 0.0)
        yaw_rate = observation.yaw_rate_rps if self.follow_yaw_rate else 0.0
        times = self.dt_s * np.arange(1, self.num_waypoints + 1)
        yaw = yaw_rate * times
        if abs(yaw_rate) < _STRAIGHT_YAW_RATE_RPS:
            x, y = speed * times, np.zeros_like(times)
        else:
            radius = speed / yaw_rate  # signed: left turns positive
            x, y = radius * np.sin(yaw), radius * (1.0 - np.cos(yaw))
        return Plan(waypoints=np.stack([x, y, yaw], axis=1), dt_s=self.dt_s)

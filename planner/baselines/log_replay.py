"""Log replay: drives the recorded ego trajectory regardless of what happens (non-reactive).

For simulated episodes the "log" is the privileged expert's recorded run of the same scenario
(`sim_eval.runner.expert_run`), so log replay is the upper bound of a planner that only imitates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from planner.contract import Observation, Plan, Planner, world_to_ego


class LogReplayPlanner(Planner):
    """Waypoints (K, 3) from the recorded run at `dt_s`, in the current ego frame."""

    name = "log_replay"
    privileged = True
    uses_camera = False

    def __init__(self, num_waypoints: int = 6, dt_s: float = 0.5) -> None:
        self.num_waypoints, self.dt_s = num_waypoints, dt_s
        self._times: np.ndarray | None = None
        self._poses: np.ndarray | None = None

    def reset(self, episode_info: dict[str, Any]) -> None:
        from sim_eval.runner import expert_run

        scenario = episode_info["scenario"]
        self._times, poses, _ = expert_run(scenario.suite, scenario.index, scenario.seed)
        self._poses = np.c_[poses[:, :2], np.unwrap(poses[:, 2])]

    def plan(self, observation: Observation) -> Plan:
        if self._times is None:
            raise RuntimeError("log replay needs reset() with the episode's scenario first")
        t = observation.time_s + self.dt_s * np.arange(1, self.num_waypoints + 1)
        future = np.stack([np.interp(t, self._times, self._poses[:, i]) for i in range(3)], axis=1)
        # Past the end of the log, continue at the log's final velocity (never a sudden stop).
        late = t > self._times[-1]
        if late.any():
            velocity = (self._poses[-1] - self._poses[-2]) / (self._times[-1] - self._times[-2])
            future[late] = self._poses[-1] + (t[late] - self._times[-1])[:, None] * velocity
        ego = observation.privileged["ego"]
        return Plan(waypoints=world_to_ego(future, np.array([ego.x_m, ego.y_m, ego.yaw_rad])), dt_s=self.dt_s)

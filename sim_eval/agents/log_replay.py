"""Log replay: drives the recorded ego trajectory regardless of what happens (non-reactive).

For simulated episodes the "log" is the privileged expert's recorded run of the same scenario
(`sim_eval.runner.expert_run`), so log replay is the upper bound of a planner that only imitates.
Its settings are `baselines.log_replay` (configs/baselines/).
"""

from __future__ import annotations

import numpy as np

from contract import EpisodeInfo, FixedHorizonPlanner, Observation, Plan, world_to_ego
from sim_eval.runner import expert_run


class LogReplayPlanner(FixedHorizonPlanner):
    """Waypoints (K, 3) from the recorded run every `plan_dt_s` [s], in the current ego frame."""

    name = "log_replay"
    privileged = True
    uses_camera = False

    def __init__(self, num_waypoints: int, plan_dt_s: float) -> None:
        super().__init__(num_waypoints, plan_dt_s)
        self._times: np.ndarray | None = None
        self._poses: np.ndarray | None = None

    def reset(self, episode: EpisodeInfo) -> None:
        scenario = episode.scenario
        if scenario is None:
            raise RuntimeError("log replay is privileged: reset needs EpisodeInfo.scenario")
        run = expert_run(scenario.suite, scenario.index, scenario.seed)
        self._times = run.time_s
        self._poses = np.c_[run.poses_xyyaw[:, :2], np.unwrap(run.poses_xyyaw[:, 2])]

    def plan(self, observation: Observation) -> Plan:
        if self._times is None or observation.privileged is None:
            raise RuntimeError("log replay needs reset() with the episode's scenario first, and privileged observations")
        t = observation.time_s + self.plan_dt_s * np.arange(1, self.num_waypoints + 1)
        future = np.stack([np.interp(t, self._times, self._poses[:, i]) for i in range(3)], axis=1)
        # Past the end of the log, continue at the log's final velocity (never a sudden stop).
        late = t > self._times[-1]
        if late.any():
            velocity = (self._poses[-1] - self._poses[-2]) / (self._times[-1] - self._times[-2])
            future[late] = self._poses[-1] + (t[late] - self._times[-1])[:, None] * velocity
        return Plan(waypoints=world_to_ego(future, observation.privileged.ego_pose_xyyaw), dt_s=self.plan_dt_s)

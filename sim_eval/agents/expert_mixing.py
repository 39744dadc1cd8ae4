"""DAgger's rollout policy: a learned planner and the privileged expert sharing the wheel.

At every plan, with probability `beta` the expert's plan is executed, otherwise the learner's
(pi_i = beta_i * expert + (1 - beta_i) * learner, Ross et al. 2011). The learner never sees
privileged state: it is reset without the scenario and plans from the observation with
`privileged` removed. The coin flips come from a generator seeded per episode, so a rollout is
reproducible.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from contract import EpisodeInfo, Observation, Plan, Planner
from sim_eval.agents.expert import ExpertConfig, ExpertPlanner


def expert_for(planner: Planner, config: ExpertConfig | None = None) -> ExpertPlanner:
    """The expert (configs/baselines `expert`) planning `planner`'s waypoints: the same count K and
    spacing plan_dt_s, so its plans are valid for the planner's runs and comparable to its plans."""
    base = config if config is not None else ExpertConfig.default()
    return ExpertPlanner(dataclasses.replace(base, num_waypoints=int(planner.num_waypoints), plan_dt_s=float(planner.plan_dt_s)))


class ExpertMixingPlanner(Planner):
    """The learner drives, except at plans where a coin with P(expert) = beta lets the expert drive.

    learner: the learned planner (not privileged); beta in [0, 1]; seed: the coin's seed, per episode
    (reset reseeds it). expert_plans / learner_plans count who drove in the current episode."""

    name = "expert_mixing"
    privileged = True  # the expert inside needs the scenario; the learner never gets it
    predicts_frames = False
    batched = False

    def __init__(self, learner: Planner, beta: float, seed: int, expert: ExpertPlanner | None = None) -> None:
        if learner.privileged:
            raise ValueError(f"the learner {learner.name!r} is privileged; DAgger trains planners that see the camera and ego state only")
        if not 0.0 <= float(beta) <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        self.learner, self.beta, self.seed = learner, float(beta), int(seed)
        self.expert = expert if expert is not None else expert_for(learner)
        if (self.expert.num_waypoints, self.expert.plan_dt_s) != (learner.num_waypoints, learner.plan_dt_s):
            raise ValueError("the expert must plan the learner's waypoints (expert_for)")
        self.rng = np.random.default_rng(self.seed)
        self.expert_plans = self.learner_plans = 0

    @property
    def uses_camera(self) -> bool:  # type: ignore[override]
        return self.learner.uses_camera

    @property
    def camera_hw(self) -> tuple[int, int] | None:  # type: ignore[override]
        return self.learner.camera_hw

    @property
    def num_waypoints(self) -> int:
        return self.learner.num_waypoints

    @property
    def plan_dt_s(self) -> float:
        return self.learner.plan_dt_s

    def reset(self, episode: EpisodeInfo) -> None:
        self.expert.reset(episode)
        self.learner.reset(EpisodeInfo(episode.episode_id))  # no scenario for the learner
        self.rng = np.random.default_rng(self.seed)
        self.expert_plans = self.learner_plans = 0

    def plan(self, observation: Observation) -> Plan:
        if self.rng.random() < self.beta:
            self.expert_plans += 1
            return self.expert.plan(observation)
        self.learner_plans += 1
        return self.learner.plan(dataclasses.replace(observation, privileged=None))

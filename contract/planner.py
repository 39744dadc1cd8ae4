"""The `Planner` interface: what every driving policy implements and declares.

The runner calls `reset` once per episode, then `plan` at the planning rate. What a planner can do
is declared, never probed: the class attributes below and the `num_waypoints` / `plan_dt_s`
properties are read by the closed-loop runner, the evaluation and the server.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from contract.observation import EpisodeInfo, Observation
from contract.plan import Plan


class Planner(abc.ABC):
    """A driving policy.

    Capabilities (class attributes):
      name:            registry and report name.
      privileged:      reads `Observation.privileged` and `EpisodeInfo.scenario` (ground truth); such
                       planners are baselines, reported apart.
      uses_camera:     needs `Observation.frames_rgb` (False: the runner renders no camera for it and
                       passes a 1x1 black frame).
      predicts_frames: can show its world model's prediction of the next camera frame
                       (`enable_frame_prediction`, then `predicted_frame` after every plan).
      batched:         `plan_batch` serves several episodes with one model call (otherwise it asks
                       each episode's planner in turn).
      camera_hw:       (height, width) [px] of the frames it was trained on (None: any size); the
                       runner renders that size unless told otherwise, so frames are never rescaled.
    Per instance (abstract properties): `num_waypoints` K of every plan it returns, `plan_dt_s` [s]
    the spacing of their waypoints; a plan with another K or spacing fails the run.
    """

    name: ClassVar[str] = "planner"
    privileged: ClassVar[bool] = False
    uses_camera: ClassVar[bool] = True
    predicts_frames: ClassVar[bool] = False
    batched: ClassVar[bool] = False
    camera_hw: tuple[int, int] | None = None

    @property
    @abc.abstractmethod
    def num_waypoints(self) -> int:
        """K, the waypoints of every plan."""

    @property
    @abc.abstractmethod
    def plan_dt_s(self) -> float:
        """[s] spacing of the waypoints of every plan."""

    @abc.abstractmethod
    def reset(self, episode: EpisodeInfo) -> None:
        """Forget the previous episode."""

    @abc.abstractmethod
    def plan(self, observation: Observation) -> Plan:
        """Waypoints for the ego from this observation."""

    @classmethod
    def plan_batch(cls, planners: Sequence["Planner"], observations: Sequence[Observation]) -> list[Plan]:
        """One plan per episode at the same planning tick: `planners[i]` (one instance per episode,
        holding that episode's state) plans from `observations[i]`. This default asks each in turn;
        classes with `batched = True` answer all with one model call."""
        if len(planners) != len(observations):
            raise ValueError(f"plan_batch: {len(planners)} planners for {len(observations)} observations")
        return [planner.plan(observation) for planner, observation in zip(planners, observations)]

    def replica(self) -> "Planner":
        """A planner for another episode that runs alongside this one (batched closed loop): the
        same settings and model, its own per-episode state. This default deep-copies the planner;
        planners holding a model override it to share the weights."""
        return copy.deepcopy(self)

    def enable_frame_prediction(self) -> None:
        """From now on, every `plan` also predicts the next camera frame (`predicted_frame`). Only
        planners that declare `predicts_frames` can."""
        raise NotImplementedError(f"planner {self.name!r} does not predict frames (predicts_frames is False)")

    @property
    def predicted_frame(self) -> np.ndarray | None:
        """(H, W, 3) uint8 the latest predicted next frame, or None (none yet, or prediction is off)."""
        return None


class FixedHorizonPlanner(Planner):
    """A planner whose plans have `num_waypoints` waypoints every `plan_dt_s` [s], fixed when it is
    built (the baselines)."""

    def __init__(self, num_waypoints: int, plan_dt_s: float) -> None:
        if not isinstance(num_waypoints, (int, np.integer)) or num_waypoints < 1:
            raise ValueError(f"{type(self).__name__}.num_waypoints must be an int >= 1, got {num_waypoints!r}")
        if not plan_dt_s > 0:
            raise ValueError(f"{type(self).__name__}.plan_dt_s must be > 0, got {plan_dt_s!r}")
        self._num_waypoints, self._plan_dt_s = int(num_waypoints), float(plan_dt_s)

    @property
    def num_waypoints(self) -> int:
        return self._num_waypoints

    @property
    def plan_dt_s(self) -> float:
        return self._plan_dt_s

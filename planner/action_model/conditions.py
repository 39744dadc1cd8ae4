"""What the action tokens are conditioned on besides video: the command and the ego status.

Built from a training batch (`planner.batch.PlannerBatch`) or from a closed-loop Observation, with
one feature definition for both (`planner.action_model.ego_status`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from contract import Observation
from data.route_points import route_path
from planner.action_model.anchor import kinematic_anchor, route_anchor
from planner.action_model.config import NUM_COMMANDS, ActionModelConfig
from planner.action_model.ego_status import ego_status_features

if TYPE_CHECKING:
    from planner.batch import PlannerBatch


@dataclass(frozen=True)
class ActionConditions:
    """command: (B,) int64 in {RIGHT 0, LEFT 1, STRAIGHT 2}; ego_status: (B, F) float32 normalised
    features (`ego_status_features`) or None when the model does not use them; anchor: (B, K, 3)
    [m, m, rad] kinematic extrapolation the waypoints are offsets from (ActionModelConfig.anchor),
    or None."""

    command: torch.Tensor
    ego_status: torch.Tensor | None = None
    anchor: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.command.ndim != 1 or self.command.dtype != torch.int64:
            raise ValueError(f"ActionConditions.command must be (B,) int64, got {tuple(self.command.shape)} {self.command.dtype}")
        if self.command.numel() and (self.command.min() < 0 or self.command.max() >= NUM_COMMANDS):
            raise ValueError(f"ActionConditions.command values must be in [0, {NUM_COMMANDS}), got {self.command.tolist()}")
        if self.ego_status is not None and (self.ego_status.ndim != 2 or self.ego_status.shape[0] != self.command.shape[0]):
            raise ValueError(f"ActionConditions.ego_status must be (B, F) with B = {self.command.shape[0]}, got {tuple(self.ego_status.shape)}")
        if self.anchor is not None and (self.anchor.ndim != 3 or self.anchor.shape[0] != self.command.shape[0] or self.anchor.shape[2] != 3):
            raise ValueError(f"ActionConditions.anchor must be (B, K, 3) with B = {self.command.shape[0]}, got {tuple(self.anchor.shape)}")

    @property
    def batch_size(self) -> int:
        return int(self.command.shape[0])

    @staticmethod
    def cat(parts: "Sequence[ActionConditions]") -> "ActionConditions":
        """The conditions of several batches as one batch, in order."""
        def joined(name: str) -> torch.Tensor | None:
            values = [getattr(p, name) for p in parts]
            return None if values[0] is None else torch.cat(values)

        return ActionConditions(torch.cat([p.command for p in parts]), joined("ego_status"), joined("anchor"))

    def to(self, device: torch.device | str) -> "ActionConditions":
        return ActionConditions(
            self.command.to(device),
            None if self.ego_status is None else self.ego_status.to(device),
            None if self.anchor is None else self.anchor.to(device),
        )


def _anchor(speed: torch.Tensor, accel: torch.Tensor, yaw_rate: torch.Tensor, config: ActionModelConfig,
            route: torch.Tensor | None = None) -> torch.Tensor | None:
    if config.anchor == "none":
        return None
    if config.anchor == "route":
        if route is None:
            raise ValueError("anchor='route' needs the route path (B, M, 2)")
        return route_anchor(speed, route, config.num_waypoints, config.waypoint_dt_s)
    if config.anchor in ("straight", "constant_speed"):
        yaw_rate = torch.zeros_like(yaw_rate)
    if config.anchor == "constant_speed":
        accel = torch.zeros_like(accel)
    return kinematic_anchor(speed, accel, yaw_rate, config.num_waypoints, config.waypoint_dt_s)


def conditions_from_batch(batch: "PlannerBatch", config: ActionModelConfig) -> ActionConditions:
    """Conditions of a batch of planner windows: its command and, when the model uses ego status,
    the current speed / acceleration / yaw rate and the past poses at batch.frame_times_s."""
    command = batch.command.long()
    if config.ego_status == "off":
        return ActionConditions(command)
    speed, accel, yaw_rate = batch.speed_mps, batch.accel_mps2, batch.yaw_rate_rps
    ego = ego_status_features(speed, accel, yaw_rate, batch.frame_times_s, batch.past_poses, config, batch.route_path)
    anchor = _anchor(speed, accel, yaw_rate, config, batch.route_path)
    return ActionConditions(command, ego.to(command.device), None if anchor is None else anchor.to(command.device))


def _route_path(observation: Observation, config: ActionModelConfig) -> torch.Tensor | None:
    """(1, M, 2) float64 the observation's route ahead, resampled (None when the model reads no route)."""
    if not config.uses_route:
        return None
    if observation.route_ahead_xy is None:
        raise ValueError(f"this planner reads the route ahead (route_points_m={list(config.route_points_m)}, anchor={config.anchor!r}) "
                         f"but the observation has no route_ahead_xy (a source that gives only the command; `foresight serve`: send "
                         f"route_ahead, or route_if_missing=straight to assume the road goes straight on)")
    return torch.from_numpy(route_path(observation.route_ahead_xy))[None]


def conditions_from_observation(observation: Observation, config: ActionModelConfig) -> ActionConditions:
    """Conditions (batch of 1) from a closed-loop observation."""
    command = torch.tensor([int(observation.command)], dtype=torch.int64)
    if config.ego_status == "off":
        return ActionConditions(command)
    times = np.asarray(observation.ego_history_timestamps_s) - observation.time_s
    speed = torch.tensor([observation.speed_mps], dtype=torch.float64)
    accel = torch.tensor([observation.accel_mps2], dtype=torch.float64)
    yaw_rate = torch.tensor([observation.yaw_rate_rps], dtype=torch.float64)
    route = _route_path(observation, config)
    ego = ego_status_features(
        speed, accel, yaw_rate, torch.tensor(times, dtype=torch.float64)[None],
        torch.tensor(np.asarray(observation.ego_history_xyyaw), dtype=torch.float64)[None], config,
        route,
    )  # fmt: skip
    return ActionConditions(command, ego, _anchor(speed, accel, yaw_rate, config, route))

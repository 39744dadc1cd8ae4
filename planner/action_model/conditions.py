"""What the action tokens are conditioned on besides video: the command and the ego status.

Built from a training batch (the ClipWindowDataset keys) or from a closed-loop Observation, with one
feature definition for both (`planner.action_model.ego_status`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from planner.action_model.anchor import kinematic_anchor
from planner.action_model.config import NUM_COMMANDS, ActionModelConfig
from planner.action_model.ego_status import ego_status_features
from planner.contract import Observation


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

    def to(self, device: torch.device | str) -> "ActionConditions":
        return ActionConditions(
            self.command.to(device),
            None if self.ego_status is None else self.ego_status.to(device),
            None if self.anchor is None else self.anchor.to(device),
        )


def _anchor(speed: torch.Tensor, accel: torch.Tensor, yaw_rate: torch.Tensor, config: ActionModelConfig) -> torch.Tensor | None:
    if config.anchor == "none":
        return None
    if config.anchor == "straight":
        yaw_rate = torch.zeros_like(yaw_rate)
    return kinematic_anchor(speed, accel, yaw_rate, config.num_waypoints, config.waypoint_dt_s)


def _current(value: torch.Tensor, name: str) -> torch.Tensor:
    """(B,) current value from a (B,) tensor or a (B, T) series whose last entry is now."""
    if value.ndim == 2:
        return value[:, -1]
    if value.ndim == 1:
        return value
    raise ValueError(f"batch[{name!r}] must be (B,) or (B, T), got {tuple(value.shape)}")


def conditions_from_batch(batch: Mapping[str, Any], config: ActionModelConfig) -> ActionConditions:
    """Conditions from a batch with "command" (B,) and, when the model uses ego status, "speed_mps",
    "accel_mps2", "yaw_rate_rps" ((B,) or (B, T), last = now), "past_poses" (B, T, 3) in the current
    ego frame at "frame_times_s" (B, T) [s] relative to now (as ClipWindowDataset yields)."""
    if "command" not in batch:
        raise KeyError("action-model batch has no 'command' entry")
    command = torch.as_tensor(batch["command"]).long()
    if config.ego_status == "off":
        return ActionConditions(command)
    missing = [k for k in ("speed_mps", "accel_mps2", "yaw_rate_rps", "past_poses", "frame_times_s") if k not in batch]
    if missing:
        raise KeyError(f"action-model batch lacks ego-status entries {missing} (ego_status={config.ego_status!r})")
    speed, accel = _current(batch["speed_mps"], "speed_mps"), _current(batch["accel_mps2"], "accel_mps2")
    yaw_rate = _current(batch["yaw_rate_rps"], "yaw_rate_rps")
    ego = ego_status_features(speed, accel, yaw_rate, batch["frame_times_s"], batch["past_poses"], config)
    anchor = _anchor(speed, accel, yaw_rate, config)
    return ActionConditions(command, ego.to(command.device), None if anchor is None else anchor.to(command.device))


def conditions_from_observation(observation: Observation, config: ActionModelConfig) -> ActionConditions:
    """Conditions (batch of 1) from a closed-loop observation."""
    command = torch.tensor([int(observation.command)], dtype=torch.int64)
    if config.ego_status == "off":
        return ActionConditions(command)
    times = np.asarray(observation.ego_history_timestamps_s) - observation.time_s
    speed = torch.tensor([observation.speed_mps], dtype=torch.float64)
    accel = torch.tensor([observation.accel_mps2], dtype=torch.float64)
    yaw_rate = torch.tensor([observation.yaw_rate_rps], dtype=torch.float64)
    ego = ego_status_features(
        speed, accel, yaw_rate, torch.tensor(times, dtype=torch.float64)[None],
        torch.tensor(np.asarray(observation.ego_history_xyyaw), dtype=torch.float64)[None], config,
    )  # fmt: skip
    return ActionConditions(command, ego, _anchor(speed, accel, yaw_rate, config))

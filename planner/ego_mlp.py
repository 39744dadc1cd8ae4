"""The ego-status-only MLP baseline ("AD-MLP"): no camera, only the ego's own motion and the command.

AD-MLP (Zhai et al., 2023) showed that such a blind MLP matches camera planners on nuScenes
open-loop L2, so open-loop numbers are only a sanity check. This baseline is reported beside the
action model in every open-loop table to keep that lesson visible.

Inputs: the action model's ego-status features (`ego_status_features`: speed, acceleration, yaw
rate, past poses, normalised by the same constants) and a one-hot command. Output: K (x, y)
waypoints in units of position_scale_m. Loss: mean Euclidean error over valid waypoints.
Weights are stored without pickle: `ego_mlp.safetensors` + `ego_mlp.json`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from contract import EpisodeInfo, Observation, Plan, Planner
from data.store.weights_file import WeightsPaths, load_state_strict, read_meta, read_state, write_weights
from planner.action_model.conditions import ActionConditions, conditions_from_batch, conditions_from_observation
from planner.action_model.config import NUM_COMMANDS, ActionModelConfig
from planner.batch import PlannerBatch, planner_loader

FORMAT = "foresight-ego-mlp"
FORMAT_VERSION = 1
WEIGHTS_NAME = "ego_mlp.safetensors"


@dataclass(frozen=True)
class EgoMLPConfig:
    """features: the ego-status definition and normalisation (an ActionModelConfig; only its ego_*,
    *_scale_*, num_waypoints and waypoint_dt_s fields are used); hidden_width, n_layers: the MLP."""

    features: ActionModelConfig
    hidden_width: int = 256
    n_layers: int = 2

    def __post_init__(self) -> None:
        if self.hidden_width < 1 or self.n_layers < 1:
            raise ValueError(f"EgoMLPConfig: hidden_width and n_layers must be >= 1, got {self.hidden_width}, {self.n_layers}")
        if self.features.ego_status == "off":
            raise ValueError("EgoMLPConfig.features must use ego status (ego_status 'add' or 'token')")

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features.to_dict(), "hidden_width": self.hidden_width, "n_layers": self.n_layers}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "EgoMLPConfig":
        values = dict(values)
        return cls(features=ActionModelConfig.from_dict(dict(values.pop("features"))), **values)


class EgoMLP(nn.Module):
    """Ego status + command -> K waypoints (B, K, 2) [m]."""

    def __init__(self, config: EgoMLPConfig) -> None:
        super().__init__()
        self.config = config
        f = config.features
        layers: list[nn.Module] = []
        width = f.ego_status_dim + NUM_COMMANDS
        for _ in range(config.n_layers):
            layers += [nn.Linear(width, config.hidden_width), nn.ReLU()]
            width = config.hidden_width
        layers.append(nn.Linear(width, 2 * f.num_waypoints))
        self.net = nn.Sequential(*layers)

    def forward(self, conditions: ActionConditions) -> torch.Tensor:
        f = self.config.features
        if conditions.ego_status is None:
            raise ValueError("EgoMLP needs ActionConditions.ego_status")
        command = nn.functional.one_hot(conditions.command, NUM_COMMANDS).to(conditions.ego_status.dtype)  # (B, 3)
        out = self.net(torch.cat([conditions.ego_status, command], dim=-1))  # (B, 2K)
        return out.view(-1, f.num_waypoints, 2) * f.position_scale_m  # (B, K, 2) [m]

    def plan_windows(self, batch: PlannerBatch) -> torch.Tensor:
        """Waypoints (B, K, 2) [m] for a batch of planner windows."""
        return self(conditions_from_batch(batch, self.config.features))


def trajectory_loss(predicted_xy: torch.Tensor, target_xy: torch.Tensor, valid: torch.Tensor | None, scale_m: float) -> torch.Tensor:
    """Mean Euclidean distance over valid waypoints, in units of scale_m; predicted, target (B, K, 2) [m]."""
    distance = ((predicted_xy - target_xy) / scale_m).norm(dim=-1)  # (B, K)
    if valid is None:
        return distance.mean()
    weights = valid.float()
    return (distance * weights).sum() / weights.sum().clamp(min=1.0)


def train_ego_mlp(dataset: Dataset, config: EgoMLPConfig, steps: int = 2000, batch_size: int = 256, lr: float = 1e-3, seed: int = 0) -> EgoMLP:
    """Fit an EgoMLP on planner windows (needs trajectory, trajectory_valid and the ego-status keys)
    with AdamW and a cosine LR decay; deterministic for a given seed. Returns it in eval mode."""
    if steps < 1:
        raise ValueError(f"train_ego_mlp: steps must be >= 1, got {steps}")
    torch.manual_seed(seed)
    model = EgoMLP(config)
    # The ego status is tiny: gather it once instead of reloading windows every step.
    data = PlannerBatch.concat([dataclasses.replace(b, tokens=None, future_tokens=None) for b in planner_loader(dataset, 512)])
    conditions = conditions_from_batch(data, config.features)
    target, valid = data.trajectory[..., :2].float(), data.trajectory_valid.bool()
    n = len(target)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=generator)
        predicted = model(ActionConditions(conditions.command[idx], conditions.ego_status[idx]))
        loss = trajectory_loss(predicted, target[idx], valid[idx], config.features.position_scale_m)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return model.eval()


def has_ego_mlp(path: str | Path) -> bool:
    """Whether `path` (a directory or file) holds an exported EgoMLP."""
    files = WeightsPaths.at(path, WEIGHTS_NAME)
    weights, config = files.weights, files.config
    return weights.is_file() and config.is_file()


def export_ego_mlp(model: EgoMLP, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ego_mlp.safetensors + ego_mlp.json (in `path` if it is a directory); returns the weights path."""
    files = WeightsPaths.at(path, WEIGHTS_NAME)
    weights, config = files.weights, files.config
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.config.to_dict(), "extra": extra or {}}
    return write_weights(weights, config, model.state_dict(), FORMAT, meta)


def load_ego_mlp(path: str | Path) -> EgoMLP:
    """Rebuild an exported EgoMLP (eval mode); checks the format and the weights' SHA-256."""
    files = WeightsPaths.at(path, WEIGHTS_NAME)
    weights, config = files.weights, files.config
    meta = read_meta(weights, config, FORMAT, FORMAT_VERSION, "ego-MLP")
    state = read_state(weights, config, meta)
    model = EgoMLP(EgoMLPConfig.from_dict(meta["config"]))
    load_state_strict(model, state, weights, config)
    return model.eval()


class EgoMLPPlanner(Planner):
    """The EgoMLP as a closed-loop planner (blind: it never looks at the camera)."""

    name = "ego_mlp"
    privileged = False
    uses_camera = False  # the runner skips rendering for it

    def __init__(self, model: EgoMLP) -> None:
        self.model = model.eval()

    @property
    def num_waypoints(self) -> int:
        return self.model.config.features.num_waypoints

    @property
    def plan_dt_s(self) -> float:
        return self.model.config.features.waypoint_dt_s

    def reset(self, episode: EpisodeInfo) -> None:
        """Stateless: nothing to forget."""

    @torch.no_grad()
    def plan(self, observation: Observation) -> Plan:
        f = self.model.config.features
        waypoints = self.model(conditions_from_observation(observation, f))[0].double().numpy()
        return Plan(waypoints=np.ascontiguousarray(waypoints), dt_s=f.waypoint_dt_s)

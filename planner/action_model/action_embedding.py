"""Input embedding of the action tokens: one token per future waypoint (plus an optional ego token).

token_k = MLP([Linear(x_t[k]) + command_emb + waypoint_index_emb[k] (+ ego_emb), sin_emb(t)])
with the pi0 "action-time MLP" Linear(2C, C) -> SiLU -> Linear(C, C) joining the noisy waypoint with
the flow time. With ego_status = "token", one more token Linear(ego) + a learned type embedding is put
before the waypoint tokens of every sample.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from planner.action_model.batch_invariance import batch_invariant_linear
from planner.action_model.conditions import ActionConditions
from planner.action_model.config import NUM_COMMANDS, ActionModelConfig


def sinusoidal_time_embedding(t: torch.Tensor, dim: int, min_period: float, max_period: float) -> torch.Tensor:
    """(..., dim) embedding of flow times t (...) in [0, 1]: [sin(2 pi t / p_i), cos(2 pi t / p_i)] for
    dim/2 periods p_i spaced geometrically from min_period to max_period."""
    if dim % 2:
        raise ValueError(f"sinusoidal_time_embedding: dim must be even, got {dim}")
    fraction = torch.linspace(0.0, 1.0, dim // 2, device=t.device, dtype=torch.float64)
    periods = min_period * (max_period / min_period) ** fraction  # (dim/2,)
    angles = (2 * math.pi) * t.double()[..., None] / periods  # (..., dim/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).float()


class ActionInputEmbedding(nn.Module):
    """Noisy waypoints (B, S, K, D), flow times (B, S) and conditions -> tokens (B, S, n_action_tokens, C)."""

    def __init__(self, config: ActionModelConfig, width: int) -> None:
        super().__init__()
        if width % 2:
            raise ValueError(f"action expert width must be even (sinusoidal time embedding), got {width}")
        self.config = config
        self.width = width
        self.waypoint_proj = nn.Linear(config.trajectory_dim, width)
        self.command_emb = nn.Embedding(NUM_COMMANDS, width)
        self.index_emb = nn.Embedding(config.num_waypoints, width)
        self.time_mlp_in = nn.Linear(2 * width, width)
        self.time_mlp_out = nn.Linear(width, width)
        self.ego_proj = nn.Linear(config.ego_status_dim, width) if config.ego_status != "off" else None
        self.ego_type_emb = nn.Parameter(torch.zeros(width)) if config.ego_status == "token" else None

    @property
    def n_tokens(self) -> int:
        """Action tokens per sample: K waypoints (+ 1 ego token)."""
        return self.config.num_waypoints + (1 if self.config.ego_status == "token" else 0)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, conditions: ActionConditions) -> torch.Tensor:
        c = self.config
        batch, n_samples, k, d = x_t.shape
        if (k, d) != (c.num_waypoints, c.trajectory_dim):
            raise ValueError(f"action tokens: x_t must be (B, S, {c.num_waypoints}, {c.trajectory_dim}), got {tuple(x_t.shape)}")
        if tuple(t.shape) != (batch, n_samples) or conditions.batch_size != batch:
            raise ValueError(f"action tokens: t must be (B, S) = ({batch}, {n_samples}) and conditions of batch {batch}; got t {tuple(t.shape)}, conditions batch {conditions.batch_size}")
        a = self.waypoint_proj(x_t) + self.index_emb.weight  # (B, S, K, C)
        a = a + self.command_emb(conditions.command)[:, None, None]  # (B, S, K, C)
        ego = None
        if self.ego_proj is not None:
            if conditions.ego_status is None or conditions.ego_status.shape[1] != c.ego_status_dim:
                got = None if conditions.ego_status is None else tuple(conditions.ego_status.shape)
                raise ValueError(f"action tokens: ego_status={c.ego_status!r} needs ActionConditions.ego_status (B, {c.ego_status_dim}), got {got}")
            ego = batch_invariant_linear(self.ego_proj, conditions.ego_status.to(a.dtype))  # (B, C)
            if c.ego_status == "add":
                a = a + ego[:, None, None]
        time = sinusoidal_time_embedding(t, self.width, c.time_min_period, c.time_max_period).to(a.dtype)  # (B, S, C)
        joined = torch.cat([a, time[:, :, None].expand_as(a)], dim=-1)  # (B, S, K, 2C)
        tokens = self.time_mlp_out(F.silu(self.time_mlp_in(joined)))  # (B, S, K, C)
        if self.ego_type_emb is not None:
            assert ego is not None
            ego_token = (ego + self.ego_type_emb)[:, None, None].expand(batch, n_samples, 1, self.width)  # (B, S, 1, C)
            tokens = torch.cat([ego_token, tokens], dim=2)  # (B, S, 1 + K, C)
        return tokens

"""Sampling trajectories from the action model: video keys/values once, then an ODE solve from noise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from planner.action_model.conditions import ActionConditions, conditions_from_batch
from planner.action_model.model import VideoActionModel
from planner.action_model.normalization import trajectory_from_model
from planner.action_model.video_stream import VideoContext
from planner.flow_matching import solve_ode

if TYPE_CHECKING:
    from planner.batch import PlannerBatch


@torch.no_grad()
def sample_trajectories(
    model: VideoActionModel,
    video: VideoContext | None,
    conditions: ActionConditions,
    n_samples: int,
    n_steps: int,
    solver: str,
    generator: torch.Generator | Sequence[torch.Generator],
) -> torch.Tensor:
    """Trajectories (B, S, K, D) [m, m(, rad)] for S = n_samples noise draws per batch element.

    video: from `model.context(...)` (computed once; all S samples and all n_steps share it).
    Noise is drawn from `generator` on its own device, then moved to the model's device, so a CPU
    generator gives the same draws on any device. A sequence of B generators draws element b's
    noise from generator b (batched closed loop: each episode keeps its own noise stream, so it
    gets the same draws as when planned alone).
    """
    if n_samples < 1:
        raise ValueError(f"sample_trajectories: n_samples must be >= 1, got {n_samples}")
    param = next(model.expert.parameters())
    c = model.config
    batch = conditions.batch_size
    shape = (n_samples, c.num_waypoints, c.trajectory_dim)
    if isinstance(generator, torch.Generator):
        noise = torch.randn((batch, *shape), generator=generator, device=generator.device)
    else:
        if len(generator) != batch:
            raise ValueError(f"sample_trajectories: {len(generator)} generators for a batch of {batch}")
        noise = torch.stack([torch.randn(shape, generator=g, device=g.device).to(param.device) for g in generator])
    noise = noise.to(device=param.device, dtype=param.dtype)  # (B, S, K, D)
    conditions = conditions.to(param.device)

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        times = torch.full((batch, n_samples), t, device=param.device, dtype=param.dtype)
        return model.velocity(video, x, times, conditions).to(x.dtype)

    return trajectory_from_model(solve_ode(velocity, noise, n_steps, solver), c, conditions.anchor)


@torch.no_grad()
def sample_plans(
    model: VideoActionModel,
    batch: "PlannerBatch",
    n_samples: int,
    n_steps: int = 10,
    solver: str = "euler",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Planned positions (B, S, K, 2) [m] for a batch of planner windows (its tokens unless
    video_mode is 'none', its command and ego status; see `conditions_from_batch`).

    Imagine mode always imagines with the world model here (never reads batch.future_tokens).
    """
    if generator is None:
        raise ValueError("sample_plans needs an explicit torch.Generator")
    device = next(model.expert.parameters()).device
    conditions = conditions_from_batch(batch, model.config)
    tokens = batch.tokens if model.config.uses_video else None
    video = model.context(None if tokens is None else tokens.to(device))
    return sample_trajectories(model, video, conditions, n_samples, n_steps, solver, generator)[..., :2]

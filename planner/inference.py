"""How an exported planner turns noise into the plan it executes: its inference settings and the
choice of one plan among the samples of a call."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from planner.flow_matching import ODE_SOLVERS

# How the executed plan is chosen from the S samples of one call: first (sample 0), mean (the
# waypoint-wise average), medoid (the sample with the smallest summed distance to the others: a
# real sample, robust to the odd outlier a small flow model draws), cautious (the medoid of the
# slower half: the samples ranked by the distance they travel, the ceil(S/2) shortest kept; when a
# minority of samples brakes for something, the executed plan leans their way instead of taking the
# majority's speed, at some cost in progress).
AGGREGATES = ("first", "mean", "medoid", "cautious")


def aggregate_samples(samples: torch.Tensor, how: str) -> torch.Tensor:
    """The executed plan (B, K, D) from samples (B, S, K, D) by `how` (see AGGREGATES); distances
    for the medoid are mean Euclidean (x, y) distances over waypoints."""
    if how not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {how!r}")
    if how == "first" or samples.shape[1] == 1:
        return samples[:, 0]
    if how == "mean":
        return samples.mean(dim=1)
    if how == "cautious":
        xy = samples[..., :2]
        steps = torch.cat([xy[:, :, :1], xy[:, :, 1:] - xy[:, :, :-1]], dim=2)  # (B, S, K, 2) from the ego (origin)
        travelled = steps.norm(dim=-1).sum(dim=-1)  # (B, S) path length [m]
        keep = travelled.argsort(dim=1)[:, : (samples.shape[1] + 1) // 2]  # (B, ceil(S/2)) the slower half
        slower = samples.gather(1, keep[:, :, None, None].expand(-1, -1, *samples.shape[2:]))
        return aggregate_samples(slower, "medoid")
    xy = samples[..., :2]
    distance = (xy[:, :, None] - xy[:, None]).norm(dim=-1).mean(dim=-1)  # (B, S, S)
    best = distance.sum(dim=-1).argmin(dim=1)  # (B,)
    return samples[torch.arange(samples.shape[0], device=samples.device), best]



@dataclass(frozen=True)
class InferenceSettings:
    """How an exported planner plans (`planner.inference` when it is trained; recorded in its
    export): n_steps ODE steps of `solver`, n_samples noise draws per call (they share the video
    pass) and how the executed plan is chosen from them (`aggregate`, one of AGGREGATES)."""

    n_steps: int
    solver: str
    n_samples: int
    aggregate: str

    def __post_init__(self) -> None:
        if not isinstance(self.n_steps, int) or self.n_steps < 1:
            raise ValueError(f"inference.n_steps must be a positive int, got {self.n_steps!r}")
        if not isinstance(self.n_samples, int) or self.n_samples < 1 or self.aggregate not in AGGREGATES:
            raise ValueError(f"inference: n_samples must be a positive int and aggregate one of {AGGREGATES}, got {self.n_samples!r}, {self.aggregate!r}")
        if self.solver not in ODE_SOLVERS:
            raise ValueError(f"inference.solver must be one of {ODE_SOLVERS}, got {self.solver!r}")

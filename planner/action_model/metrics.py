"""Open-loop planning metrics: minADE / minFDE over samples, and L2 at fixed horizons.

Conventions: displacement = Euclidean distance in (x, y) [m]. minADE: per batch element, the
smallest over samples of the mean distance over valid waypoints. minFDE: the smallest distance at
the last waypoint (elements whose last waypoint is invalid are skipped). L2 at h seconds: the
distance at the waypoint of time h (UniAD convention: that waypoint alone, not averaged up to h) for
sample 0, the one a closed-loop planner would execute. Each metric is a mean over the batch
elements it applies to, with that count, so batches can be combined by a count-weighted mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MetricValue:
    """mean: () float tensor over `count` batch elements (NaN when count is 0)."""

    mean: torch.Tensor
    count: int


def _mean_over(values: torch.Tensor, keep: torch.Tensor) -> MetricValue:
    count = int(keep.sum())
    mean = values[keep].mean() if count else torch.tensor(float("nan"), device=values.device)
    return MetricValue(mean=mean, count=count)


def open_loop_metrics(
    samples_xy: torch.Tensor,
    target_xy: torch.Tensor,
    valid: torch.Tensor | None,
    dt_s: float,
    horizons_s: tuple[float, ...] = (1.0, 2.0, 3.0),
) -> dict[str, MetricValue]:
    """Metrics of samples (B, S, K, 2) [m] against targets (B, K, 2) [m]; valid (B, K) bool or None.

    Keys: "min_ade", "min_fde", and "l2_<h>s" for each horizon with a waypoint exactly at h s.
    """
    batch, n_samples, k, _ = samples_xy.shape
    if tuple(target_xy.shape) != (batch, k, 2):
        raise ValueError(f"open_loop_metrics: target must be (B, K, 2) = ({batch}, {k}, 2), got {tuple(target_xy.shape)}")
    valid = torch.ones(batch, k, dtype=torch.bool, device=samples_xy.device) if valid is None else valid.bool()
    distance = (samples_xy.float() - target_xy.float()[:, None]).norm(dim=-1)  # (B, S, K)
    weights = valid[:, None].float()  # (B, 1, K)
    ade = (distance * weights).sum(-1) / weights.sum(-1).clamp(min=1.0)  # (B, S)
    metrics = {
        "min_ade": _mean_over(ade.min(dim=1).values, valid.any(dim=1)),
        "min_fde": _mean_over(distance[:, :, -1].min(dim=1).values, valid[:, -1]),
    }
    for horizon in horizons_s:
        index = round(horizon / dt_s) - 1
        if 0 <= index < k and abs((index + 1) * dt_s - horizon) < 1e-6:
            metrics[f"l2_{horizon:g}s"] = _mean_over(distance[:, 0, index], valid[:, index])
    return metrics
